//! `XᵀX`, the product behind the style loss's Gram matrices: only the blocks on or above the
//! diagonal, by the level's micro-kernels accumulating into C, then mirrored.

use super::{isa, Isa};

/// `XᵀX` of `x` (`[k, n]` row-major) as `[n, n]`, computing only the blocks on or above the
/// diagonal and mirroring them (half the work of a general product). `None` where the level in
/// use has no kernel for it (portable level, `n` not a multiple of 16): use a general product.
pub fn gram_xtx(x: &[f32], k: usize, n: usize) -> Option<Vec<f32>> {
    assert_eq!(x.len(), k * n);
    let level = isa();
    if level == Isa::Portable || !n.is_multiple_of(16) {
        return None;
    }
    // Chunks of rows that stay in L2 while every block of C passes over them; partial sums per
    // task, added at the end in task order (a reduction tree shaped by work stealing would make
    // the float sum, and so a seeded run, differ from run to run).
    let kc = (64 * 1024 / n).max(16);
    let chunks: Vec<(usize, usize)> = (0..k).step_by(kc).map(|k0| (k0, kc.min(k - k0))).collect();
    let per_task = chunks.len().div_ceil(rayon::current_num_threads()).max(1);
    use rayon::prelude::*;
    let c = chunks
        .par_chunks(per_task)
        .map(|cs| {
            let mut c = vec![0.0f32; n * n];
            for &(k0, kk) in cs {
                // SAFETY: rows k0..k0+kk of x and all of c are in bounds; the level is this CPU's.
                unsafe {
                    #[cfg(target_arch = "x86_64")]
                    match level {
                        Isa::Avx512 => x86::syrk_upper_avx512(kk, n, x.as_ptr().add(k0 * n), c.as_mut_ptr()),
                        Isa::Avx2 => x86::syrk_upper_avx2(kk, n, x.as_ptr().add(k0 * n), c.as_mut_ptr()),
                        Isa::Portable => unreachable!(),
                    }
                }
            }
            c
        })
        .collect::<Vec<_>>();
    let mut parts = c.into_iter();
    let mut c = parts.next().unwrap_or_else(|| vec![0.0; n * n]);
    for p in parts {
        c.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    for i in 0..n {
        for j in 0..i {
            c[i * n + j] = c[j * n + i];
        }
    }
    Some(c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::simd::x86::{kernel256, kernel512, rows};

    /// `C[i, j] += Σ_p X[p, i] X[p, j]` for the blocks of C that reach the diagonal or above
    /// (`X` is `[k, n]` row-major, C `[n, n]`); `n` a multiple of 16.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn syrk_upper_avx512(k: usize, n: usize, x: *const f32, c: *mut f32) {
        const MR: usize = 12;
        const NR: usize = 32;
        for i0 in (0..n).step_by(MR) {
            let mr = MR.min(n - i0);
            for j0 in (0..n).step_by(NR) {
                if j0 + NR.min(n - j0) <= i0 {
                    continue;
                }
                let (ap, bp, cp) = (x.add(i0), x.add(j0), c.add(i0 * n + j0));
                if n - j0 >= 32 {
                    rows!(kernel512, 2, true, mr, k, ap, 1, n, bp, n, cp, n);
                } else {
                    rows!(kernel512, 1, true, mr, k, ap, 1, n, bp, n, cp, n);
                }
            }
        }
    }

    /// As [`syrk_upper_avx512`] with 8-lane registers.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn syrk_upper_avx2(k: usize, n: usize, x: *const f32, c: *mut f32) {
        const MR: usize = 6;
        const NR: usize = 16;
        for i0 in (0..n).step_by(MR) {
            let mr = MR.min(n - i0);
            for j0 in (0..n).step_by(NR) {
                if j0 + NR <= i0 {
                    continue;
                }
                let (ap, bp, cp) = (x.add(i0), x.add(j0), c.add(i0 * n + j0));
                rows!(kernel256, 2, true, mr, k, ap, 1, n, bp, n, cp, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    /// The symmetric Gram kernel against loops: several row chunks (k = 3000 rows of 48 and 64
    /// channels: narrow last panel, row-block remainders), every element written.
    #[test]
    fn gram_xtx_matches_loops() {
        let mut rng = SplitMix(9);
        for &(k, n) in &[(3000, 48), (3000, 64), (5, 16)] {
            let x: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            let Some(g) = gram_xtx(&x, k, n) else {
                assert_eq!(isa(), Isa::Portable);
                return;
            };
            for i in 0..n {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| x[p * n + i] as f64 * x[p * n + j] as f64).sum();
                    let got = g[i * n + j] as f64;
                    assert!((got - want).abs() < 1e-4 * (k as f64).sqrt() * (1.0 + want.abs().sqrt()), "{k}x{n} at ({i}, {j}): {got} vs {want}");
                }
            }
        }
    }
}
