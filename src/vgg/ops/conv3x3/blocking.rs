//! How a Winograd conv walks the image: blocks of tiles sized for the cache, each through the
//! input transform, the α² GEMMs (f32 or bf16) and the output transform in per-thread scratch,
//! parallel over blocks where there are enough of them, else within each block.

use std::cell::RefCell;

use rayon::prelude::*;

use super::transform::{input_tiles_at, output_tiles_at, Block, Packed};
use super::{with_scratch, WinogradConv};
use crate::simd;
use crate::vgg::ops::{Act, SendPtr};

thread_local! {
    /// One ξ's transformed input in bf16, per thread.
    static BF16_SCRATCH: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

/// Floats of scratch per tile block (V + M), ~2 MiB.
const BLOCK_FLOATS: usize = 1 << 19;
/// Fewest tiles per block (see `run`'s blocking).
const BLOCK_MIN_TILES: usize = 64;

impl WinogradConv {
    /// The conv of `input` into `out` by F(M, 3) (α = A points per axis), block by block: what
    /// [`WinogradConv::forward_masked`] runs once it has checked the shapes.
    pub(super) fn run<const M: usize, const A: usize>(&self, input: &Act, out: &mut Act, relu: bool, mask: *const f32) {
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
                ranges(&|r| unsafe { input_tiles_at::<M, A>(isa, &blk, r) });
                self.gemms::<A>(v, m, nt, inner_par);
                let blk = Block { m: m.as_ptr(), ..blk };
                // SAFETY: tiles of disjoint ranges write disjoint pixels of `out`.
                ranges(&|r| unsafe { output_tiles_at::<M, A>(isa, &blk, r) });
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
