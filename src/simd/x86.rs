//! The x86 register-blocked micro-kernels behind every GEMM of [`crate::simd`]: one `MR × 16·NV`
//! block of C accumulated in vector registers over the whole `k`, for 16-lane (AVX-512) and
//! 8-lane (AVX2) registers, and [`rows!`] to pick the const row count at run time.

use std::arch::x86_64::*;

/// `micro_kernel!(name, store, register, lanes, zero, load, splat, fma, store_one)` defines the
/// register-blocked kernel `name` (and its `store`) for one register width: the AVX-512 and AVX2
/// kernels are one template, so they cannot drift apart.
macro_rules! micro_kernel {
    ($(#[$doc:meta])* $name:ident, $store:ident, $reg:ty, $lanes:literal, $zero:ident, $load:ident, $splat:ident, $fma:ident, $store_one:ident) => {
        $(#[$doc])*
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $name<const MR: usize, const NV: usize, const ACC: bool>(
            k: usize,
            a: *const f32,
            lda: usize,
            aks: usize,
            b: *const f32,
            ldb: usize,
            c: *mut f32,
            ldc: usize,
        ) {
            let mut acc = [[$zero(); NV]; MR];
            if ACC {
                for (r, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = $load(c.add(r * ldc + $lanes * v));
                    }
                }
            }
            let (mut ap, mut bp) = (a, b);
            for _ in 0..k {
                let mut bv = [$zero(); NV];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = $load(bp.add($lanes * v));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = $splat(*ap.add(r * lda));
                    for v in 0..NV {
                        row[v] = $fma(av, bv[v], row[v]);
                    }
                }
                ap = ap.add(aks);
                bp = bp.add(ldb);
            }
            $store(&acc, c, ldc);
        }

        /// The `MR × lanes·NV` accumulators of a micro-kernel into C (rows `ldc` apart).
        #[inline(always)]
        pub(super) unsafe fn $store<const MR: usize, const NV: usize>(acc: &[[$reg; NV]; MR], c: *mut f32, ldc: usize) {
            for (r, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    $store_one(c.add(r * ldc + $lanes * v), *x);
                }
            }
        }
    };
}

micro_kernel!(
    /// One `MR × 16·NV` block of C over the full `k`: `A[r, kk]` at `a + r·lda + kk·aks`, B rows
    /// `ldb` apart; `ACC` adds to C instead of overwriting it.
    kernel512, store512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps
);

micro_kernel!(
    /// As [`kernel512`] with 8-lane registers.
    kernel256, store256, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps
);

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
