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
//!
//! One file per idea: `winograd` the Winograd conv type, `transform` its transforms and weight
//! packing, `blocking` its tile blocks and GEMMs, `direct` the direct conv, `slow` the slow twin
//! (plain loops) that the tests compare against. This file holds what they share.

use std::cell::RefCell;

mod blocking;
mod direct;
mod slow;
mod transform;
mod winograd;

pub use direct::DirectConv;
pub use slow::conv3x3_slow;
pub use transform::Tile;
pub use winograd::WinogradConv;

/// Channel lanes processed together by the transforms (one AVX-512 register).
const CH: usize = 16;

/// One vector of channel lanes.
type L = [f32; CH];

#[inline(always)]
fn ln(f: impl Fn(usize) -> f32) -> L {
    std::array::from_fn(f)
}

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

thread_local! {
    /// Per-thread scratch reused across calls (avoids page faults of fresh large allocations).
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch, grown to at least `len` floats.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

#[cfg(test)]
mod test_util {
    use crate::rng::SplitMix;
    use crate::vgg::ops::Act;

    pub fn rand_act(rng: &mut SplitMix, h: usize, w: usize, c: usize) -> Act {
        let chw: Vec<f32> = (0..h * w * c).map(|_| rng.normal()).collect();
        Act::from_chw(c, h, w, &chw)
    }

    pub fn max_rel_err(a: &Act, b: &Act) -> f32 {
        let scale = b.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        a.data.iter().zip(&b.data).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }
}
