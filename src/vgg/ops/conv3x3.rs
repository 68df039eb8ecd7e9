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

/// Transform matrices of F(m, 3): `bt` (Bᵀ, α×α), `g` (G, α×3), `at` (Aᵀ, m×α), α = m + 2.
struct Matrices<const M: usize, const A: usize> {
    bt: [[f32; A]; A],
    g: [[f64; 3]; A],
    at: [[f32; A]; M],
}

const F23: Matrices<2, 4> = Matrices {
    bt: [[1., 0., -1., 0.], [0., 1., 1., 0.], [0., -1., 1., 0.], [0., 1., 0., -1.]],
    g: [[1., 0., 0.], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0., 0., 1.]],
    at: [[1., 1., 1., 0.], [0., 1., -1., -1.]],
};

const F43: Matrices<4, 6> = Matrices {
    bt: [
        [4., 0., -5., 0., 1., 0.],
        [0., -4., -4., 1., 1., 0.],
        [0., 4., -4., -1., 1., 0.],
        [0., -2., -1., 2., 1., 0.],
        [0., 2., -1., -2., 1., 0.],
        [0., 4., 0., -5., 0., 1.],
    ],
    g: [
        [1. / 4., 0., 0.],
        [-1. / 6., -1. / 6., -1. / 6.],
        [-1. / 6., 1. / 6., -1. / 6.],
        [1. / 24., 1. / 12., 1. / 6.],
        [1. / 24., -1. / 12., 1. / 6.],
        [0., 0., 1.],
    ],
    at: [[1., 1., 1., 1., 1., 0.], [0., 1., -1., 2., -2., 0.], [0., 1., 1., 4., 4., 0.], [0., 1., -1., 8., -8., 1.]],
};

/// Which Winograd variant a layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    F2,
    F4,
}

/// A 3×3 conv with its weights pre-transformed for Winograd.
#[derive(Debug, Clone)]
pub struct WinogradConv {
    pub tile: Tile,
    pub cin: usize,
    pub cout: usize,
    /// `[α², cin, cout]`: the GEMM right-hand sides.
    u: Vec<f32>,
    bias: Option<Vec<f32>>,
}

fn transform_weights<const M: usize, const A: usize>(mt: &Matrices<M, A>, w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0.0f32; A * A * cin * cout];
    for o in 0..cout {
        for i in 0..cin {
            let g = &w[(o * cin + i) * 9..][..9];
            // tmp = G g  (A×3)
            let mut tmp = [[0.0f64; 3]; A];
            for (r, row) in tmp.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|k| mt.g[r][k] * g[k * 3 + c] as f64).sum();
                }
            }
            for r in 0..A {
                for s in 0..A {
                    let v: f64 = (0..3).map(|k| tmp[r][k] * mt.g[s][k]).sum();
                    u[((r * A + s) * cin + i) * cout + o] = v as f32;
                }
            }
        }
    }
    u
}

thread_local! {
    /// Per-thread scratch reused across calls (avoids page faults of fresh large allocations).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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

impl WinogradConv {
    /// `weight` OIHW `[cout, cin, 3, 3]`; `bias` `[cout]` or none. Channel counts must be multiples of 16.
    pub fn new(tile: Tile, weight: &[f32], bias: Option<&[f32]>, cout: usize, cin: usize) -> Self {
        assert!(cin.is_multiple_of(CH) && cout.is_multiple_of(CH), "winograd conv needs channels multiple of {CH}, got {cin}->{cout}");
        assert_eq!(weight.len(), cout * cin * 9);
        let u = match tile {
            Tile::F2 => transform_weights(&F23, weight, cout, cin),
            Tile::F4 => transform_weights(&F43, weight, cout, cin),
        };
        WinogradConv { tile, cin, cout, u, bias: bias.map(|b| b.to_vec()) }
    }

    /// The input gradient's conv: kernel flipped, channels swapped, no bias.
    pub fn backward_of(tile: Tile, weight: &[f32], cout: usize, cin: usize) -> Self {
        Self::new(tile, &flip_swap(weight, cout, cin), None, cin, cout)
    }

    /// `out = conv(input) + bias`, then ReLU if `relu`. `out` must have the input's height and
    /// width and `cout` channels; only its image region is written.
    pub fn forward(&self, input: &Act, out: &mut Act, relu: bool) {
        assert_eq!(input.c, self.cin);
        assert!(out.c == self.cout && out.h == input.h && out.w == input.w && out.hp == input.hp);
        match self.tile {
            Tile::F2 => self.run::<2, 4>(&F23, input, out, relu),
            Tile::F4 => self.run::<4, 6>(&F43, input, out, relu),
        }
    }

    fn run<const M: usize, const A: usize>(&self, mt: &Matrices<M, A>, input: &Act, out: &mut Act, relu: bool) {
        let (tiles_y, tiles_x) = (input.h.div_ceil(M), input.w.div_ceil(M));
        let tiles = tiles_y * tiles_x;
        let (cin, cout) = (self.cin, self.cout);
        // Block of tiles whose transformed input + output stay near the L2 cache.
        let per_tile = A * A * (cin + cout);
        let block = (BLOCK_FLOATS / per_tile).clamp(16, 512).min(tiles);
        let n_blocks = tiles.div_ceil(block);
        let out_ptr = SendPtr(out.data.as_mut_ptr());
        let threads = rayon::current_num_threads();
        let do_block = |b: usize, inner_par: bool| {
            let t0 = b * block;
            let nt = block.min(tiles - t0);
            with_scratch(A * A * nt * (cin + cout), |scratch| {
                let (v, m) = scratch.split_at_mut(A * A * nt * cin);
                self.input_transform(mt, input, t0, nt, tiles_x, v, inner_par);
                self.gemms::<A>(v, m, nt, inner_par);
                self.output_transform(mt, m, t0, nt, tiles_x, out_ptr, out.wp, out.h, out.w, relu, inner_par);
            });
        };
        if n_blocks >= 2 * threads {
            (0..n_blocks).into_par_iter().for_each(|b| do_block(b, false));
        } else {
            (0..n_blocks).for_each(|b| do_block(b, true));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn input_transform<const M: usize, const A: usize>(
        &self,
        mt: &Matrices<M, A>,
        input: &Act,
        t0: usize,
        nt: usize,
        tiles_x: usize,
        v: &mut [f32],
        par: bool,
    ) {
        let cin = self.cin;
        let vp = SendPtr(v.as_mut_ptr());
        let one = |t: usize| {
            let vp = vp;
            let (ty, tx) = ((t0 + t) / tiles_x, (t0 + t) % tiles_x);
            let base = (ty * M * input.wp + tx * M) * cin;
            for c0 in (0..cin).step_by(CH) {
                let mut d = [[[0.0f32; CH]; A]; A];
                for (a, row) in d.iter_mut().enumerate() {
                    for (b, lane) in row.iter_mut().enumerate() {
                        let p = base + (a * input.wp + b) * cin + c0;
                        lane.copy_from_slice(&input.data[p..p + CH]);
                    }
                }
                // tmp = Bᵀ d, then V = tmp B (B = Bᵀᵀ); zero entries are skipped at compile time.
                let mut tmp = [[[0.0f32; CH]; A]; A];
                for i in 0..A {
                    for a in 0..A {
                        let k = mt.bt[i][a];
                        if k != 0.0 {
                            for b in 0..A {
                                for l in 0..CH {
                                    tmp[i][b][l] += k * d[a][b][l];
                                }
                            }
                        }
                    }
                }
                for i in 0..A {
                    for j in 0..A {
                        let mut acc = [0.0f32; CH];
                        for b in 0..A {
                            let k = mt.bt[j][b];
                            if k != 0.0 {
                                for l in 0..CH {
                                    acc[l] += k * tmp[i][b][l];
                                }
                            }
                        }
                        // SAFETY: tile t owns V[.., t, ..]; in bounds by construction.
                        unsafe {
                            let dst = vp.0.add(((i * A + j) * nt + t) * cin + c0);
                            std::ptr::copy_nonoverlapping(acc.as_ptr(), dst, CH);
                        }
                    }
                }
            }
        };
        if par {
            (0..nt).into_par_iter().for_each(one);
        } else {
            (0..nt).for_each(one);
        }
    }

    fn gemms<const A: usize>(&self, v: &[f32], m: &mut [f32], nt: usize, par: bool) {
        let (cin, cout) = (self.cin, self.cout);
        let mp = SendPtr(m.as_mut_ptr());
        let one = |xi: usize| {
            let mp = mp;
            // SAFETY: each ξ writes its own [nt, cout] slab of M; operands are in bounds.
            unsafe {
                gemm::gemm(
                    nt,
                    cout,
                    cin,
                    mp.0.add(xi * nt * cout),
                    1,
                    cout as isize,
                    false,
                    v.as_ptr().add(xi * nt * cin),
                    1,
                    cin as isize,
                    self.u.as_ptr().add(xi * cin * cout),
                    1,
                    cout as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        };
        if par {
            (0..A * A).into_par_iter().for_each(one);
        } else {
            (0..A * A).for_each(one);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn output_transform<const M: usize, const A: usize>(
        &self,
        mt: &Matrices<M, A>,
        m: &[f32],
        t0: usize,
        nt: usize,
        tiles_x: usize,
        out: SendPtr,
        out_wp: usize,
        h: usize,
        w: usize,
        relu: bool,
        par: bool,
    ) {
        let cout = self.cout;
        let one = |t: usize| {
            let out = out;
            let (ty, tx) = ((t0 + t) / tiles_x, (t0 + t) % tiles_x);
            for c0 in (0..cout).step_by(CH) {
                // s = Aᵀ m  (M×A), then y = s A (M×M).
                let mut s = [[[0.0f32; CH]; A]; M];
                for r in 0..M {
                    for i in 0..A {
                        let k = mt.at[r][i];
                        if k != 0.0 {
                            for j in 0..A {
                                let src = &m[((i * A + j) * nt + t) * cout + c0..][..CH];
                                for l in 0..CH {
                                    s[r][j][l] += k * src[l];
                                }
                            }
                        }
                    }
                }
                let bias: [f32; CH] = match &self.bias {
                    Some(b) => b[c0..c0 + CH].try_into().expect("CH lanes"),
                    None => [0.0; CH],
                };
                for r in 0..M {
                    let y = ty * M + r;
                    if y >= h {
                        break;
                    }
                    for q in 0..M {
                        let x = tx * M + q;
                        if x >= w {
                            break;
                        }
                        let mut acc = bias;
                        for j in 0..A {
                            let k = mt.at[q][j];
                            if k != 0.0 {
                                for l in 0..CH {
                                    acc[l] += k * s[r][j][l];
                                }
                            }
                        }
                        if relu {
                            for a in acc.iter_mut() {
                                *a = a.max(0.0);
                            }
                        }
                        // SAFETY: (y, x) is inside the image; tile t owns these pixels.
                        unsafe {
                            let dst = out.0.add(((y + 1) * out_wp + x + 1) * cout + c0);
                            std::ptr::copy_nonoverlapping(acc.as_ptr(), dst, CH);
                        }
                    }
                }
            }
        };
        if par {
            (0..nt).into_par_iter().for_each(one);
        } else {
            (0..nt).for_each(one);
        }
    }
}

/// Floats of scratch per tile block (V + M), ~2 MiB.
const BLOCK_FLOATS: usize = 1 << 19;

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

    #[test]
    fn winograd_matches_slow() {
        let mut rng = SplitMix(1);
        for &(tile, h, w, cin, cout) in &[(Tile::F2, 7, 5, 16, 32), (Tile::F4, 9, 6, 32, 16), (Tile::F4, 8, 8, 64, 64)] {
            let x = rand_act(&mut rng, h, w, cin);
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() * 0.1).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal()).collect();
            let conv = WinogradConv::new(tile, &wt, Some(&b), cout, cin);
            for relu in [false, true] {
                let mut out = Act::zeros(h, w, cout);
                conv.forward(&x, &mut out, relu);
                let want = conv3x3_slow(&x, &wt, Some(&b), cout, relu);
                assert!(max_rel_err(&out, &want) < 1e-5, "{tile:?} {h}x{w} {cin}->{cout}: {}", max_rel_err(&out, &want));
            }
        }
    }

    #[test]
    fn direct_matches_slow_both_forms() {
        let mut rng = SplitMix(2);
        for &(cin, cout) in &[(3, 16), (16, 3)] {
            let x = rand_act(&mut rng, 6, 7, cin);
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal()).collect();
            let b: Vec<f32> = (0..cout).map(|_| rng.normal()).collect();
            let mut out = Act::zeros(6, 7, cout);
            DirectConv::new(&wt, Some(&b), cout, cin).forward(&x, &mut out, true);
            assert!(max_rel_err(&out, &conv3x3_slow(&x, &wt, Some(&b), cout, true)) < 1e-5);
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
