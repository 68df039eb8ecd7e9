//! Step 4 of the data path: an image seen through a UV frame.
//!
//! Bilinear, wrapping (repeat), v flipped and half-texel centred, exactly as
//! [`crate::conventions`] states. With a supersampled frame each output pixel
//! is the box-filtered mean of its k×k samples.
//!
//! Two forms: [`render`] draws `Image`s for previews; [`lookup`] is the
//! differentiable op of the optimization — forward gathers 4 texels per
//! sample, backward scatters the image gradient into the same texels with the
//! same weights, through a per-view [`LookupTable`].

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use glam::Vec2;

use crate::conventions::uv_to_texel;
use crate::image_io::Image;
use crate::raster::RasterFrame;

/// The four texels `(x, y)` a bilinear lookup at `uv` reads from a
/// `width × height` texture (wrapping), and their weights.
#[inline]
pub fn bilinear_taps(uv: Vec2, width: u32, height: u32) -> ([(u32, u32); 4], [f32; 4]) {
    let p = uv_to_texel(uv, width, height);
    let (x0, y0) = (p.x.floor(), p.y.floor());
    let (fx, fy) = (p.x - x0, p.y - y0);
    let wrap = |i: f32, n: u32| (i as i64).rem_euclid(n as i64) as u32;
    let (xa, xb) = (wrap(x0, width), wrap(x0 + 1.0, width));
    let (ya, yb) = (wrap(y0, height), wrap(y0 + 1.0, height));
    (
        [(xa, ya), (xb, ya), (xa, yb), (xb, yb)],
        [
            (1.0 - fx) * (1.0 - fy),
            fx * (1.0 - fy),
            (1.0 - fx) * fy,
            fx * fy,
        ],
    )
}

/// Bilinear lookup of `image` at `uv`, wrapping at the edges.
pub fn sample_bilinear(image: &Image, uv: Vec2) -> [f32; 3] {
    let (taps, w) = bilinear_taps(uv, image.width, image.height);
    let mut out = [0.0f32; 3];
    for (&(x, y), &wt) in taps.iter().zip(&w) {
        let px = image.pixel(x, y);
        for k in 0..3 {
            out[k] += wt * px[k];
        }
    }
    out
}

/// Which texels each pixel of one view reads, with what weight: built once
/// per view, used by the forward gather and the backward scatter alike.
#[derive(Debug)]
pub struct LookupTable {
    /// Output image size, in pixels.
    pub width: u32,
    pub height: u32,
    /// Texture stack size: `[materials, 3, tex_height, tex_width]`.
    pub materials: usize,
    pub tex_width: u32,
    pub tex_height: u32,
    /// Per covered sample: the output pixel it belongs to…
    pixel: Vec<u32>,
    /// …the flat index of each tap in channel 0 of the texture stack…
    texel: Vec<[u32; 4]>,
    /// …and each tap's weight, including the 1/k² box filter.
    weight: Vec<[f32; 4]>,
    /// Per pixel, the fraction of its samples that see background.
    background: Vec<f32>,
}

impl LookupTable {
    /// Builds the table for `frame`, reading material `tri_material[t]`'s
    /// texture for triangle `t`, from a stack of `materials` textures of
    /// `tex_width × tex_height`.
    pub fn new(
        frame: &RasterFrame,
        tri_material: &[u32],
        materials: usize,
        tex_width: u32,
        tex_height: u32,
    ) -> Self {
        let k = frame.samples;
        let box_weight = 1.0 / (k * k) as f32;
        let plane = (tex_width * tex_height) as usize;
        let mut t = LookupTable {
            width: frame.width,
            height: frame.height,
            materials,
            tex_width,
            tex_height,
            pixel: Vec::new(),
            texel: Vec::new(),
            weight: Vec::new(),
            background: vec![0.0; (frame.width * frame.height) as usize],
        };
        for y in 0..frame.grid_height() {
            for x in 0..frame.grid_width() {
                let p = (y / k) * frame.width + x / k;
                let s = frame.at(x, y);
                if !s.covered() {
                    t.background[p as usize] += box_weight;
                    continue;
                }
                let m = tri_material[s.tri as usize - 1] as usize;
                let (taps, w) = bilinear_taps(s.uv(), tex_width, tex_height);
                t.pixel.push(p);
                t.texel
                    .push(taps.map(|(tx, ty)| (m * 3 * plane) as u32 + ty * tex_width + tx));
                t.weight.push(w.map(|v| v * box_weight));
            }
        }
        t
    }

    /// Sets `seen[texel]` for every texel (channel 0 of the stack, so
    /// `materials · tex_height · tex_width` flags, index `m·3·plane` skipped
    /// down to `m·plane`) this view reads with a non-zero weight.
    pub fn mark_seen(&self, seen: &mut [bool]) {
        let plane = (self.tex_width * self.tex_height) as usize;
        for (taps, w) in self.texel.iter().zip(&self.weight) {
            for (&i, &wt) in taps.iter().zip(w) {
                if wt > 0.0 {
                    let i = i as usize;
                    seen[(i / (3 * plane)) * plane + i % (3 * plane)] = true;
                }
            }
        }
    }

    /// Every tap of every sample: the flat index (channel 0 of the texture
    /// stack) it reads, zero weights included.
    pub fn taps(&self) -> impl Iterator<Item = u32> + '_ {
        self.texel.iter().flatten().copied()
    }

    /// The forward lookup: the image `[3, height, width]` (flat) that the
    /// texture stack `tex` (`[materials, 3, tex_height, tex_width]`, flat)
    /// shows through this view, over `background`. Reads only the tapped texels.
    pub fn gather(&self, tex: &[f32], background: [f32; 3]) -> Vec<f32> {
        use rayon::prelude::*;
        let (n, plane) = (
            (self.width * self.height) as usize,
            (self.tex_width * self.tex_height) as usize,
        );
        let mut out = vec![0.0f32; 3 * n];
        out.par_chunks_mut(n).enumerate().for_each(|(c, dst)| {
            for (p, bg) in dst.iter_mut().zip(&self.background) {
                *p = bg * background[c];
            }
            let off = c * plane;
            for ((&p, taps), w) in self.pixel.iter().zip(&self.texel).zip(&self.weight) {
                let mut v = 0.0;
                for i in 0..4 {
                    v += w[i] * tex[taps[i] as usize + off];
                }
                dst[p as usize] += v;
            }
        });
        out
    }

    /// The adjoint of [`LookupTable::gather`]: adds the image gradient
    /// `grad_image` (`[3, height, width]`, flat) into `grad_tex` at the tapped
    /// texels, with the same weights.
    pub fn scatter(&self, grad_image: &[f32], grad_tex: &mut [f32]) {
        use rayon::prelude::*;
        let (n, plane) = (
            (self.width * self.height) as usize,
            (self.tex_width * self.tex_height) as usize,
        );
        // One task per channel: each owns its channel's plane of every material.
        let mut by_channel: [Vec<&mut [f32]>; 3] = Default::default();
        for (p, chunk) in grad_tex.chunks_mut(plane).enumerate() {
            by_channel[p % 3].push(chunk);
        }
        by_channel
            .par_iter_mut()
            .enumerate()
            .for_each(|(c, planes)| {
                let src = &grad_image[c * n..(c + 1) * n];
                for ((&p, taps), w) in self.pixel.iter().zip(&self.texel).zip(&self.weight) {
                    let gp = src[p as usize];
                    for i in 0..4 {
                        let t = taps[i] as usize;
                        planes[t / (3 * plane)][t % (3 * plane)] += w[i] * gp;
                    }
                }
            });
    }

    fn check(&self, dims: &[usize]) -> candle_core::Result<()> {
        let want = [
            self.materials,
            3,
            self.tex_height as usize,
            self.tex_width as usize,
        ];
        if dims != want {
            candle_core::bail!("lookup: texture must have shape {want:?} [materials, 3, height, width], got {dims:?}")
        }
        Ok(())
    }
}

/// The differentiable lookup (see the module docs).
struct TextureLookup {
    table: Arc<LookupTable>,
    background: [f32; 3],
}

impl CustomOp1 for TextureLookup {
    fn name(&self) -> &'static str {
        "texture-lookup"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("lookup: expected an f32 texture")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("lookup: texture must be contiguous")
        };
        let t = &self.table;
        t.check(layout.shape().dims())?;
        let out = t.gather(&data[start..end], self.background);
        Ok((
            CpuStorage::F32(out),
            Shape::from((1, 3, t.height as usize, t.width as usize)),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut grad = vec![0.0f32; arg.elem_count()];
        self.table.scatter(&g, &mut grad);
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

/// The image `[1, 3, height, width]` (RGB, the texture's range) that
/// `texture` (`[materials, 3, tex_height, tex_width]`, f32, CPU) shows through
/// `table`'s view, over `background`. Differentiable in `texture`.
pub fn lookup(
    texture: &Tensor,
    table: &Arc<LookupTable>,
    background: [f32; 3],
) -> candle_core::Result<Tensor> {
    table.check(texture.dims())?;
    texture.contiguous()?.apply_op1(TextureLookup {
        table: table.clone(),
        background,
    })
}

/// Renders `frame` with one texture per material (`textures[material]`;
/// `None` draws the material's flat colour) over `background`.
pub fn render(
    frame: &RasterFrame,
    tri_material: &[u32],
    textures: &[Option<&Image>],
    flat: &[[f32; 3]],
    background: [f32; 3],
) -> Image {
    let k = frame.samples;
    let mut out = Image::filled(frame.width, frame.height, background);
    let norm = 1.0 / (k * k) as f32;
    for y in 0..frame.height {
        for x in 0..frame.width {
            let mut acc = [0.0f32; 3];
            for sy in 0..k {
                for sx in 0..k {
                    let s = frame.at(x * k + sx, y * k + sy);
                    let rgb = if s.covered() {
                        let m = tri_material[s.tri as usize - 1] as usize;
                        match textures.get(m).copied().flatten() {
                            Some(tex) => sample_bilinear(tex, s.uv()),
                            None => flat.get(m).copied().unwrap_or([1.0; 3]),
                        }
                    } else {
                        background
                    };
                    for c in 0..3 {
                        acc[c] += rgb[c];
                    }
                }
            }
            out.set_pixel(x, y, acc.map(|v| v * norm));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::FramePixel;
    use candle_core::{Device, Var};

    /// A 2×2-pixel frame with 2×2 samples: background, two materials, UVs off-centre.
    fn frame() -> RasterFrame {
        let px = |u: f32, v: f32, tri: u32| FramePixel {
            u,
            v,
            depth: 0.5,
            tri,
        };
        let mut pixels = vec![FramePixel::default(); 16];
        let uvs = [
            (0.1, 0.2),
            (0.37, 0.91),
            (0.8, 0.45),
            (0.02, 0.98),
            (0.5, 0.5),
            (0.66, 0.13),
        ];
        for (i, &(u, v)) in uvs.iter().enumerate() {
            pixels[2 + 2 * i] = px(u, v, 1 + (i as u32 % 2));
        }
        RasterFrame {
            width: 2,
            height: 2,
            samples: 2,
            pixels,
        }
    }

    fn pseudo_random(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761) % 997) as f32 / 997.0)
            .collect()
    }

    #[test]
    fn differentiable_lookup_matches_the_preview_renderer() {
        let (f, tri_material) = (frame(), [0u32, 1]);
        let data = pseudo_random(2 * 3 * 3 * 5);
        let tex = Tensor::from_vec(data.clone(), (2, 3, 3, 5), &Device::Cpu).unwrap();
        let table = Arc::new(LookupTable::new(&f, &tri_material, 2, 5, 3));
        let out = lookup(&tex, &table, [0.2, 0.4, 0.6]).unwrap();
        let images: Vec<Image> = (0..2)
            .map(|m| crate::texture::tensor_to_image(&tex.get(m).unwrap()).unwrap())
            .collect();
        let expected = render(
            &f,
            &tri_material,
            &[Some(&images[0]), Some(&images[1])],
            &[],
            [0.2, 0.4, 0.6],
        );
        let got = crate::texture::tensor_to_image(&out.get(0).unwrap()).unwrap();
        for (a, b) in got.data.iter().zip(&expected.data) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn lookup_gradient_matches_finite_differences() {
        let (f, tri_material) = (frame(), [0u32, 1]);
        let table = Arc::new(LookupTable::new(&f, &tri_material, 2, 5, 3));
        let base = pseudo_random(2 * 3 * 3 * 5);
        let weights = Tensor::from_vec(
            pseudo_random(12)
                .iter()
                .map(|v| v - 0.3)
                .collect::<Vec<_>>(),
            (1, 3, 2, 2),
            &Device::Cpu,
        )
        .unwrap();
        let loss = |t: &Tensor| {
            (lookup(t, &table, [0.1; 3]).unwrap() * &weights)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let var = Var::from_vec(base.clone(), (2, 3, 3, 5), &Device::Cpu).unwrap();
        let g = loss(var.as_tensor())
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let eps = 1e-2;
        let mut nonzero = 0;
        for i in 0..base.len() {
            let f = |d: f32| {
                let mut v = base.clone();
                v[i] += d;
                loss(&Tensor::from_vec(v, (2, 3, 3, 5), &Device::Cpu).unwrap())
                    .to_scalar::<f32>()
                    .unwrap() as f64
            };
            let fd = (f(eps) - f(-eps)) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() < 1e-4 + 1e-3 * fd.abs(),
                "texel {i}: fd {fd} vs {}",
                g[i]
            );
            nonzero += (g[i] != 0.0) as usize;
        }
        assert!(
            nonzero > 10,
            "the check must exercise real gradients ({nonzero} non-zero)"
        );
    }

    /// Exactly the texels some sample reads with a non-zero weight, worked out here from the
    /// conventions (texel = (u·W − ½, (1 − v)·H − ½), wrap) rather than through `bilinear_taps`.
    #[test]
    fn seen_texels_are_the_tapped_ones() {
        let (f, tri_material, (w, h)) = (frame(), [0u32, 1], (5u32, 3u32));
        let table = LookupTable::new(&f, &tri_material, 2, w, h);
        let mut seen = vec![false; 2 * 15];
        table.mark_seen(&mut seen);
        let mut expected = vec![false; 2 * 15];
        for s in f.pixels.iter().filter(|s| s.covered()) {
            let m = tri_material[s.tri as usize - 1] as usize;
            let (x, y) = (
                s.u as f64 * w as f64 - 0.5,
                (1.0 - s.v as f64) * h as f64 - 0.5,
            );
            let (x0, y0) = (x.floor(), y.floor());
            for (dx, wx) in [(0.0, 1.0 - (x - x0)), (1.0, x - x0)] {
                for (dy, wy) in [(0.0, 1.0 - (y - y0)), (1.0, y - y0)] {
                    if wx * wy > 1e-6 {
                        let tx = (x0 + dx).rem_euclid(w as f64) as usize;
                        let ty = (y0 + dy).rem_euclid(h as f64) as usize;
                        expected[m * 15 + ty * w as usize + tx] = true;
                    }
                }
            }
        }
        assert_eq!(seen, expected);
        // The frame's UVs reach both materials and wrap around the edges.
        assert!(expected[..15].iter().any(|&s| s) && expected[15..].iter().any(|&s| s));
    }

    /// 2×2 texture: red top-left, green top-right, blue bottom-left, white bottom-right.
    fn checker() -> Image {
        let mut img = Image::filled(2, 2, [1.0; 3]);
        img.set_pixel(0, 0, [1.0, 0.0, 0.0]);
        img.set_pixel(1, 0, [0.0, 1.0, 0.0]);
        img.set_pixel(0, 1, [0.0, 0.0, 1.0]);
        img
    }

    #[test]
    fn texel_centres_return_texels_and_v_points_up() {
        let t = checker();
        // v near 1 is the TOP row of the image (OBJ convention).
        assert_eq!(sample_bilinear(&t, Vec2::new(0.25, 0.75)), [1.0, 0.0, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(0.75, 0.75)), [0.0, 1.0, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(0.25, 0.25)), [0.0, 0.0, 1.0]);
    }

    #[test]
    fn halfway_blends_and_edges_wrap() {
        let t = checker();
        // Midway between red and green texel centres.
        assert_eq!(sample_bilinear(&t, Vec2::new(0.5, 0.75)), [0.5, 0.5, 0.0]);
        // u = 0 is midway between the last column (green) and the first (red): wraps.
        assert_eq!(sample_bilinear(&t, Vec2::new(0.0, 0.75)), [0.5, 0.5, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(1.0, 0.75)), [0.5, 0.5, 0.0]);
    }
}
