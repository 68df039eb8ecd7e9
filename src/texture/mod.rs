//! The learned texture and how it is parameterized (the Distill article's
//! point: the same loss optimized through another parameterization gives a
//! different, often better, result).
//!
//! [`TextureParam::texture`] gives `[materials, 3, height, width]` RGB in
//! (0, 1), rows top-down (see [`crate::conventions`]), as a candle tensor on
//! the autograd tape, so the gradient of anything computed from it reaches
//! the parameters ([`TextureParam::vars`]).
//! - `pixel`: texture = sigmoid(θ), θ ~ N(0, 0.01²).
//! - `fft`: θ is a half spectrum ~ N(0, 0.01²), scaled per frequency by
//!   `1/max(f, 1/max(H, W)) · √(H·W)`, inverse real FFT ([`irfft`]), ÷ 4,
//!   mixed by the decorrelated colour matrix, sigmoid — lucid's constants.

pub mod fill;
pub mod irfft;

use candle_core::{DType, Device, Result, Tensor, Var};

/// Which parameterization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Pixel,
    Fft,
}

/// lucid's `color_correlation_svd_sqrt`: the square root of ImageNet's
/// colour covariance, rows = RGB output, columns = decorrelated input.
const COLOR_CORRELATION_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// The parameters of all material textures, same size each.
pub struct TextureParam {
    pub kind: ParamKind,
    pub materials: usize,
    pub height: usize,
    pub width: usize,
    theta: Var,
    /// FFT only: per-frequency scale `[1, 1, H, W/2+1, 1]`.
    scale: Option<Tensor>,
    /// FFT only: normalized colour matrix `[3, 3]`.
    color: Option<Tensor>,
}

/// Deterministic N(0, σ²) samples: a seed gives the same initial texture on
/// every machine.
fn normal(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::SplitMix(seed);
    (0..n).map(|_| rng.normal() * sigma).collect()
}

impl TextureParam {
    /// Fresh parameters for `materials` textures of `height × width`.
    pub fn new(kind: ParamKind, materials: usize, height: usize, width: usize, seed: u64) -> Result<TextureParam> {
        let dev = Device::Cpu;
        let (theta, scale, color) = match kind {
            ParamKind::Pixel => {
                let n = materials * 3 * height * width;
                (Var::from_vec(normal(n, 0.01, seed), (materials, 3, height, width), &dev)?, None, None)
            }
            ParamKind::Fft => {
                let wh = irfft::half_width(width);
                let n = materials * 3 * height * wh * 2;
                let theta = Var::from_vec(normal(n, 0.01, seed), (materials, 3, height, wh, 2), &dev)?;
                let floor = 1.0 / height.max(width) as f32;
                let unit = ((height * width) as f32).sqrt();
                let mut s = Vec::with_capacity(height * wh);
                for ky in 0..height {
                    // numpy's fftfreq: 0, 1/n, …, then negative frequencies.
                    let fy = if ky <= (height - 1) / 2 { ky as f32 } else { ky as f32 - height as f32 } / height as f32;
                    for kx in 0..wh {
                        let fx = kx as f32 / width as f32;
                        s.push(unit / (fx * fx + fy * fy).sqrt().max(floor));
                    }
                }
                let scale = Tensor::from_vec(s, (1, 1, height, wh, 1), &dev)?;
                let max_norm = (0..3)
                    .map(|c| COLOR_CORRELATION_SQRT.iter().map(|row| row[c] * row[c]).sum::<f32>().sqrt())
                    .fold(0.0, f32::max);
                let m: Vec<f32> = COLOR_CORRELATION_SQRT.iter().flatten().map(|v| v / max_norm).collect();
                (theta, Some(scale), Some(Tensor::from_vec(m, (3, 3), &dev)?))
            }
        };
        Ok(TextureParam { kind, materials, height, width, theta, scale, color })
    }

    /// The trainable variables.
    pub fn vars(&self) -> Vec<Var> {
        vec![self.theta.clone()]
    }

    /// The textures, `[materials, 3, height, width]`, values in (0, 1).
    pub fn texture(&self) -> Result<Tensor> {
        let (m, h, w) = (self.materials, self.height, self.width);
        let logits = match self.kind {
            ParamKind::Pixel => self.theta.as_tensor().clone(),
            ParamKind::Fft => {
                let scaled = self.theta.as_tensor().broadcast_mul(self.scale.as_ref().unwrap())?;
                let img = (irfft::irfft2(&scaled, h, w)? / 4.0)?;
                // rgb = C · t per texel.
                let t = img.reshape((m, 3, h * w))?;
                let color = self.color.as_ref().unwrap().unsqueeze(0)?.broadcast_as((m, 3, 3))?;
                color.matmul(&t)?.reshape((m, 3, h, w))?
            }
        };
        candle_nn::ops::sigmoid(&logits)
    }
}

/// Converts `[3, H, W]` (one material of [`TextureParam::texture`]) to an image.
pub fn tensor_to_image(t: &Tensor) -> Result<crate::image_io::Image> {
    let (c, h, w) = t.dims3()?;
    if c != 3 {
        candle_core::bail!("tensor_to_image: expected [3, H, W], got {:?}", t.dims())
    }
    let hwc = t.permute((1, 2, 0))?.contiguous()?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(crate::image_io::Image { width: w as u32, height: h as u32, data: hwc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_textures_are_near_grey_and_seeded() {
        for kind in [ParamKind::Pixel, ParamKind::Fft] {
            let p = TextureParam::new(kind, 2, 16, 16, 1).unwrap();
            let t = p.texture().unwrap();
            assert_eq!(t.dims(), [2, 3, 16, 16]);
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|&x| (x - 0.5).abs() < 0.2), "{kind:?}");
            let again = TextureParam::new(kind, 2, 16, 16, 1).unwrap().texture().unwrap();
            assert_eq!(v, again.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }

    #[test]
    fn gradient_reaches_the_parameters_through_either_parameterization() {
        for kind in [ParamKind::Pixel, ParamKind::Fft] {
            let p = TextureParam::new(kind, 1, 8, 8, 2).unwrap();
            // Push the texture towards red: loss = Σ (t - red)².
            let red = Tensor::from_vec([1f32, 0.0, 0.0].to_vec(), (1, 3, 1, 1), &Device::Cpu).unwrap();
            let loss = |p: &TextureParam| p.texture().unwrap().broadcast_sub(&red).unwrap().sqr().unwrap().sum_all().unwrap();
            let before = loss(&p).to_scalar::<f32>().unwrap();
            let mut opt = <candle_nn::AdamW as candle_nn::Optimizer>::new(
                p.vars(),
                candle_nn::ParamsAdamW { lr: 0.05, weight_decay: 0.0, ..Default::default() },
            )
            .unwrap();
            for _ in 0..200 {
                let g = loss(&p).backward().unwrap();
                candle_nn::Optimizer::step(&mut opt, &g).unwrap();
            }
            let after = loss(&p).to_scalar::<f32>().unwrap();
            // The FFT parameterization moves the mean colour slowly by design
            // (its DC term gets no boost), hence the modest bound.
            assert!(after < 0.75 * before, "{kind:?}: {before} → {after}");
        }
    }
}
