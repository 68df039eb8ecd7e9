//! Gram matrix of a feature map and its backward.
//!
//! Normalization (matches the PyTorch baseline): `G = F Fᵀ / (C·H·W)` with `F` the `[C, H·W]`
//! feature matrix. On an [`Act`] (channels-last) this is `FᵀF` of the `[pixels, C]` matrix; the
//! zero border contributes nothing, so the whole padded buffer is one GEMM operand.

use super::Act;

/// `[c, c]` row-major.
pub fn gram(f: &Act) -> Vec<f32> {
    let c = f.c;
    let n = f.data.len() / c;
    let mut g = vec![0.0f32; c * c];
    let scale = 1.0 / (c * f.h * f.w) as f32;
    // SAFETY: operands sized as declared: lhs = Fᵀ (c × n), rhs = F (n × c), dst c × c.
    unsafe {
        gemm::gemm(
            c, c, n, g.as_mut_ptr(), 1, c as isize, false,
            f.data.as_ptr(), c as isize, 1,
            f.data.as_ptr(), 1, c as isize,
            0.0, scale, false, false, false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    g
}

pub fn gram_slow(f: &Act) -> Vec<f32> {
    let c = f.c;
    let mut g = vec![0.0f64; c * c];
    for y in 0..f.h {
        for x in 0..f.w {
            let p = &f.data[f.at(y, x)..][..c];
            for i in 0..c {
                for j in 0..c {
                    g[i * c + j] += p[i] as f64 * p[j] as f64;
                }
            }
        }
    }
    let n = (c * f.h * f.w) as f64;
    g.iter().map(|v| (v / n) as f32).collect()
}

/// Given `dg = dL/dG` (`[c, c]`), adds (or writes, if `!accumulate`) `dL/dF = F (dG + dGᵀ) / (C·H·W)`
/// into `grad` (same geometry as `f`).
pub fn gram_backward(f: &Act, dg: &[f32], grad: &mut Act, accumulate: bool) {
    assert!(grad.same_shape(f) && grad.hp == f.hp && dg.len() == f.c * f.c);
    let c = f.c;
    let n = f.data.len() / c;
    let scale = 1.0 / (c * f.h * f.w) as f32;
    let mut sym = vec![0.0f32; c * c];
    for i in 0..c {
        for j in 0..c {
            sym[i * c + j] = dg[i * c + j] + dg[j * c + i];
        }
    }
    // SAFETY: dst = grad (n × c), lhs = F (n × c), rhs = sym (c × c).
    unsafe {
        gemm::gemm(
            n, c, c, grad.data.as_mut_ptr(), 1, c as isize, accumulate,
            f.data.as_ptr(), 1, c as isize,
            sym.as_ptr(), 1, c as isize,
            1.0, scale, false, false, false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vgg::weights::SplitMix;

    #[test]
    fn gram_matches_slow() {
        let mut rng = SplitMix(9);
        let (h, w, c) = (5, 6, 16);
        let f = Act::from_chw(c, h, w, &(0..h * w * c).map(|_| rng.normal()).collect::<Vec<_>>());
        let (a, b) = (gram(&f), gram_slow(&f));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
