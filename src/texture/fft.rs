//! Fourier parameterization with decorrelated colour (lucid's constants): θ is a
//! half spectrum ~ N(0, 0.01²), scaled per frequency by
//! `1/max(f, 1/max(H, W)) · √(H·W)`, inverse real FFT ([`super::irfft`]), ÷ 4,
//! mixed by the decorrelated colour matrix, sigmoid.

use candle_core::{Device, Result, Tensor, Var};

use super::irfft::{self, Irfft2};

/// lucid's `color_correlation_svd_sqrt`: the square root of ImageNet's
/// colour covariance, rows = RGB output, columns = decorrelated input.
const COLOR_CORRELATION_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// lucid divides the image of the scaled spectrum by 4 before the colour mix.
const SPECTRUM_DIVISOR: f64 = 4.0;

pub struct Fft {
    materials: usize,
    height: usize,
    width: usize,
    /// `[materials, 3, H, W/2+1, 2]`
    theta: Var,
    /// Per-frequency scale `[1, 1, H, W/2+1, 1]`.
    scale: Tensor,
    /// Normalized colour matrix `[3, 3]`.
    color: Tensor,
    /// The inverse FFT with its plans, built once for this size.
    irfft: Irfft2,
}

/// The decorrelated colour matrix divided by its largest column norm (lucid's), `[3, 3]`.
pub fn color_matrix() -> Result<Tensor> {
    let max_norm = (0..3)
        .map(|c| COLOR_CORRELATION_SQRT.iter().map(|row| row[c] * row[c]).sum::<f32>().sqrt())
        .fold(0.0, f32::max);
    let m: Vec<f32> = COLOR_CORRELATION_SQRT.iter().flatten().map(|v| v / max_norm).collect();
    Tensor::from_vec(m, (3, 3), &Device::Cpu)
}

impl Fft {
    pub fn new(materials: usize, height: usize, width: usize, seed: u64) -> Result<Fft> {
        let dev = Device::Cpu;
        let wh = irfft::half_width(width);
        let n = materials * 3 * height * wh * 2;
        let theta = Var::from_vec(super::normal(n, super::INIT_SIGMA, seed), (materials, 3, height, wh, 2), &dev)?;
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
        let color = color_matrix()?;
        Ok(Fft { materials, height, width, theta, scale, color, irfft: Irfft2::new(height, width) })
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![self.theta.clone()]
    }

    pub fn texture(&self) -> Result<Tensor> {
        let (m, h, w) = (self.materials, self.height, self.width);
        let scaled = self.theta.as_tensor().broadcast_mul(&self.scale)?;
        let img = (self.irfft.apply(&scaled)? / SPECTRUM_DIVISOR)?;
        // rgb = C · t per texel.
        let t = img.reshape((m, 3, h * w))?;
        let color = self.color.unsqueeze(0)?.broadcast_as((m, 3, 3))?;
        candle_nn::ops::sigmoid(&color.matmul(&t)?.reshape((m, 3, h, w))?)
    }
}
