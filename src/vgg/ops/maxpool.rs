//! 2×2, stride 2 max-pool on [`Act`] buffers (odd trailing rows/columns dropped, as PyTorch) and
//! its backward.
//!
//! Tie rule: the gradient of a window goes entirely to its FIRST maximum in row-major order
//! (top-left, top-right, bottom-left, bottom-right), as PyTorch's CPU kernel does. The backward
//! recomputes that argmax from the stored input instead of keeping indices.

use rayon::prelude::*;

use super::{Act, SendPtr};
use crate::simd;

/// Index (0..4) of the first maximum of a 2×2 window given in row-major order.
#[inline]
fn first_max(v: [f32; 4]) -> usize {
    let mut best = 0;
    for k in 1..4 {
        if v[k] > v[best] {
            best = k;
        }
    }
    best
}

fn window(a: &Act, y: usize, x: usize, ch: usize) -> [f32; 4] {
    let o = |dy, dx| a.data[a.at(2 * y + dy, 2 * x + dx) + ch];
    [o(0, 0), o(0, 1), o(1, 0), o(1, 1)]
}

pub fn maxpool_slow(input: &Act) -> Act {
    let mut out = Act::zeros(input.h / 2, input.w / 2, input.c);
    for y in 0..out.h {
        for x in 0..out.w {
            for ch in 0..input.c {
                let v = window(input, y, x, ch);
                let at = out.at(y, x) + ch;
                out.data[at] = v[first_max(v)];
            }
        }
    }
    out
}

pub fn maxpool_backward_slow(input: &Act, grad_out: &Act) -> Act {
    let mut g = Act::zeros(input.h, input.w, input.c);
    for y in 0..grad_out.h {
        for x in 0..grad_out.w {
            for ch in 0..input.c {
                let k = first_max(window(input, y, x, ch));
                let at = g.at(2 * y + k / 2, 2 * x + k % 2) + ch;
                g.data[at] = grad_out.data[grad_out.at(y, x) + ch];
            }
        }
    }
    g
}

/// `out` must be `[h / 2, w / 2, c]` of `input`.
pub fn maxpool(input: &Act, out: &mut Act) {
    assert!(out.h == input.h / 2 && out.w == input.w / 2 && out.c == input.c);
    let c = input.c;
    let op = SendPtr(out.data.as_mut_ptr());
    let out_wp = out.wp;
    (0..out.h).into_par_iter().for_each(|y| {
        let op = op;
        for x in 0..input.w / 2 {
            let r0 = &input.data[input.at(2 * y, 2 * x)..][..2 * c];
            let r1 = &input.data[input.at(2 * y + 1, 2 * x)..][..2 * c];
            // SAFETY: row y of out belongs to this task.
            let dst = unsafe { std::slice::from_raw_parts_mut(op.0.add(((y + 1) * out_wp + x + 1) * c), c) };
            for ch in 0..c {
                dst[ch] = r0[ch].max(r0[c + ch]).max(r1[ch].max(r1[c + ch]));
            }
        }
    });
}

/// Writes the whole image region of `grad_in` (`[h, w, c]` of `input`): the window's gradient at
/// its first maximum, zero elsewhere.
pub fn maxpool_backward(input: &Act, grad_out: &Act, grad_in: &mut Act) {
    backward::<false>(input, grad_out, grad_in)
}

/// [`maxpool_backward`] followed by the backward of the ReLU that produced `input` (`input` is
/// that ReLU's output): zero where the window's maximum is not positive. One pass instead of two.
pub fn maxpool_relu_backward(input: &Act, grad_out: &Act, grad_in: &mut Act) {
    backward::<true>(input, grad_out, grad_in)
}

/// One pair of input rows: `r0`, `r1` the input rows, `g` the output gradient row (`n` windows
/// of `c` channels), `d0`, `d1` the input gradient rows.
#[inline(always)]
fn bwd_row_body<const RELU: bool>(r0: &[f32], r1: &[f32], g: &[f32], d0: &mut [f32], d1: &mut [f32], c: usize, n: usize) {
    for x in 0..n {
        let (r0, r1, g) = (&r0[2 * x * c..][..2 * c], &r1[2 * x * c..][..2 * c], &g[x * c..][..c]);
        let (d0, d1) = (&mut d0[2 * x * c..][..2 * c], &mut d1[2 * x * c..][..2 * c]);
        for ch in 0..c {
            // Branch-free first maximum (row-major order), as `first_max`.
            let v = [r0[ch], r0[c + ch], r1[ch], r1[c + ch]];
            let m = v[0].max(v[1]).max(v[2].max(v[3]));
            let e0 = v[0] == m;
            let e1 = !e0 && v[1] == m;
            let e2 = !e0 && !e1 && v[2] == m;
            let e3 = !e0 && !e1 && !e2;
            let gv = if !RELU || m > 0.0 { g[ch] } else { 0.0 };
            d0[ch] = if e0 { gv } else { 0.0 };
            d0[c + ch] = if e1 { gv } else { 0.0 };
            d1[ch] = if e2 { gv } else { 0.0 };
            d1[c + ch] = if e3 { gv } else { 0.0 };
        }
    }
}

simd::multiversion!(fn bwd_row<const RELU: bool>(r0: &[f32], r1: &[f32], g: &[f32], d0: &mut [f32], d1: &mut [f32], c: usize, n: usize) => bwd_row_body);

fn backward<const RELU: bool>(input: &Act, grad_out: &Act, grad_in: &mut Act) {
    assert!(grad_in.same_shape(input) && grad_in.hp == input.hp);
    assert!(grad_out.h == input.h / 2 && grad_out.w == input.w / 2 && grad_out.c == input.c);
    let c = input.c;
    let gp = SendPtr(grad_in.data.as_mut_ptr());
    // One task per pair of input rows (they share windows); a trailing odd row is only zeroed.
    (0..input.h.div_ceil(2)).into_par_iter().for_each(|y| {
        let gp = gp;
        // SAFETY: input rows 2y and 2y + 1 of grad_in belong to this task.
        let row = |r: usize| unsafe { std::slice::from_raw_parts_mut(gp.0.add(input.at(r, 0)), input.w * c) };
        let (row0, row1) = (row(2 * y), (2 * y + 1 < input.h).then(|| row(2 * y + 1)));
        let (Some(row1), true) = (row1, y < grad_out.h) else {
            row0.fill(0.0);
            return;
        };
        // A trailing odd column gets no gradient.
        if input.w % 2 == 1 {
            row0[(input.w - 1) * c..].fill(0.0);
            row1[(input.w - 1) * c..].fill(0.0);
        }
        let (r0, r1) = (&input.data[input.at(2 * y, 0)..][..input.w * c], &input.data[input.at(2 * y + 1, 0)..][..input.w * c]);
        bwd_row::<RELU>(r0, r1, &grad_out.data[grad_out.at(y, 0)..][..grad_out.w * c], row0, row1, c, grad_out.w);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    #[test]
    fn fast_matches_slow_odd_sizes() {
        let mut rng = SplitMix(5);
        let (h, w, c) = (7, 9, 5);
        let x = Act::from_chw(c, h, w, &(0..h * w * c).map(|_| rng.normal()).collect::<Vec<_>>());
        let mut out = Act::zeros(h / 2, w / 2, c);
        maxpool(&x, &mut out);
        assert_eq!(out, maxpool_slow(&x));
        let g = Act::from_chw(c, h / 2, w / 2, &(0..(h / 2) * (w / 2) * c).map(|_| rng.normal()).collect::<Vec<_>>());
        let mut gi = Act::zeros(h, w, c);
        gi.data.fill(7.0); // stale values must be overwritten inside the image
        maxpool_backward(&x, &g, &mut gi);
        let want = maxpool_backward_slow(&x, &g);
        for y in 0..h {
            for xx in 0..w {
                assert_eq!(&gi.data[gi.at(y, xx)..][..c], &want.data[want.at(y, xx)..][..c]);
            }
        }
    }

    /// Pool then ReLU backward in one pass = the slow pool backward masked by `input > 0`, on a
    /// ReLU output with ties and all-zero windows.
    #[test]
    fn fused_relu_backward_matches_pool_then_mask() {
        let mut rng = SplitMix(6);
        let (h, w, c) = (9, 8, 20);
        let relu: Vec<f32> = (0..h * w * c).map(|_| (rng.normal() * 2.0).round().max(0.0)).collect();
        let x = Act::from_chw(c, h, w, &relu);
        let g = Act::from_chw(c, h / 2, w / 2, &(0..(h / 2) * (w / 2) * c).map(|_| rng.normal()).collect::<Vec<_>>());
        let mut gi = Act::zeros(h, w, c);
        gi.data.fill(7.0);
        maxpool_relu_backward(&x, &g, &mut gi);
        let mut want = maxpool_backward_slow(&x, &g);
        want.data.iter_mut().zip(&x.data).for_each(|(g, a)| *g = if *a > 0.0 { *g } else { 0.0 });
        let mut zeros_kept = 0;
        for y in 0..h {
            for xx in 0..w {
                let (a, b) = (&gi.data[gi.at(y, xx)..][..c], &want.data[want.at(y, xx)..][..c]);
                assert_eq!(a, b, "at ({y}, {xx})");
                zeros_kept += b.iter().filter(|v| **v == 0.0).count();
            }
        }
        assert!(zeros_kept > h * w * c / 2, "the case has masked windows");
    }
}
