//! Which vector instructions the fast path uses, and the GEMM micro-kernels of the Winograd
//! convs (`C[mr, nr] = A[mr, k] · B[k, nr]`, `B` pre-packed in panels of `nr` columns).
//!
//! [`isa`] picks AVX-512 where the CPU has it and the `avx512` cargo feature is on (default),
//! else AVX2 + FMA, else [`Isa::Portable`] (plain Rust loops and the `gemm` crate).
//! `TEXSTYLE_VGG_ISA=avx2` (or `portable`) forces a lower level, for benchmarking what an
//! AVX2-only machine runs; building with `--no-default-features` also drops AVX-512 from the
//! `gemm` crate (used by the first layer and candle's matmuls).

use std::sync::OnceLock;

/// Instruction set level of the fast path's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// Columns of a packed B panel (two vector registers).
    pub fn nr(self) -> usize {
        match self {
            Isa::Avx512 => 32,
            Isa::Avx2 => 16,
            Isa::Portable => usize::MAX,
        }
    }

    /// Rows of A per micro-kernel call.
    pub fn mr(self) -> usize {
        match self {
            Isa::Avx512 => 12,
            Isa::Avx2 => 6,
            Isa::Portable => usize::MAX,
        }
    }
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let forced = std::env::var("TEXSTYLE_VGG_ISA").unwrap_or_default().to_ascii_lowercase();
        if forced == "portable" {
            return Isa::Portable;
        }
        let avx512 = cfg!(feature = "avx512") && forced != "avx2" && std::arch::is_x86_feature_detected!("avx512f");
        if avx512 {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// The level in use (detected once per process).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(detect)
}

/// `multiversion!(pub fn name<const C: T>(args) => body)`: `name` calls `body(args)` compiled
/// for the level in use ([`isa`]): `body` (`#[inline(always)]`, plain loops) is inlined into
/// functions with each level's target features, so its lane loops vectorize to that width.
/// (A closure would not do: closures do not inherit target features.)
macro_rules! multiversion {
    ($vis:vis fn $name:ident $(<const $c:ident: $ct:ty>)? ($($a:ident: $t:ty),* $(,)?) => $body:ident) => {
        $vis fn $name $(<const $c: $ct>)? ($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn v512 $(<const $c: $ct>)? ($($a: $t),*) {
                    $body $(::<$c>)? ($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256 $(<const $c: $ct>)? ($($a: $t),*) {
                    $body $(::<$c>)? ($($a),*)
                }
                // SAFETY: isa() picks a level above Portable only when the CPU has it.
                match $crate::vgg::ops::simd::isa() {
                    $crate::vgg::ops::simd::Isa::Avx512 => return unsafe { v512 $(::<$c>)? ($($a),*) },
                    $crate::vgg::ops::simd::Isa::Avx2 => return unsafe { v256 $(::<$c>)? ($($a),*) },
                    $crate::vgg::ops::simd::Isa::Portable => {}
                }
            }
            $body $(::<$c>)? ($($a),*)
        }
    };
}
pub(crate) use multiversion;

#[inline(always)]
fn relu_backward_body(g: &mut [f32], a: &[f32]) {
    g.iter_mut().zip(a).for_each(|(g, a)| *g = if *a > 0.0 { *g } else { 0.0 });
}

#[inline(always)]
fn add_relu_backward_body(g: &mut [f32], d: &[f32], a: &[f32]) {
    g.iter_mut().zip(d).zip(a).for_each(|((g, d), a)| *g += if *a > 0.0 { *d } else { 0.0 });
}

#[inline(always)]
fn add_body(g: &mut [f32], d: &[f32]) {
    g.iter_mut().zip(d).for_each(|(g, d)| *g += d);
}

// `g ← g ⊙ [a > 0]`: a ReLU backward, `a` the ReLU's output.
multiversion!(pub fn relu_backward(g: &mut [f32], a: &[f32]) => relu_backward_body);
// `g ← g + d ⊙ [a > 0]`.
multiversion!(pub fn add_relu_backward(g: &mut [f32], d: &[f32], a: &[f32]) => add_relu_backward_body);
// `g ← g + d`.
multiversion!(pub fn add(g: &mut [f32], d: &[f32]) => add_body);

/// Packs `b` (`[k, n]` row-major) into panels of `nr` columns: panel `p` holds columns
/// `p·nr ..` as `[k, width]` rows, panels one after the other (the last may be narrower). With
/// `nr >= n` this is `b` itself.
pub fn pack_panels(b: &[f32], k: usize, n: usize, nr: usize) -> Vec<f32> {
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
/// The pointers cover the stated shapes; `isa` is supported by this CPU ([`isa`]).
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_packed(isa: Isa, m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, c: *mut f32, ldc: usize) {
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
    use std::arch::x86_64::*;

    /// One `MR × 16·NV` block of C over the full `k`: `A[r, kk]` at `a + r·lda + kk·aks`, B rows
    /// `ldb` apart; `ACC` adds to C instead of overwriting it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel512<const MR: usize, const NV: usize, const ACC: bool>(
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
    unsafe fn store512<const MR: usize, const NV: usize>(acc: &[[__m512; NV]; MR], c: *mut f32, ldc: usize) {
        for (r, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + 16 * v), *x);
            }
        }
    }

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

    /// As [`kernel512`] with 8-lane registers.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel256<const MR: usize, const NV: usize, const ACC: bool>(
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

    /// [`kernel512`] on bf16 pairs: `k2` steps of two `k` each; A's pair broadcast as one 32-bit
    /// lane, B rows of `16·NV` column pairs. `aks` and `ACC` only match [`rows!`]'s call shape:
    /// A's pairs are contiguous and C is always overwritten.
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

/// Whether this CPU can run [`gemm_bf16`] (and the level in use is AVX-512).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `x` rounded to the nearest bf16 (ties to even), as its bits: what the hardware conversion does.
pub fn to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    ((u + 0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// Packs `b` (`[k, n]` row-major, `k` even, `n` a multiple of 16) for [`gemm_bf16`]: panels of
/// 32 columns (the last may be 16), each `k/2` rows of (row 2i, row 2i+1) bf16 pairs per column,
/// the layout `vdpbf16ps` multiplies against a broadcast pair of A.
pub fn pack_panels_bf16(b: &[f32], k: usize, n: usize) -> Vec<u16> {
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
/// The pointers cover the stated shapes; [`bf16_supported`] holds.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_bf16(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const u16, c: *mut f32, ldc: usize, scratch: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    {
        assert!(scratch.len() >= m * k && k.is_multiple_of(2));
        x86::gemm_bf16(m, n, k, a, lda, b, c, ldc, scratch.as_mut_ptr());
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("bf16_supported() is false off x86_64 ({m}, {n}, {k}, {a:?}, {lda}, {b:?}, {c:?}, {ldc}, {})", scratch.len());
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

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
