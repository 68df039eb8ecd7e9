//! `--protect`: a UV-space mask `m` over one material (1 = restyle, 0 = keep
//! the original texel, grey in between).
//!
//! The texture the views show and the one exported is `m·learned + (1−m)·original`.
//! In a view this is taken per pixel, `M·L + (1−M)·O` with `M` and `O` the mask
//! and the original seen through the same frame (as the content image is), so
//! the network sees protected regions as they are; its gradient in `L` is
//! `M ⊙ dL/dview` (the composite is linear in `L`), so fully protected texels
//! get none. Exported textures take the composite per texel after the unseen
//! texels are filled, so a black texel is the original's value exactly.

use std::fmt;

use candle_core::{Result, Tensor};

use crate::image_io::{image_to_tensor, Image};

/// The mask of one material and that material's original texture, both at
/// the learned texture's size.
#[derive(Clone)]
pub struct Protect {
    /// The material the mask covers (the others are restyled whole).
    pub material: usize,
    /// The mask, grey in all three channels, `size × size`.
    mask: Image,
    /// The material's original texture at `size × size`.
    original: Image,
}

impl fmt::Debug for Protect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protect {{ material: {}, {}² }}", self.material, self.mask.width)
    }
}

/// `img` at `size × size`: itself when it has that size (bit for bit), else
/// resampled bilinearly (clamped at the borders).
fn at_size(img: &Image, size: u32) -> Image {
    if (img.width, img.height) == (size, size) {
        return img.clone();
    }
    let rgb = image::imageops::resize(&img.to_rgb8(), size, size, image::imageops::FilterType::Triangle);
    Image::from_rgb8(&rgb)
}

impl Protect {
    /// The protection of `material` (whose texture is `original`) by `mask`
    /// (any size; its channels are averaged), for learned textures of
    /// `size × size`.
    pub fn new(material: usize, mask: &Image, original: &Image, size: u32) -> Protect {
        let mut mask = at_size(mask, size);
        for px in mask.data.chunks_mut(3) {
            let grey = (px[0] + px[1] + px[2]) / 3.0;
            px.fill(grey.clamp(0.0, 1.0));
        }
        Protect { material, mask, original: at_size(original, size) }
    }

    /// The mask as an image (grey), `size × size`.
    pub fn mask(&self) -> &Image {
        &self.mask
    }

    /// `learned` (the material's texture, unseen texels filled) with the
    /// protected texels put back: `m·learned + (1−m)·original`.
    pub fn compose_image(&self, learned: &mut Image) {
        for ((l, &m), &o) in learned.data.iter_mut().zip(&self.mask.data).zip(&self.original.data) {
            *l = m * *l + (1.0 - m) * o;
        }
    }

    /// The same on a `[materials, 3, size, size]` texture stack (for the
    /// held-out score).
    pub fn compose_tensor(&self, texture: &Tensor) -> Result<Tensor> {
        let dev = texture.device();
        let m = image_to_tensor(&self.mask)?.to_device(dev)?;
        let o = image_to_tensor(&self.original)?.to_device(dev)?;
        let mat = texture.narrow(0, self.material, 1)?;
        let composed = ((mat * &m)? + (o * m.affine(-1.0, 1.0)?)?)?;
        let n = texture.dim(0)?;
        let mut parts = Vec::with_capacity(3);
        if self.material > 0 {
            parts.push(texture.narrow(0, 0, self.material)?);
        }
        parts.push(composed);
        if self.material + 1 < n {
            parts.push(texture.narrow(0, self.material + 1, n - self.material - 1)?);
        }
        Tensor::cat(&parts, 0)
    }
}

/// One view's mask `M` and original `O`, `[1, 3, height, width]` each.
pub struct ProtectedView {
    pub mask: Tensor,
    pub original: Tensor,
}

impl ProtectedView {
    /// What the network sees: `M·learned + (1−M)·O`.
    pub fn composite(&self, learned: &Tensor) -> Result<Tensor> {
        (learned * &self.mask)? + (&self.original * self.mask.affine(-1.0, 1.0)?)?
    }

    /// The gradient in the learned view from the gradient in the composite:
    /// `M ⊙ grad` (the composite's Jacobian in `learned` is diag(M)).
    pub fn pull_back(&self, grad: &Tensor) -> Result<Tensor> {
        grad * &self.mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn view() -> ProtectedView {
        let dev = Device::Cpu;
        let mask = Tensor::from_vec(vec![0.0f32, 0.25, 1.0, 0.5, 0.0, 1.0, 0.0, 0.25, 1.0, 0.5, 0.0, 1.0], (1, 3, 2, 2), &dev).unwrap();
        let original = Tensor::from_vec((0..12).map(|i| i as f32 / 12.0).collect(), (1, 3, 2, 2), &dev).unwrap();
        ProtectedView { mask, original }
    }

    /// `pull_back` is the composite's gradient: for the loss Σ w ⊙ composite(L)²,
    /// central differences in each element of L against pull_back(2 w ⊙ composite).
    #[test]
    fn pull_back_matches_finite_differences() {
        let v = view();
        let dev = Device::Cpu;
        let w: Vec<f32> = (0..12).map(|i| 0.3 + 0.1 * i as f32).collect();
        let wt = Tensor::from_vec(w.clone(), (1, 3, 2, 2), &dev).unwrap();
        let loss = |l: &[f32]| -> f64 {
            let lt = Tensor::from_vec(l.to_vec(), (1, 3, 2, 2), &dev).unwrap();
            let c = v.composite(&lt).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            c.iter().zip(&w).map(|(c, w)| (*w as f64) * (*c as f64).powi(2)).sum()
        };
        let l: Vec<f32> = (0..12).map(|i| 0.9 - 0.07 * i as f32).collect();
        let lt = Tensor::from_vec(l.clone(), (1, 3, 2, 2), &dev).unwrap();
        let seed = ((v.composite(&lt).unwrap() * &wt).unwrap() * 2.0).unwrap();
        let grad = v.pull_back(&seed).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let h = 1e-2f32;
        for i in 0..12 {
            let (mut a, mut b) = (l.clone(), l.clone());
            a[i] += h;
            b[i] -= h;
            let fd = (loss(&a) - loss(&b)) / (2.0 * h as f64);
            assert!((fd - grad[i] as f64).abs() < 1e-3, "element {i}: finite difference {fd}, pull_back {}", grad[i]);
        }
    }

    #[test]
    fn black_texels_are_the_original_exactly_and_white_ones_the_learned() {
        let mut mask = Image::filled(4, 4, [1.0; 3]);
        mask.set_pixel(1, 2, [0.0; 3]);
        mask.set_pixel(3, 0, [0.5; 3]);
        let original = Image { width: 4, height: 4, data: (0..48).map(|i| (i * 5 % 256) as f32 / 255.0).collect() };
        let p = Protect::new(0, &mask, &original, 4);
        let learned = Image { width: 4, height: 4, data: (0..48).map(|i| (i * 11 % 256) as f32 / 255.0).collect() };
        let mut out = learned.clone();
        p.compose_image(&mut out);
        assert_eq!(out.pixel(1, 2), original.pixel(1, 2));
        assert_eq!(out.pixel(0, 0), learned.pixel(0, 0));
        let half = out.pixel(3, 0);
        for c in 0..3 {
            assert!((half[c] - 0.5 * (learned.pixel(3, 0)[c] + original.pixel(3, 0)[c])).abs() < 1e-6);
        }
        // The tensor path agrees with the image path.
        let stack = Tensor::cat(&[image_to_tensor(&original).unwrap(), image_to_tensor(&learned).unwrap()], 0).unwrap();
        let p1 = Protect { material: 1, ..p };
        let t = p1.compose_tensor(&stack).unwrap();
        assert_eq!(crate::image_io::tensor_to_image(&t.get(1).unwrap()).unwrap(), out);
        assert_eq!(crate::image_io::tensor_to_image(&t.get(0).unwrap()).unwrap(), original);
    }
}
