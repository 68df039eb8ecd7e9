//! The CPU's vector instructions, for every step that has a hand-vectorized loop: which level the
//! fast paths use ([`isa`]), `multiversion!` to compile a plain loop once per level, and the
//! vector kernels several steps share: the packed GEMMs of the Winograd convs (f32 and bf16) and
//! the symmetric product behind the style loss's Gram matrices.
//!
//! [`isa`] picks AVX-512 where the CPU has it and the `avx512` cargo feature is on (default),
//! else AVX2 + FMA, else [`Isa::Portable`] (plain Rust loops and the `gemm` crate).
//! `TEXSTYLE_VGG_ISA=avx2` (or `portable`) forces a lower level, for benchmarking what an
//! AVX2-only machine runs; building with `--no-default-features` also drops AVX-512 from the
//! `gemm` crate (used by the first layer and candle's matmuls).

use std::sync::OnceLock;

mod bf16;
mod gemm;
mod gram;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use bf16::{gemm_bf16, pack_panels_bf16};
pub(crate) use gemm::{gemm_packed, pack_panels};
pub use gram::gram_xtx;

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

/// Whether this CPU can run [`gemm_bf16`] (and the level in use is AVX-512).
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Compiles a plain loop once per level: `body` (`#[inline(always)]`, plain loops) is inlined
/// into functions with each level's target features, so its lane loops vectorize to that width.
/// (A closure would not do: closures do not inherit target features.) Two forms:
///
/// - `multiversion!(pub fn name<const C: T, ..>(args) => body)`: `name` runs `body(args)` at the
///   level in use ([`isa`]).
/// - `multiversion!(pub unsafe fn name<const C: T, ..>(level: Isa, args) => body)`: `name` runs
///   `body(args)`, itself an `unsafe fn`, at `level`, which the caller vouches this CPU supports
///   (tests compare levels below the one in use).
macro_rules! multiversion {
    ($vis:vis fn $name:ident $(<$(const $c:ident: $ct:ty),+>)? ($($a:ident: $t:ty),* $(,)?) => $body:ident) => {
        $vis fn $name $(<$(const $c: $ct),+>)? ($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                $crate::simd::multiversion!(@levels $(<$(const $c: $ct),+>)? ($($a: $t),*) => $body);
                // SAFETY: isa() picks a level above Portable only when the CPU has it.
                match $crate::simd::isa() {
                    $crate::simd::Isa::Avx512 => return unsafe { v512 $(::<$($c),+>)? ($($a),*) },
                    $crate::simd::Isa::Avx2 => return unsafe { v256 $(::<$($c),+>)? ($($a),*) },
                    $crate::simd::Isa::Portable => {}
                }
            }
            $body $(::<$($c),+>)? ($($a),*)
        }
    };
    ($vis:vis unsafe fn $name:ident $(<$(const $c:ident: $ct:ty),+>)? ($level:ident: Isa, $($a:ident: $t:ty),* $(,)?) => $body:ident) => {
        $vis unsafe fn $name $(<$(const $c: $ct),+>)? ($level: $crate::simd::Isa, $($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                $crate::simd::multiversion!(@levels $(<$(const $c: $ct),+>)? ($($a: $t),*) => $body);
                // SAFETY: the caller vouches for `level` and for `body`'s contract.
                match $level {
                    $crate::simd::Isa::Avx512 => return unsafe { v512 $(::<$($c),+>)? ($($a),*) },
                    $crate::simd::Isa::Avx2 => return unsafe { v256 $(::<$($c),+>)? ($($a),*) },
                    $crate::simd::Isa::Portable => {}
                }
            }
            let _ = $level;
            // SAFETY: the caller vouches for `body`'s contract.
            unsafe { $body $(::<$($c),+>)? ($($a),*) }
        }
    };
    // The per-level copies of `body`: `v512` and `v256`.
    (@levels $(<$(const $c:ident: $ct:ty),+>)? ($($a:ident: $t:ty),*) => $body:ident) => {
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(unused_unsafe)]
        unsafe fn v512 $(<$(const $c: $ct),+>)? ($($a: $t),*) {
            unsafe { $body $(::<$($c),+>)? ($($a),*) }
        }
        #[target_feature(enable = "avx2,fma")]
        #[allow(unused_unsafe)]
        unsafe fn v256 $(<$(const $c: $ct),+>)? ($($a: $t),*) {
            unsafe { $body $(::<$($c),+>)? ($($a),*) }
        }
    };
}
pub(crate) use multiversion;
