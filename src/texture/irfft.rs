//! `irfft2`: half spectrum → real image, as a candle custom op whose
//! backward is its exact adjoint (checked against finite differences).
//!
//! The operator, for a half spectrum `X[.., H, W/2+1]` (real and imaginary
//! parts in a trailing axis of 2):
//!
//! `y[n] = 1/(H·W) · Σ_k c_k · Re(X_k · e^{2πi(k_y n_y/H + k_x n_x/W)})`
//!
//! with `c_k = 1` for column 0 (and column W/2 when W is even) and 2 for the
//! others — numpy's `irfft2` on Hermitian-consistent input, and a well
//! defined linear map on any input, so the gradient is exact:
//! `∂L/∂X_k = c_k/(H·W) · FFT2(∂L/∂y)_k` (real and imaginary parts).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftDirection, FftPlanner};

/// Number of columns of the half spectrum of a width-`w` image.
pub fn half_width(w: usize) -> usize {
    w / 2 + 1
}

/// Column weight `c_k` (see the module docs).
fn column_weight(kx: usize, w: usize) -> f32 {
    if kx == 0 || (w.is_multiple_of(2) && kx == w / 2) {
        1.0
    } else {
        2.0
    }
}

/// Plans for one image size, built once.
struct Plans {
    h: usize,
    w: usize,
    rows: [Arc<dyn Fft<f32>>; 2],
    cols: [Arc<dyn Fft<f32>>; 2],
}

impl Plans {
    fn new(h: usize, w: usize) -> Plans {
        let mut p = FftPlanner::new();
        Plans {
            h,
            w,
            rows: [p.plan_fft(w, FftDirection::Forward), p.plan_fft(w, FftDirection::Inverse)],
            cols: [p.plan_fft(h, FftDirection::Forward), p.plan_fft(h, FftDirection::Inverse)],
        }
    }

    /// Unnormalized 2-D FFT in place (`inverse` picks e^{+i…}).
    fn fft2(&self, data: &mut [Complex32], inverse: bool) {
        let d = inverse as usize;
        self.rows[d].process(data);
        let (h, w) = (self.h, self.w);
        let mut t = vec![Complex32::default(); h * w];
        transpose(data, &mut t, h, w);
        self.cols[d].process(&mut t);
        transpose(&t, data, w, h);
    }
}

fn transpose(src: &[Complex32], dst: &mut [Complex32], rows: usize, cols: usize) {
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// The custom op: `[.., H, W/2+1, 2]` → `[.., H, W]`. Cloning shares the plans.
#[derive(Clone)]
pub struct Irfft2 {
    plans: Arc<Plans>,
}

impl Irfft2 {
    pub fn new(h: usize, w: usize) -> Irfft2 {
        Irfft2 { plans: Arc::new(Plans::new(h, w)) }
    }

    /// `irfft2` of `spec` (`[.., H, W/2+1, 2]`, f32, CPU) into `[.., H, W]`, with these plans.
    pub fn apply(&self, spec: &Tensor) -> Result<Tensor> {
        spec.contiguous()?.apply_op1(self.clone())
    }

    /// Forward on plain slices: `spec.len() = n·H·(W/2+1)·2`, returns `n·H·W`.
    fn forward(&self, spec: &[f32]) -> Vec<f32> {
        let (h, w) = (self.plans.h, self.plans.w);
        let wh = half_width(w);
        let n = spec.len() / (h * wh * 2);
        let norm = 1.0 / (h * w) as f32;
        let mut out = vec![0.0f32; n * h * w];
        let mut z = vec![Complex32::default(); h * w];
        for (img, dst) in out.chunks_exact_mut(h * w).enumerate() {
            z.fill(Complex32::default());
            let src = &spec[img * h * wh * 2..(img + 1) * h * wh * 2];
            for ky in 0..h {
                for kx in 0..wh {
                    let i = (ky * wh + kx) * 2;
                    z[ky * w + kx] = Complex32::new(src[i], src[i + 1]) * column_weight(kx, w);
                }
            }
            self.plans.fft2(&mut z, true);
            for (d, v) in dst.iter_mut().zip(&z) {
                *d = v.re * norm;
            }
        }
        out
    }

    /// The adjoint: image gradient `n·H·W` → spectrum gradient `n·H·(W/2+1)·2`.
    pub fn adjoint(&self, grad: &[f32]) -> Vec<f32> {
        let (h, w) = (self.plans.h, self.plans.w);
        let wh = half_width(w);
        let n = grad.len() / (h * w);
        let norm = 1.0 / (h * w) as f32;
        let mut out = vec![0.0f32; n * h * wh * 2];
        let mut z = vec![Complex32::default(); h * w];
        for (img, dst) in out.chunks_exact_mut(h * wh * 2).enumerate() {
            for (zv, &g) in z.iter_mut().zip(&grad[img * h * w..(img + 1) * h * w]) {
                *zv = Complex32::new(g, 0.0);
            }
            self.plans.fft2(&mut z, false);
            for ky in 0..h {
                for kx in 0..wh {
                    let s = column_weight(kx, w) * norm;
                    let v = z[ky * w + kx];
                    dst[(ky * wh + kx) * 2] = v.re * s;
                    dst[(ky * wh + kx) * 2 + 1] = v.im * s;
                }
            }
        }
        out
    }
}

impl CustomOp1 for Irfft2 {
    fn name(&self) -> &'static str {
        "irfft2"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("irfft2: expected f32 input")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("irfft2: input must be contiguous")
        };
        let dims = layout.shape().dims();
        let (h, w) = (self.plans.h, self.plans.w);
        if dims.len() < 3 || dims[dims.len() - 3..] != [h, half_width(w), 2] {
            candle_core::bail!("irfft2: expected [.., {h}, {}, 2], got {dims:?}", half_width(w))
        }
        let out = self.forward(&data[start..end]);
        let mut shape = dims[..dims.len() - 3].to_vec();
        shape.extend([h, w]);
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Some(Tensor::from_vec(self.adjoint(&g), arg.shape(), arg.device())?))
    }
}

/// `irfft2` of `spec` (`[.., H, W/2+1, 2]`, f32, CPU) into `[.., H, W]`, planning for this call
/// (a repeated transform keeps an [`Irfft2`] instead).
pub fn irfft2(spec: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    Irfft2::new(h, w).apply(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The slow twin: the defining sum, term by term.
    fn irfft2_slow(spec: &[f32], h: usize, w: usize) -> Vec<f32> {
        let wh = half_width(w);
        let mut out = vec![0.0f64; h * w];
        for ny in 0..h {
            for nx in 0..w {
                let mut acc = 0.0f64;
                for ky in 0..h {
                    for kx in 0..wh {
                        let phi = std::f64::consts::TAU * (ky as f64 * ny as f64 / h as f64 + kx as f64 * nx as f64 / w as f64);
                        let (re, im) = (spec[(ky * wh + kx) * 2] as f64, spec[(ky * wh + kx) * 2 + 1] as f64);
                        acc += column_weight(kx, w) as f64 * (re * phi.cos() - im * phi.sin());
                    }
                }
                out[ny * w + nx] = acc / (h * w) as f64;
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn matches_the_defining_sum_for_even_and_odd_sizes() {
        for (h, w) in [(4, 4), (3, 5), (6, 8)] {
            let spec = pseudo_random(h * half_width(w) * 2, 7);
            let fast = Irfft2::new(h, w).forward(&spec);
            let slow = irfft2_slow(&spec, h, w);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5, "{h}x{w}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn inverts_a_real_fft() {
        // A real image's half spectrum comes back to the image.
        let (h, w) = (4, 6);
        let img = pseudo_random(h * w, 3);
        let plans = Plans::new(h, w);
        let mut z: Vec<Complex32> = img.iter().map(|&v| Complex32::new(v, 0.0)).collect();
        plans.fft2(&mut z, false);
        let wh = half_width(w);
        let spec: Vec<f32> = (0..h).flat_map(|ky| (0..wh).flat_map(move |kx| [ky, kx])).collect::<Vec<_>>()
            .chunks(2).flat_map(|k| { let v = z[k[0] * w + k[1]]; [v.re, v.im] }).collect();
        let back = Irfft2::new(h, w).forward(&spec);
        for (a, b) in back.iter().zip(&img) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (h, w) = (4, 6);
        let n = 2 * h * half_width(w) * 2;
        let spec = Var::from_vec(pseudo_random(n, 11), (2, h, half_width(w), 2), &Device::Cpu).unwrap();
        let weights = Tensor::from_vec(pseudo_random(2 * h * w, 5), (2, h, w), &Device::Cpu).unwrap();
        let loss = |s: &Tensor| (irfft2(s, h, w).unwrap() * &weights).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss(spec.as_tensor()).backward().unwrap();
        let g = grads.get(spec.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let base = spec.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let eps = 1e-2f32;
        for i in (0..n).step_by(3) {
            let mut p = base.clone();
            p[i] += eps;
            let mut m = base.clone();
            m[i] -= eps;
            let f = |v: Vec<f32>| {
                let t = Tensor::from_vec(v, spec.shape(), &Device::Cpu).unwrap();
                loss(&t).to_scalar::<f32>().unwrap() as f64
            };
            let fd = (f(p) - f(m)) / (2.0 * eps as f64);
            assert!((fd - g[i] as f64).abs() < 1e-3 * (1.0 + fd.abs()), "element {i}: fd {fd} vs grad {}", g[i]);
        }
    }
}
