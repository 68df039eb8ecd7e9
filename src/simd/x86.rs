//! The x86 register-blocked micro-kernels behind every GEMM of [`crate::simd`]: one `MR × 16·NV`
//! block of C accumulated in vector registers over the whole `k`, for 16-lane (AVX-512) and
//! 8-lane (AVX2) registers, and [`rows!`] to pick the const row count at run time.

use std::arch::x86_64::*;

/// One `MR × 16·NV` block of C over the full `k`: `A[r, kk]` at `a + r·lda + kk·aks`, B rows
/// `ldb` apart; `ACC` adds to C instead of overwriting it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel512<const MR: usize, const NV: usize, const ACC: bool>(
    k: usize,
    a: *const f32,
    lda: usize,
    aks: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    if ACC {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(c.add(r * ldc + 16 * v));
            }
        }
    }
    let (mut ap, mut bp) = (a, b);
    for _ in 0..k {
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(bp.add(16 * v));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(r * lda));
            for v in 0..NV {
                row[v] = _mm512_fmadd_ps(av, bv[v], row[v]);
            }
        }
        ap = ap.add(aks);
        bp = bp.add(ldb);
    }
    store512(&acc, c, ldc);
}

/// The `MR × 16·NV` accumulators of a micro-kernel into C (rows `ldc` apart).
#[inline(always)]
pub(super) unsafe fn store512<const MR: usize, const NV: usize>(acc: &[[__m512; NV]; MR], c: *mut f32, ldc: usize) {
    for (r, row) in acc.iter().enumerate() {
        for (v, x) in row.iter().enumerate() {
            _mm512_storeu_ps(c.add(r * ldc + 16 * v), *x);
        }
    }
}

/// `rows!(kernel, NV, ACC, mr, args..)`: `kernel::<mr, NV, ACC>(args..)` for a run-time `mr` in
/// 1..=12 (the row remainder of a block).
macro_rules! rows {
    ($kern:ident, $nv:literal, $acc:literal, $mr:expr, $($args:expr),*) => {
        match $mr {
            1 => $kern::<1, $nv, $acc>($($args),*),
            2 => $kern::<2, $nv, $acc>($($args),*),
            3 => $kern::<3, $nv, $acc>($($args),*),
            4 => $kern::<4, $nv, $acc>($($args),*),
            5 => $kern::<5, $nv, $acc>($($args),*),
            6 => $kern::<6, $nv, $acc>($($args),*),
            7 => $kern::<7, $nv, $acc>($($args),*),
            8 => $kern::<8, $nv, $acc>($($args),*),
            9 => $kern::<9, $nv, $acc>($($args),*),
            10 => $kern::<10, $nv, $acc>($($args),*),
            11 => $kern::<11, $nv, $acc>($($args),*),
            12 => $kern::<12, $nv, $acc>($($args),*),
            _ => unreachable!(),
        }
    };
}
pub(super) use rows;

/// As [`kernel512`] with 8-lane registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel256<const MR: usize, const NV: usize, const ACC: bool>(
    k: usize,
    a: *const f32,
    lda: usize,
    aks: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    if ACC {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(c.add(r * ldc + 8 * v));
            }
        }
    }
    let (mut ap, mut bp) = (a, b);
    for _ in 0..k {
        let mut bv = [_mm256_setzero_ps(); NV];
        for (v, x) in bv.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(bp.add(8 * v));
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*ap.add(r * lda));
            for v in 0..NV {
                row[v] = _mm256_fmadd_ps(av, bv[v], row[v]);
            }
        }
        ap = ap.add(aks);
        bp = bp.add(ldb);
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, x) in row.iter().enumerate() {
            _mm256_storeu_ps(c.add(r * ldc + 8 * v), *x);
        }
    }
}
