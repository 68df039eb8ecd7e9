//! The f32 GEMM of the Winograd convs: `C[m, n] = A[m, k] · B[k, n]` with `B` packed once in
//! panels of the level's `nr` columns ([`pack_panels`]), run by the level's micro-kernels.

use super::Isa;

/// Packs `b` (`[k, n]` row-major) into panels of `nr` columns: panel `p` holds columns
/// `p·nr ..` as `[k, width]` rows, panels one after the other (the last may be narrower). With
/// `nr >= n` this is `b` itself.
// The convs write this layout in place as they transform their weights; NNFM packs with it.
pub(crate) fn pack_panels(b: &[f32], k: usize, n: usize, nr: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(k * n);
    for p0 in (0..n).step_by(nr.min(n)) {
        let w = nr.min(n - p0);
        for r in 0..k {
            out.extend_from_slice(&b[r * n + p0..][..w]);
        }
    }
    out
}

/// `C[m, n] = A[m, k] · B[k, n]` with `B` packed by [`pack_panels`] for `isa`'s `nr`; `A` rows
/// `lda` apart, `C` rows `ldc` apart. `n` a multiple of 16 for the vector levels.
///
/// # Safety
/// The pointers cover the stated shapes; `isa` is supported by this CPU ([`super::isa`]).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_packed(isa: Isa, m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::gemm_avx512(m, n, k, a, lda, b, c, ldc),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::gemm_avx2(m, n, k, a, lda, b, c, ldc),
        _ => gemm::gemm(
            m, n, k, c, 1, ldc as isize, false, a, 1, lda as isize, b, 1, n as isize,
            0.0, 1.0, false, false, false, gemm::Parallelism::None,
        ),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::simd::x86::{kernel256, kernel512, rows};

    /// [`super::gemm_packed`] at AVX-512: blocks of 12 rows × 32 columns (a narrower last panel of 16).
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_avx512(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize) {
        const MR: usize = 12;
        const NR: usize = 32;
        for p0 in (0..n).step_by(NR) {
            let w = NR.min(n - p0);
            let bp = b.add(p0 * k);
            for m0 in (0..m).step_by(MR) {
                let mr = MR.min(m - m0);
                let (ap, cp) = (a.add(m0 * lda), c.add(m0 * ldc + p0));
                if w == 32 {
                    rows!(kernel512, 2, false, mr, k, ap, lda, 1, bp, 32, cp, ldc);
                } else {
                    debug_assert_eq!(w, 16);
                    rows!(kernel512, 1, false, mr, k, ap, lda, 1, bp, 16, cp, ldc);
                }
            }
        }
    }

    /// [`super::gemm_packed`] at AVX2: blocks of 6 rows × 16 columns.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_avx2(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize) {
        const MR: usize = 6;
        const NR: usize = 16;
        for p0 in (0..n).step_by(NR) {
            debug_assert_eq!(NR.min(n - p0), 16);
            let bp = b.add(p0 * k);
            for m0 in (0..m).step_by(MR) {
                let mr = MR.min(m - m0);
                let (ap, cp) = (a.add(m0 * lda), c.add(m0 * ldc + p0));
                rows!(kernel256, 2, false, mr, k, ap, lda, 1, bp, 16, cp, ldc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;
    use crate::simd::isa;

    /// Each available level against a plain triple loop, with row remainders and a narrow last
    /// panel (n = 48 with 32-wide panels).
    #[test]
    fn packed_gemm_matches_loops_at_every_level() {
        let mut rng = SplitMix(7);
        for &(m, n, k) in &[(1, 16, 3), (13, 48, 37), (25, 64, 64), (7, 16, 100)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            let mut want = vec![0.0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] = (0..k).map(|t| a[i * k + t] as f64 * b[t * n + j] as f64).sum();
                }
            }
            let mut levels = vec![Isa::Portable];
            if isa() != Isa::Portable {
                levels.push(Isa::Avx2);
            }
            if isa() == Isa::Avx512 {
                levels.push(Isa::Avx512);
            }
            for l in levels {
                let packed = pack_panels(&b, k, n, l.nr());
                // Poisoned output: every element must be written.
                let mut c = vec![f32::NAN; m * n];
                unsafe { gemm_packed(l, m, n, k, a.as_ptr(), k, packed.as_ptr(), c.as_mut_ptr(), n) };
                for (i, (g, w)) in c.iter().zip(&want).enumerate() {
                    assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{l:?} {m}x{n}x{k} at {i}: {g} vs {w}");
                }
            }
        }
    }
}
