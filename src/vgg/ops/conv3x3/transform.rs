//! The Winograd transforms, lane-parallel over 16 channels: the kernel transform `G g Gᵀ`
//! (once per conv, written straight into the GEMM's packed panel layout), and the input
//! (`Bᵀ d B`) and output (`Aᵀ M A` + bias, ReLU, mask) transforms of a block of tiles,
//! each compiled per vector level.

use std::ops::Range;

use rayon::prelude::*;

use super::{ln, CH, L};
use crate::simd::{multiversion, Isa};
use crate::vgg::ops::{Act, SendPtr};

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
    pub(super) fn g(self) -> &'static [[f64; 3]] {
        match self {
            Tile::F2 => &G23,
            Tile::F4 => &G43,
        }
    }
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

/// The GEMM right-hand sides `U`: `[α², cin, cout]`, each `[cin, cout]` packed in column panels.
#[derive(Debug, Clone)]
pub(super) enum Packed {
    /// f32, for the conv's `isa` ([`pack_panels`](crate::simd::gemm::pack_panels)).
    F32(Vec<f32>),
    /// bf16 pairs ([`crate::simd::pack_panels_bf16`]), for the AVX512-BF16 kernel.
    Bf16(Vec<u16>),
}

/// `G g Gᵀ` of every `[cout, cin]` kernel, as `[α², cin, cout]`, each `[cin, cout]` packed for
/// `isa` ([`pack_panels`](crate::simd::gemm::pack_panels)'s layout, written in place: no second
/// copy of these large arrays).
pub(super) fn transform_weights(g_mat: &[[f64; 3]], w: &[f32], cout: usize, cin: usize, isa: Isa) -> Vec<f32> {
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

/// What the transforms of one tile block read and write.
#[derive(Clone, Copy)]
pub(super) struct Block<'a> {
    pub(super) input: &'a Act,
    pub(super) cin: usize,
    pub(super) cout: usize,
    /// First tile of the block, tiles in it, tiles per row of the image.
    pub(super) t0: usize,
    pub(super) nt: usize,
    pub(super) tiles_x: usize,
    /// Transformed input `[α², nt, cin]`.
    pub(super) v: SendPtr,
    /// GEMM results `[α², nt, cout]`.
    pub(super) m: *const f32,
    /// Output image (padded, channels-last, `wp` columns) and its unpadded size.
    pub(super) out: SendPtr,
    pub(super) out_wp: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) bias: Option<&'a [f32]>,
    pub(super) relu: bool,
    /// ReLU mask: an output is zeroed where this buffer (same layout as the output) is not
    /// positive; null for none.
    pub(super) mask: *const f32,
}
unsafe impl Send for Block<'_> {}
unsafe impl Sync for Block<'_> {}

/// Input transform of tiles `range` of the block: `V[ξ, t, c] = (Bᵀ d B)[ξ]`.
#[inline(always)]
unsafe fn input_tiles<const M: usize, const A: usize>(b: &Block<'_>, range: Range<usize>) {
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
unsafe fn output_tiles<const M: usize, const A: usize>(b: &Block<'_>, range: Range<usize>) {
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

// The transforms compiled for each level (the lane loops vectorize to that width).
multiversion!(pub(super) unsafe fn input_tiles_at<const M: usize, const A: usize>(level: Isa, b: &Block<'_>, range: Range<usize>) => input_tiles);
multiversion!(pub(super) unsafe fn output_tiles_at<const M: usize, const A: usize>(level: Isa, b: &Block<'_>, range: Range<usize>) => output_tiles);
