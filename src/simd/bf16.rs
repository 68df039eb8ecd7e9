//! The bf16 GEMM of the Winograd convs (AVX512-BF16 only, see [`super::bf16_supported`]): f32
//! operands rounded to bf16 ([`to_bf16`]), `B` packed once in pairs of rows
//! ([`pack_panels_bf16`]), products accumulated in f32 by `vdpbf16ps`.

/// `x` rounded to the nearest bf16 (ties to even), as its bits: what the hardware conversion does.
pub(crate) fn to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// Packs `b` (`[k, n]` row-major, `k` even, `n` a multiple of 16) for [`gemm_bf16`]: panels of
/// 32 columns (the last may be 16), each `k/2` rows of (row 2i, row 2i+1) bf16 pairs per column,
/// the layout `vdpbf16ps` multiplies against a broadcast pair of A.
pub(crate) fn pack_panels_bf16(b: &[f32], k: usize, n: usize) -> Vec<u16> {
    assert!(k.is_multiple_of(2) && n.is_multiple_of(16) && b.len() == k * n);
    let mut out = Vec::with_capacity(k * n);
    for p0 in (0..n).step_by(32) {
        let w = 32.min(n - p0);
        for kp in 0..k / 2 {
            for j in 0..w {
                out.push(to_bf16(b[2 * kp * n + p0 + j]));
                out.push(to_bf16(b[(2 * kp + 1) * n + p0 + j]));
            }
        }
    }
    out
}

/// `C[m, n] = A[m, k] · B[k, n]` with f32 `A` rounded to bf16 on the way in (rows `lda` apart;
/// through `scratch`, `m·k` elements), `B` packed by [`pack_panels_bf16`], f32 accumulation.
///
/// # Safety
/// The pointers cover the stated shapes; [`super::bf16_supported`] holds.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_bf16(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const u16, c: *mut f32, ldc: usize, scratch: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(scratch.len() >= m * k && k.is_multiple_of(2));
        x86::gemm_bf16(m, n, k, a, lda, b, c, ldc, scratch.as_mut_ptr());
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("bf16_supported() is false off x86_64 ({m}, {n}, {k}, {a:?}, {lda}, {b:?}, {c:?}, {ldc}, {})", scratch.len());
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use crate::simd::x86::{rows, store512};
    use std::arch::x86_64::*;

    /// [`kernel512`](crate::simd::x86::kernel512) on bf16 pairs: `k2` steps of two `k` each; A's
    /// pair broadcast as one 32-bit lane, B rows of `16·NV` column pairs. `aks` and `ACC` only
    /// match `rows!`'s call shape: A's pairs are contiguous and C is always overwritten.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel_bf16<const MR: usize, const NV: usize, const ACC: bool>(
        k2: usize,
        a: *const u16,
        lda: usize,
        _aks: usize,
        b: *const u16,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        debug_assert!(!ACC, "the bf16 kernel overwrites C");
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..k2 {
            let mut bv = [_mm512_setzero_ps(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_castsi512_ps(_mm512_loadu_si512(bp.add(32 * v) as *const _));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(std::ptr::read_unaligned(ap.add(r * lda) as *const i32));
                let av: __m512bh = std::mem::transmute(av);
                for v in 0..NV {
                    row[v] = _mm512_dpbf16_ps(row[v], av, std::mem::transmute::<__m512, __m512bh>(bv[v]));
                }
            }
            ap = ap.add(2);
            bp = bp.add(ldb);
        }
        store512(&acc, c, ldc);
    }

    /// [`super::gemm_bf16`] at AVX512-BF16: A rounded to bf16 pairs into `ab`, then blocks of 12
    /// rows × 32 columns (a narrower last panel of 16).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_bf16(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const u16, c: *mut f32, ldc: usize, ab: *mut u16) {
        // A to bf16 once (k is even: rows of whole pairs), 16 lanes at a time.
        for r in 0..m {
            let (src, dst) = (a.add(r * lda), ab.add(r * k));
            let mut i = 0;
            while i + 16 <= k {
                let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src.add(i)));
                _mm256_storeu_si256(dst.add(i) as *mut __m256i, std::mem::transmute::<__m256bh, __m256i>(h));
                i += 16;
            }
            for j in i..k {
                *dst.add(j) = super::to_bf16(*src.add(j));
            }
        }
        const MR: usize = 12;
        const NR: usize = 32;
        for p0 in (0..n).step_by(NR) {
            let w = NR.min(n - p0);
            let bp = b.add(p0 * k);
            for m0 in (0..m).step_by(MR) {
                let mr = MR.min(m - m0);
                let (ap, cp) = (ab.add(m0 * k) as *const u16, c.add(m0 * ldc + p0));
                if w == 32 {
                    rows!(kernel_bf16, 2, false, mr, k / 2, ap, k, 0, bp, 64, cp, ldc);
                } else {
                    debug_assert_eq!(w, 16);
                    rows!(kernel_bf16, 1, false, mr, k / 2, ap, k, 0, bp, 32, cp, ldc);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;
    use crate::simd::bf16_supported;

    /// The bf16 kernel against f64 loops over the bf16-rounded operands: it must be those
    /// products, accumulated in f32 (remainder rows, a 16-wide last panel, every element written).
    #[test]
    fn bf16_gemm_is_the_product_of_rounded_operands() {
        // Rounding is to nearest, ties to even (portable code: checked on every CPU).
        assert_eq!((to_bf16(1.0), to_bf16(f32::from_bits(0x3f80_8000)), to_bf16(f32::from_bits(0x3f81_8000))), (0x3f80, 0x3f80, 0x3f82));
        if !bf16_supported() {
            // The kernel may not run here (its safety contract), so check what keeps it from
            // running: the network refuses bf16 with its typed error, and the default is f32.
            use crate::vgg::weights::{Arch, Preprocess, VggWeights};
            use crate::vgg::{Backend, Precision, Vgg, VggError};
            let w = VggWeights::random(Arch::Vgg16, Preprocess::TorchvisionRgb, 1);
            match Vgg::from_weights_with(&w, &candle_core::Device::Cpu, Backend::Fast, Precision::Bf16) {
                Err(VggError::Bf16Unsupported) => {}
                Err(e) => panic!("bf16 refused with the wrong error: {e}"),
                Ok(_) => panic!("a bf16 network was built on a CPU without AVX512-BF16"),
            }
            assert_eq!(Precision::best(), Precision::F32);
            return;
        }
        let mut rng = SplitMix(9);
        let round = |x: f32| f32::from_bits((to_bf16(x) as u32) << 16);
        for &(m, n, k) in &[(1, 16, 2), (13, 48, 38), (25, 64, 64), (7, 16, 100)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
            let packed = pack_panels_bf16(&b, k, n);
            let mut c = vec![f32::NAN; m * n];
            let mut scratch = vec![0u16; m * k];
            unsafe { gemm_bf16(m, n, k, a.as_ptr(), k, packed.as_ptr(), c.as_mut_ptr(), n, &mut scratch) };
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|t| round(a[i * k + t]) as f64 * round(b[t * n + j]) as f64).sum();
                    let g = c[i * n + j] as f64;
                    assert!((g - want).abs() < 1e-4 * (1.0 + want.abs()), "{m}x{n}x{k} at ({i}, {j}): {g} vs {want}");
                }
            }
        }
    }
}
