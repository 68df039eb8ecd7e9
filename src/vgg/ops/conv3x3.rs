//! 3×3, stride 1, pad 1 convolution on [`Act`] buffers, with fused bias + ReLU.
//!
//! Fast path: Winograd F(m, 3) (m = 2 or 4): each m×m output tile comes from an (m+2)² input
//! tile; the 9-tap conv becomes (m+2)² independent GEMMs `[tiles, cin] × [cin, cout]` in the
//! transformed domain, on pre-transformed weights. F(4,3) does 36 multiplies per 16 outputs
//! instead of 144; F(2,3) 16 per 4 instead of 36 and is numerically closer to direct.
//! Tiles are processed in blocks sized for the cache; per-thread scratch is reused across calls.
//!
//! The gradient with respect to the input is the same conv applied to the output gradient with
//! the kernel flipped spatially and its in/out channels swapped ([`flip_swap`]). (Fusing the ReLU
//! mask into the input transform measured 2.5× slower than one in-place masking pass, so the
//! caller masks.) Kernel gradients are never computed (weights are constants).
//!
//! For a first layer with few input channels (RGB), [`DirectConv`] computes the conv tap by tap.

use std::cell::RefCell;

use rayon::prelude::*;

use super::simd::{self, Isa};
use super::{Act, SendPtr};

/// Channel lanes processed together by the transforms (one AVX-512 register).
const CH: usize = 16;

/// Flips a kernel `[cout, cin, 3, 3]` spatially and swaps its channels: `[cin, cout, 3, 3]`.
pub fn flip_swap(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut f = vec![0.0; w.len()];
    for o in 0..cout {
        for i in 0..cin {
            for t in 0..9 {
                f[(i * cout + o) * 9 + (8 - t)] = w[(o * cin + i) * 9 + t];
            }
        }
    }
    f
}

/// Reference: direct conv with plain loops. `weight` OIHW `[cout, cin, 3, 3]`.
pub fn conv3x3_slow(input: &Act, weight: &[f32], bias: Option<&[f32]>, cout: usize, relu: bool) -> Act {
    let cin = input.c;
    let mut out = Act::zeros(input.h, input.w, cout);
    for y in 0..input.h {
        for x in 0..input.w {
            for o in 0..cout {
                let mut s = bias.map_or(0.0, |b| b[o]) as f64;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let p = ((y + ky) * input.wp + x + kx) * cin;
                        for i in 0..cin {
                            s += input.data[p + i] as f64 * weight[(o * cin + i) * 9 + ky * 3 + kx] as f64;
                        }
                    }
                }
                let o_at = out.at(y, x) + o;
                out.data[o_at] = if relu { s.max(0.0) as f32 } else { s as f32 };
            }
        }
    }
    out
}

/// Kernel transform `G` (α×3) of F(2,3) and F(4,3) (Lavin & Gray's points 0, ±1, ±2, ∞).
const G23: [[f64; 3]; 4] = [[1., 0., 0.], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0., 0., 1.]];
const G43: [[f64; 3]; 6] = [
    [1. / 4., 0., 0.],
    [-1. / 6., -1. / 6., -1. / 6.],
    [-1. / 6., 1. / 6., -1. / 6.],
    [1. / 24., 1. / 12., 1. / 6.],
    [1. / 24., -1. / 12., 1. / 6.],
    [0., 0., 1.],
];

/// Which Winograd variant a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    F2,
    F4,
}

impl Tile {
    fn g(self) -> &'static [[f64; 3]] {
        match self {
            Tile::F2 => &G23,
            Tile::F4 => &G43,
        }
    }
}

/// One vector of channel lanes.
type L = [f32; CH];

#[inline(always)]
fn ln(f: impl Fn(usize) -> f32) -> L {
    std::array::from_fn(f)
}

/// `Bᵀ x` along one axis of an α-point tile (α = 4: F(2,3), α = 6: F(4,3)).
#[inline(always)]
fn bt_1d<const A: usize>(d: &[L; A]) -> [L; A] {
    let mut r = [[0.0; CH]; A];
    if A == 4 {
        r[0] = ln(|l| d[0][l] - d[2][l]);
        r[1] = ln(|l| d[1][l] + d[2][l]);
        r[2] = ln(|l| d[2][l] - d[1][l]);
        r[3] = ln(|l| d[1][l] - d[3][l]);
    } else {
        let p = ln(|l| d[4][l] - d[2][l]);
        let q = ln(|l| d[1][l] - d[3][l]);
        r[0] = ln(|l| 4.0 * d[0][l] - 5.0 * d[2][l] + d[4][l]);
        r[1] = ln(|l| -4.0 * (d[1][l] + d[2][l]) + d[3][l] + d[4][l]);
        r[2] = ln(|l| 4.0 * (d[1][l] - d[2][l]) + d[4][l] - d[3][l]);
        r[3] = ln(|l| p[l] - 2.0 * q[l]);
        r[4] = ln(|l| p[l] + 2.0 * q[l]);
        r[5] = ln(|l| 4.0 * d[1][l] - 5.0 * d[3][l] + d[5][l]);
    }
    r
}

/// `Aᵀ m` along one axis: α points to the tile's M outputs.
#[inline(always)]
fn at_1d<const M: usize, const A: usize>(m: &[L; A]) -> [L; M] {
    let mut y = [[0.0; CH]; M];
    if M == 2 {
        y[0] = ln(|l| m[0][l] + m[1][l] + m[2][l]);
        y[1] = ln(|l| m[1][l] - m[2][l] - m[3][l]);
    } else {
        let a = ln(|l| m[1][l] + m[2][l]);
        let b = ln(|l| m[1][l] - m[2][l]);
        let c = ln(|l| m[3][l] + m[4][l]);
        let d = ln(|l| m[3][l] - m[4][l]);
        y[0] = ln(|l| m[0][l] + a[l] + c[l]);
        y[1] = ln(|l| b[l] + 2.0 * d[l]);
        y[2] = ln(|l| a[l] + 4.0 * c[l]);
        y[3] = ln(|l| b[l] + 8.0 * d[l] + m[5][l]);
    }
    y
}

/// A 3×3 conv with its weights pre-transformed for Winograd.
#[derive(Debug, Clone)]
pub struct WinogradConv {
    pub tile: Tile,
    pub cin: usize,
    pub cout: usize,
    /// Kernel level of the transforms (and of `u`'s f32 panels).
    isa: Isa,
    u: Packed,
    bias: Option<Vec<f32>>,
}

/// The GEMM right-hand sides `U`: `[α², cin, cout]`, each `[cin, cout]` packed in column panels.
#[derive(Debug, Clone)]
enum Packed {
    /// f32, for the conv's `isa` ([`simd::pack_panels`]).
    F32(Vec<f32>),
    /// bf16 pairs ([`simd::pack_panels_bf16`]), for the AVX512-BF16 kernel.
    Bf16(Vec<u16>),
}

/// `G g Gᵀ` of every `[cout, cin]` kernel, as `[α², cin, cout]`, each `[cin, cout]` packed for
/// `isa` ([`simd::pack_panels`]'s layout, written in place: no second copy of these large arrays).
fn transform_weights(g_mat: &[[f64; 3]], w: &[f32], cout: usize, cin: usize, isa: Isa) -> Vec<f32> {
    let a = g_mat.len();
    let nr = isa.nr().min(cout);
    let mut u = vec![0.0f32; a * a * cin * cout];
    let up = SendPtr(u.as_mut_ptr());
    (0..cout).into_par_iter().for_each(|o| {
        let up = up;
        // Column o sits in panel p, `width` columns wide, at `col` within it.
        let (p, col) = (o / nr, o % nr);
        let width = nr.min(cout - p * nr);
        for i in 0..cin {
            let g = &w[(o * cin + i) * 9..][..9];
            // tmp = G g  (α×3)
            let mut tmp = [[0.0f64; 3]; 6];
            for (t, gr) in tmp.iter_mut().zip(g_mat) {
                *t = std::array::from_fn(|c| (0..3).map(|k| gr[k] * g[k * 3 + c] as f64).sum());
            }
            for r in 0..a {
                for s in 0..a {
                    let v: f64 = (0..3).map(|k| tmp[r][k] * g_mat[s][k]).sum();
                    // SAFETY: in bounds; column o is written by this task only.
                    unsafe { *up.0.add((r * a + s) * cin * cout + p * nr * cin + i * width + col) = v as f32 };
                }
            }
        }
    });
    u
}

thread_local! {
    /// Per-thread scratch reused across calls (avoids page faults of fresh large allocations).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

thread_local! {
    /// One ξ's transformed input in bf16, per thread.
    static BF16_SCRATCH: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// What the transforms of one tile block read and write.
#[derive(Clone, Copy)]
struct Block<'a> {
    input: &'a Act,
    cin: usize,
    cout: usize,
    /// First tile of the block, tiles in it, tiles per row of the image.
    t0: usize,
    nt: usize,
    tiles_x: usize,
    /// Transformed input `[α², nt, cin]`.
    v: SendPtr,
    /// GEMM results `[α², nt, cout]`.
    m: *const f32,
    /// Output image (padded, channels-last, `wp` columns) and its unpadded size.
    out: SendPtr,
    out_wp: usize,
    h: usize,
    w: usize,
    bias: Option<&'a [f32]>,
    relu: bool,
    /// ReLU mask: an output is zeroed where this buffer (same layout as the output) is not
    /// positive; null for none.
    mask: *const f32,
}
unsafe impl Send for Block<'_> {}
unsafe impl Sync for Block<'_> {}

/// Input transform of tiles `range` of the block: `V[ξ, t, c] = (Bᵀ d B)[ξ]`.
#[inline(always)]
unsafe fn input_tiles<const M: usize, const A: usize>(b: &Block<'_>, range: std::ops::Range<usize>) {
    let (input, cin, nt) = (b.input, b.cin, b.nt);
    for t in range {
        let (ty, tx) = ((b.t0 + t) / b.tiles_x, (b.t0 + t) % b.tiles_x);
        let base = (ty * M * input.wp + tx * M) * cin;
        for c0 in (0..cin).step_by(CH) {
            let mut tmp = [[[0.0f32; CH]; A]; A];
            for col in 0..A {
                let d: [L; A] = std::array::from_fn(|r| {
                    let p = base + (r * input.wp + col) * cin + c0;
                    input.data[p..p + CH].try_into().expect("CH lanes")
                });
                let r = bt_1d::<A>(&d);
                for i in 0..A {
                    tmp[i][col] = r[i];
                }
            }
            for (i, row) in tmp.iter().enumerate() {
                let r = bt_1d::<A>(row);
                for (j, lane) in r.iter().enumerate() {
                    // SAFETY: tile t owns V[.., t, ..]; in bounds by construction.
                    std::ptr::copy_nonoverlapping(lane.as_ptr(), b.v.0.add(((i * A + j) * nt + t) * cin + c0), CH);
                }
            }
        }
    }
}

/// Output transform of tiles `range`: `y = Aᵀ M A + bias`, ReLU if asked, written where the
/// tile lies inside the image.
#[inline(always)]
unsafe fn output_tiles<const M: usize, const A: usize>(b: &Block<'_>, range: std::ops::Range<usize>) {
    let (cout, nt) = (b.cout, b.nt);
    for t in range {
        let (ty, tx) = ((b.t0 + t) / b.tiles_x, (b.t0 + t) % b.tiles_x);
        for c0 in (0..cout).step_by(CH) {
            let mut s = [[[0.0f32; CH]; A]; M];
            for j in 0..A {
                let col: [L; A] = std::array::from_fn(|i| {
                    let src = b.m.add(((i * A + j) * nt + t) * cout + c0);
                    std::ptr::read_unaligned(src as *const L)
                });
                let r = at_1d::<M, A>(&col);
                for i in 0..M {
                    s[i][j] = r[i];
                }
            }
            let bias: L = match b.bias {
                Some(bb) => bb[c0..c0 + CH].try_into().expect("CH lanes"),
                None => [0.0; CH],
            };
            for (r, row) in s.iter().enumerate() {
                let y = ty * M + r;
                if y >= b.h {
                    break;
                }
                let outs = at_1d::<M, A>(row);
                for (q, o) in outs.iter().enumerate() {
                    let x = tx * M + q;
                    if x >= b.w {
                        break;
                    }
                    let mut acc = ln(|l| o[l] + bias[l]);
                    if b.relu {
                        acc = ln(|l| acc[l].max(0.0));
                    }
                    let at = ((y + 1) * b.out_wp + x + 1) * cout + c0;
                    if !b.mask.is_null() {
                        let m = std::ptr::read_unaligned(b.mask.add(at) as *const L);
                        acc = ln(|l| if m[l] > 0.0 { acc[l] } else { 0.0 });
                    }
                    // SAFETY: (y, x) is inside the image; tile t owns these pixels.
                    std::ptr::copy_nonoverlapping(acc.as_ptr(), b.out.0.add(at), CH);
                }
            }
        }
    }
}

/// The transforms compiled for each level (the lane loops vectorize to that width).
macro_rules! per_isa {
    ($name:ident, $body:ident) => {
        unsafe fn $name<const M: usize, const A: usize>(isa: Isa, b: &Block<'_>, range: std::ops::Range<usize>) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn v512<const M: usize, const A: usize>(b: &Block<'_>, range: std::ops::Range<usize>) {
                    $body::<M, A>(b, range)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v256<const M: usize, const A: usize>(b: &Block<'_>, range: std::ops::Range<usize>) {
                    $body::<M, A>(b, range)
                }
                match isa {
                    Isa::Avx512 => return v512::<M, A>(b, range),
                    Isa::Avx2 => return v256::<M, A>(b, range),
                    Isa::Portable => {}
                }
            }
            let _ = isa;
            $body::<M, A>(b, range)
        }
    };
}
per_isa!(input_tiles_isa, input_tiles);
per_isa!(output_tiles_isa, output_tiles);

impl WinogradConv {
    /// `weight` OIHW `[cout, cin, 3, 3]`; `bias` `[cout]` or none. Channel counts must be multiples of 16.
    pub fn new(tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        Self::with_isa(simd::isa(), tile, weight, bias, cout, cin)
    }

    /// Like [`WinogradConv::new`], for a given kernel level (tests compare levels).
    pub fn with_isa(isa: Isa, tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        assert!(cin.is_multiple_of(CH) && cout.is_multiple_of(CH), "winograd conv needs channels multiple of {CH}, got {cin}->{cout}");
        assert_eq!(weight.len(), cout * cin * 9);
        let bias = bias.map(|b| b.to_vec());
        let u = transform_weights(tile.g(), weight, cout, cin, isa);
        WinogradConv { tile, cin, cout, isa, u: Packed::F32(u), bias }
    }

    /// A conv whose GEMMs take bf16 operands (the CPU must have AVX512-BF16:
    /// [`simd::bf16_supported`]); tests compare it with the f32 levels.
    pub fn with_bf16(tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        assert!(simd::bf16_supported(), "this CPU has no AVX512-BF16");
        Self::bf16(tile, weight, bias.map(|b| b.to_vec()), cout, cin)
    }

    fn bf16(tile: Tile, weight: &[f32], bias: Option<Vec<f32>>, cout: usize, cin: usize) -> Self {
        // Unpacked f32 first (the portable level's layout is plain [cin, cout]), then packed in bf16.
        let u = transform_weights(tile.g(), weight, cout, cin, Isa::Portable);
        let ub = u.chunks_exact(cin * cout).flat_map(|x| simd::pack_panels_bf16(x, cin, cout)).collect();
        WinogradConv { tile, cin, cout, isa: Isa::Avx512, u: Packed::Bf16(ub), bias }
    }

    /// The input gradient's conv: kernel flipped, channels swapped, no bias.
    pub fn backward_of(tile: Tile, weight: &[f32], cout: usize, cin: usize) -> Self {
        Self::new(tile, &flip_swap(weight, cout, cin), None, cin, cout)
    }

    /// [`WinogradConv::backward_of`] with bf16 GEMMs.
    pub fn backward_of_bf16(tile: Tile, weight: &[f32], cout: usize, cin: usize) -> Self {
        Self::with_bf16(tile, &flip_swap(weight, cout, cin), None, cin, cout)
    }

    /// `out = conv(input) + bias`, then ReLU if `relu`. `out` must have the input's height and
    /// width and `cout` channels; only its image region is written.
    pub fn forward(&self, input: &Act, out: &mut Act, relu: bool) {
        self.forward_masked(input, out, relu, None)
    }

    /// [`WinogradConv::forward`], then zero where `mask` (shaped as `out`, e.g. the ReLU output
    /// that `out` is the gradient of) is not positive: a ReLU backward fused into the output pass.
    pub fn forward_masked(&self, input: &Act, out: &mut Act, relu: bool, mask: Option<&Act>) {
        assert_eq!(input.c, self.cin);
        assert!(out.c == self.cout && out.h == input.h && out.w == input.w && out.hp == input.hp);
        if let Some(m) = mask {
            assert!(m.same_shape(out) && m.wp == out.wp, "mask shape");
        }
        let mask = mask.map_or(std::ptr::null(), |m| m.data.as_ptr());
        match self.tile {
            Tile::F2 => self.run::<2, 4>(input, out, relu, mask),
            Tile::F4 => self.run::<4, 6>(input, out, relu, mask),
        }
    }

    fn run<const M: usize, const A: usize>(&self, input: &Act, out: &mut Act, relu: bool, mask: *const f32) {
        let (tiles_y, tiles_x) = (input.h.div_ceil(M), input.w.div_ceil(M));
        let tiles = tiles_y * tiles_x;
        let (cin, cout) = (self.cin, self.cout);
        // Blocks of tiles whose transformed input + output stay near the L2 cache, but at least
        // BLOCK_MIN_TILES so that each pass over the transformed weights (up to 36 MiB) feeds
        // enough tiles.
        let per_tile = A * A * (cin + cout);
        let block = (BLOCK_FLOATS / per_tile).clamp(BLOCK_MIN_TILES, 512).min(tiles);
        let n_blocks = tiles.div_ceil(block);
        let out_ptr = SendPtr(out.data.as_mut_ptr());
        let (out_wp, h, w) = (out.wp, out.h, out.w);
        let threads = rayon::current_num_threads();
        let isa = self.isa;
        let mask = SendPtr(mask as *mut f32);
        let do_block = |bi: usize, inner_par: bool| {
            let mask = mask;
            let t0 = bi * block;
            let nt = block.min(tiles - t0);
            with_scratch(A * A * nt * (cin + cout), |scratch| {
                let (v, m) = scratch.split_at_mut(A * A * nt * cin);
                let blk = Block {
                    input,
                    cin,
                    cout,
                    t0,
                    nt,
                    tiles_x,
                    v: SendPtr(v.as_mut_ptr()),
                    m: m.as_ptr(),
                    out: out_ptr,
                    out_wp,
                    h,
                    w,
                    bias: self.bias.as_deref(),
                    relu,
                    mask: mask.0,
                };
                let chunks = if inner_par { 4 * threads } else { 1 };
                let step = nt.div_ceil(chunks);
                let ranges = |f: &(dyn Fn(std::ops::Range<usize>) + Sync)| {
                    if inner_par {
                        (0..nt.div_ceil(step)).into_par_iter().for_each(|c| f(c * step..nt.min((c + 1) * step)));
                    } else {
                        f(0..nt);
                    }
                };
                // SAFETY: tiles of disjoint ranges write disjoint parts of V.
                ranges(&|r| unsafe { input_tiles_isa::<M, A>(isa, &blk, r) });
                self.gemms::<A>(v, m, nt, inner_par);
                let blk = Block { m: m.as_ptr(), ..blk };
                // SAFETY: tiles of disjoint ranges write disjoint pixels of `out`.
                ranges(&|r| unsafe { output_tiles_isa::<M, A>(isa, &blk, r) });
            });
        };
        if n_blocks >= 2 * threads {
            (0..n_blocks).into_par_iter().for_each(|b| do_block(b, false));
        } else {
            (0..n_blocks).for_each(|b| do_block(b, true));
        }
    }

    /// `M[ξ] = V[ξ] · U[ξ]` for each of the α² points.
    fn gemms<const A: usize>(&self, v: &[f32], m: &mut [f32], nt: usize, par: bool) {
        let (cin, cout) = (self.cin, self.cout);
        let mp = SendPtr(m.as_mut_ptr());
        let one = |xi: usize| {
            let mp = mp;
            let (a, c) = (unsafe { v.as_ptr().add(xi * nt * cin) }, unsafe { mp.0.add(xi * nt * cout) });
            // SAFETY (both arms): each ξ writes its own [nt, cout] slab of M; operands are in
            // bounds; the weights were packed for a kernel this CPU runs (bf16 ones are built
            // only where it has AVX512-BF16).
            match &self.u {
                Packed::F32(u) => unsafe { simd::gemm_packed(self.isa, nt, cout, cin, a, cin, u.as_ptr().add(xi * cin * cout), c, cout) },
                Packed::Bf16(u) => BF16_SCRATCH.with(|s| {
                    let mut s = s.borrow_mut();
                    if s.len() < nt * cin {
                        s.resize(nt * cin, 0);
                    }
                    unsafe { simd::gemm_bf16(nt, cout, cin, a, cin, u.as_ptr().add(xi * cin * cout), c, cout, &mut s) }
                }),
            }
        };
        if par {
            (0..A * A).into_par_iter().for_each(one);
        } else {
            (0..A * A).for_each(one);
        }
    }
}

/// Floats of scratch per tile block (V + M), ~2 MiB.
const BLOCK_FLOATS: usize = 1 << 19;
/// Fewest tiles per block (see [`WinogradConv::forward`]'s blocking).
const BLOCK_MIN_TILES: usize = 64;

/// Direct 3×3 conv for layers with few channels on one side (the RGB first layer, and its input
/// gradient with 3 output channels), parallel over image rows.
#[derive(Debug, Clone)]
pub struct DirectConv {
    pub cin: usize,
    pub cout: usize,
    /// `[9, cin, cout]` (tap-major, for axpy over output channels).
    w_tap_in_out: Vec<f32>,
    /// `[cin, 9·cout]`: all taps side by side, the right-hand side of the few-outputs GEMM.
    w_in_tapout: Vec<f32>,
    bias: Option<Vec<f32>>,
}

/// Row `y` of a direct conv whose outputs are a multiple of 16: per pixel and 16 outputs,
/// 9·cin broadcast multiply-adds into one lane vector.
#[inline(always)]
fn direct_row_body(conv: &DirectConv, input: &Act, op: SendPtr, y: usize, bias: &[f32], relu: bool) {
    let (cin, cout, wp) = (conv.cin, conv.cout, input.wp);
    // Four lane vectors (64 outputs) per pass when they fit: each input value is broadcast once
    // for four multiply-adds.
    const G: usize = 4;
    let taps = &conv.w_tap_in_out;
    for x in 0..input.w {
        let mut c0 = 0;
        while c0 < cout {
            let g = if cout - c0 >= G * CH { G } else { 1 };
            let mut acc = [[0.0f32; CH]; G];
            for (j, a) in acc.iter_mut().enumerate().take(g) {
                *a = bias[c0 + j * CH..][..CH].try_into().expect("CH lanes");
            }
            for t in 0..9 {
                let p = ((y + t / 3) * wp + x + t % 3) * cin;
                let px = &input.data[p..p + cin];
                for (i, &v) in px.iter().enumerate() {
                    let row = &taps[(t * cin + i) * cout + c0..][..g * CH];
                    for (j, a) in acc.iter_mut().enumerate().take(g) {
                        let wt: &L = row[j * CH..][..CH].try_into().expect("CH lanes");
                        *a = ln(|l| a[l] + v * wt[l]);
                    }
                }
            }
            for (j, a) in acc.iter().enumerate().take(g) {
                let a = if relu { ln(|l| a[l].max(0.0)) } else { *a };
                // SAFETY: row y is written by this call only.
                unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), op.0.add(((y + 1) * wp + x + 1) * cout + c0 + j * CH), CH) };
            }
            c0 += g * CH;
        }
    }
}

simd::multiversion!(fn direct_row(conv: &DirectConv, input: &Act, op: SendPtr, y: usize, bias: &[f32], relu: bool) => direct_row_body);

impl DirectConv {
    pub fn new(weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        assert!(cout <= 16 || cout >= cin, "few-outputs path holds at most 16 outputs");
        let mut a = vec![0.0; weight.len()];
        let mut b = vec![0.0; weight.len()];
        for o in 0..cout {
            for i in 0..cin {
                for t in 0..9 {
                    let v = weight[(o * cin + i) * 9 + t];
                    a[(t * cin + i) * cout + o] = v;
                    b[i * 9 * cout + t * cout + o] = v;
                }
            }
        }
        DirectConv { cin, cout, w_tap_in_out: a, w_in_tapout: b, bias: bias.map(|b| b.to_vec()) }
    }

    pub fn backward_of(weight: &[f32], cout: usize, cin: usize) -> Self {
        Self::new(&flip_swap(weight, cout, cin), None, cin, cout)
    }

    /// Same contract as [`WinogradConv::forward`].
    pub fn forward(&self, input: &Act, out: &mut Act, relu: bool) {
        let (cin, cout) = (self.cin, self.cout);
        assert!(input.c == cin && out.c == cout && out.h == input.h && out.w == input.w && out.wp == input.wp);
        if cout < cin {
            return self.forward_few_outputs(input, out, relu);
        }
        let wp = input.wp;
        let op = SendPtr(out.data.as_mut_ptr());
        if cout.is_multiple_of(CH) {
            // Per pixel and 16 outputs: 9·cin broadcast multiply-adds into one lane vector.
            let zero = vec![0.0f32; cout];
            let bias = self.bias.as_deref().unwrap_or(&zero);
            (0..input.h).into_par_iter().for_each(|y| direct_row(self, input, op, y, bias, relu));
            return;
        }
        (0..input.h).into_par_iter().for_each(|y| {
            let op = op;
            let mut acc = vec![0.0f32; cout];
            let mut v = vec![0.0f32; cin];
            for x in 0..input.w {
                match &self.bias {
                    Some(b) => acc.copy_from_slice(b),
                    None => acc.fill(0.0),
                }
                for t in 0..9 {
                    let p = ((y + t / 3) * wp + x + t % 3) * cin;
                    v.copy_from_slice(&input.data[p..p + cin]);
                    let wt = &self.w_tap_in_out[t * cin * cout..][..cin * cout];
                    for (i, &vi) in v.iter().enumerate() {
                        for (a, &wv) in acc.iter_mut().zip(&wt[i * cout..][..cout]) {
                            *a += vi * wv;
                        }
                    }
                }
                if relu {
                    acc.iter_mut().for_each(|a| *a = a.max(0.0));
                }
                // SAFETY: row y is written by this task only.
                unsafe {
                    let dst = op.0.add(((y + 1) * wp + x + 1) * cout);
                    std::ptr::copy_nonoverlapping(acc.as_ptr(), dst, cout);
                }
            }
        });
    }
}

impl DirectConv {
    /// Few output channels (the RGB input gradient): one GEMM `Y = X · W` with all 9 taps'
    /// outputs side by side (`[pixels, 9·cout]`, efficient), then each output pixel gathers its
    /// 9 taps from the neighbours: `out(y, x) = Σ_t Y(y + ty, x + tx)[t]` in padded coordinates.
    fn forward_few_outputs(&self, input: &Act, out: &mut Act, relu: bool) {
        let (cin, cout, wp) = (self.cin, self.cout, input.wp);
        let n = input.hp * wp;
        let nt = 9 * cout;
        with_scratch(n * nt, |y| {
            // SAFETY: dst y (n × 9cout), lhs input (n × cin), rhs (cin × 9cout).
            unsafe {
                gemm::gemm(
                    n, nt, cin, y.as_mut_ptr(), 1, nt as isize, false,
                    input.data.as_ptr(), 1, cin as isize,
                    self.w_in_tapout.as_ptr(), 1, nt as isize,
                    0.0, 1.0, false, false, false,
                    gemm::Parallelism::Rayon(rayon::current_num_threads()),
                );
            }
            let y = &*y;
            let op = SendPtr(out.data.as_mut_ptr());
            (0..input.h).into_par_iter().for_each(|r| {
                let op = op;
                for x in 0..input.w {
                    let mut acc = [0.0f32; 16];
                    let acc = &mut acc[..cout];
                    if let Some(b) = &self.bias {
                        acc.copy_from_slice(b);
                    }
                    for t in 0..9 {
                        let p = (r + t / 3) * wp + x + t % 3;
                        for (a, v) in acc.iter_mut().zip(&y[p * nt + t * cout..][..cout]) {
                            *a += v;
                        }
                    }
                    if relu {
                        acc.iter_mut().for_each(|a| *a = a.max(0.0));
                    }
                    // SAFETY: row r belongs to this task.
                    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), op.0.add(((r + 1) * wp + x + 1) * cout), cout) };
                }
            });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    fn rand_act(rng: &mut SplitMix, h: usize, w: usize, c: usize) -> Act {
        let chw: Vec<f32> = (0..h * w * c).map(|_| rng.normal()).collect();
        Act::from_chw(c, h, w, &chw)
    }

    fn max_rel_err(a: &Act, b: &Act) -> f32 {
        let scale = b.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        a.data.iter().zip(&b.data).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    fn rms_rel_err(a: &Act, b: &Act) -> f32 {
        let d: f64 = a.data.iter().zip(&b.data).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let s: f64 = b.data.iter().map(|y| (*y as f64).powi(2)).sum();
        (d / s.max(1e-30)).sqrt() as f32
    }

    /// The kernel levels this CPU runs (the portable one always).
    fn levels() -> Vec<Isa> {
        let mut l = vec![Isa::Portable];
        if simd::isa() != Isa::Portable {
            l.push(Isa::Avx2);
        }
        if simd::isa() == Isa::Avx512 {
            l.push(Isa::Avx512);
        }
        l
    }

    /// Forward (bias, ReLU or not) against the direct loops, at every kernel level; sizes with
    /// partial tiles, GEMM row remainders (tile counts not multiples of 12 or 6), a 48-channel
    /// output (narrow last panel) and several tile blocks (F(2,3) at 40×36: 360 tiles).
    #[test]
    fn winograd_matches_slow() {
        let mut rng = SplitMix(1);
        let cases = [
            (Tile::F2, 7, 5, 16, 32),
            (Tile::F4, 9, 6, 32, 16),
            (Tile::F4, 8, 8, 64, 64),
            (Tile::F4, 13, 22, 16, 48),
            (Tile::F2, 40, 36, 16, 16),
        ];
        for &(tile, h, w, cin, cout) in &cases {
            let x = rand_act(&mut rng, h, w, cin);
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * 0.1).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal()).collect();
            for isa in levels() {
                let conv = WinogradConv::with_isa(isa, tile, &wt, Some(&b), cout, cin);
                for relu in [false, true] {
                    let mut out = Act::zeros(h, w, cout);
                    conv.forward(&x, &mut out, relu);
                    let want = conv3x3_slow(&x, &wt, Some(&b), cout, relu);
                    let e = max_rel_err(&out, &want);
                    assert!(e < 1e-5, "{isa:?} {tile:?} {h}x{w} {cin}->{cout} relu {relu}: {e}");
                }
            }
        }
    }

    /// The input gradient (flipped, swapped kernel) at every level and both tiles against the
    /// direct loops on the flipped kernel, and against the adjoint identity.
    #[test]
    fn winograd_input_gradient_matches_slow() {
        let mut rng = SplitMix(4);
        let (h, w, cin, cout) = (10, 11, 32, 48);
        let x = rand_act(&mut rng, h, w, cin);
        let g = rand_act(&mut rng, h, w, cout);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
        let want = conv3x3_slow(&g, &flip_swap(&wt, cout, cin), None, cin, false);
        let y = conv3x3_slow(&x, &wt, None, cout, false);
        let dot = |a: &Act, b: &Act| a.data.iter().zip(&b.data).map(|(p, q)| (*p as f64) * (*q as f64)).sum::<f64>();
        for isa in levels() {
            for tile in [Tile::F2, Tile::F4] {
                let mut dx = Act::zeros(h, w, cin);
                WinogradConv::with_isa(isa, tile, &flip_swap(&wt, cout, cin), None, cin, cout).forward(&g, &mut dx, false);
                let e = max_rel_err(&dx, &want);
                assert!(e < 1e-5, "{isa:?} {tile:?}: {e}");
                let (lhs, rhs) = (dot(&y, &g), dot(&x, &dx));
                assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{isa:?} {tile:?}: {lhs} vs {rhs}");
            }
        }
    }

    /// The fused ReLU backward: zero exactly where the mask is not positive (zeros and
    /// negatives in the mask), the plain conv elsewhere.
    #[test]
    fn winograd_masked_output_matches_conv_then_mask() {
        let mut rng = SplitMix(8);
        let (h, w, cin, cout) = (9, 7, 16, 32);
        let x = rand_act(&mut rng, h, w, cin);
        let mask = rand_act(&mut rng, h, w, cout);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
        let mut want = conv3x3_slow(&x, &wt, None, cout, false);
        want.data.iter_mut().zip(&mask.data).for_each(|(g, m)| *g = if *m > 0.0 { *g } else { 0.0 });
        for isa in levels() {
            let mut out = Act::zeros(h, w, cout);
            WinogradConv::with_isa(isa, Tile::F4, &wt, None, cout, cin).forward_masked(&x, &mut out, false, Some(&mask));
            assert!(max_rel_err(&out, &want) < 1e-5, "{isa:?}: {}", max_rel_err(&out, &want));
            let zeros = out.data.iter().zip(&want.data).filter(|(o, w)| **w == 0.0 && **o == 0.0).count();
            assert_eq!(zeros, want.data.iter().filter(|w| **w == 0.0).count(), "{isa:?}: masked outputs must be exactly zero");
        }
    }

    /// bf16 GEMM operands: each conv's output within ~2 % RMS of the exact one (measured 2.0 %
    /// here; bounded at twice that), forward and input gradient, and not bit-equal to f32 (the
    /// bf16 kernel did run). The network-level effect is tested in tests/vgg.rs.
    #[test]
    fn winograd_bf16_stays_near_f32() {
        if !simd::bf16_supported() {
            // Refused at both levels: the conv's constructors assert, the network (which
            // builds them) returns its typed error before it gets there.
            let wt = vec![0.5f32; 16 * 16 * 9];
            let panic_message = |build: &(dyn Fn() + std::panic::RefUnwindSafe)| {
                let p = std::panic::catch_unwind(build).expect_err("a bf16 conv was built without AVX512-BF16");
                p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
            };
            let forward = panic_message(&|| drop(WinogradConv::with_bf16(Tile::F4, &wt, None, 16, 16)));
            let backward = panic_message(&|| drop(WinogradConv::backward_of_bf16(Tile::F4, &wt, 16, 16)));
            for msg in [forward, backward] {
                assert!(msg.contains("no AVX512-BF16"), "panicked with {msg:?}");
            }
            use crate::vgg::weights::{Arch, Preprocess, VggWeights};
            use crate::vgg::{Backend, Precision, Vgg, VggError};
            let w = VggWeights::random(Arch::Vgg16, Preprocess::TorchvisionRgb, 1);
            match Vgg::from_weights_with(&w, &candle_core::Device::Cpu, Backend::Fast, Precision::Bf16) {
                Err(VggError::Bf16Unsupported) => {}
                Err(e) => panic!("bf16 refused with the wrong error: {e}"),
                Ok(_) => panic!("a bf16 network was built on a CPU without AVX512-BF16"),
            }
            return;
        }
        let mut rng = SplitMix(12);
        for &(h, w, cin, cout) in &[(13, 22, 64, 48), (32, 32, 256, 64), (9, 6, 512, 32)] {
            // ReLU outputs, He-scaled weights: what a VGG layer sees.
            let mut x = rand_act(&mut rng, h, w, cin);
            x.data.iter_mut().for_each(|v| *v = v.max(0.0));
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * (2.0 / (cin * 9) as f32).sqrt()).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal() * 0.1).collect();
            let want = conv3x3_slow(&x, &wt, Some(&b), cout, false);
            let mut out = Act::zeros(h, w, cout);
            WinogradConv::with_bf16(Tile::F4, &wt, Some(&b), cout, cin).forward(&x, &mut out, false);
            let (max, rms) = (max_rel_err(&out, &want), rms_rel_err(&out, &want));
            assert!(max < 0.12 && rms < 0.04 && max > 1e-6, "{h}x{w} {cin}->{cout}: max {max:.2e}, rms {rms:.2e}");
            let g = rand_act(&mut rng, h, w, cout);
            let want = conv3x3_slow(&g, &flip_swap(&wt, cout, cin), None, cin, false);
            let mut dx = Act::zeros(h, w, cin);
            WinogradConv::backward_of_bf16(Tile::F4, &wt, cout, cin).forward(&g, &mut dx, false);
            let (max, rms) = (max_rel_err(&dx, &want), rms_rel_err(&dx, &want));
            assert!(max < 0.12 && rms < 0.04 && max > 1e-6, "input gradient {h}x{w} {cin}->{cout}: max {max:.2e}, rms {rms:.2e}");
        }
    }

    #[test]
    fn direct_matches_slow_both_forms() {
        let mut rng = SplitMix(2);
        for &(cin, cout) in &[(3, 16), (16, 3), (3, 64), (3, 12)] {
            let x = rand_act(&mut rng, 6, 7, cin);
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal()).collect();
            let mut out = Act::zeros(6, 7, cout);
            DirectConv::new(&wt, Some(&b), cout, cin).forward(&x, &mut out, true);
            let e = max_rel_err(&out, &conv3x3_slow(&x, &wt, Some(&b), cout, true));
            assert!(e < 1e-5, "{cin}->{cout}: {e}");
        }
    }

    /// <conv(x), g> = <x, conv_flipped(g)>: the input gradient is the flipped, swapped conv.
    #[test]
    fn backward_is_adjoint() {
        let mut rng = SplitMix(3);
        let (h, w, cin, cout) = (6, 5, 16, 32);
        let x = rand_act(&mut rng, h, w, cin);
        let g = rand_act(&mut rng, h, w, cout);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
        let y = conv3x3_slow(&x, &wt, None, cout, false);
        let mut dx = Act::zeros(h, w, cin);
        WinogradConv::backward_of(Tile::F4, &wt, cout, cin).forward(&g, &mut dx, false);
        let dot = |a: &Act, b: &Act| a.data.iter().zip(&b.data).map(|(p, q)| (*p as f64) * (*q as f64)).sum::<f64>();
        let (lhs, rhs) = (dot(&y, &g), dot(&x, &dx));
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} vs {rhs}");
    }
}
