//! [`DirectConv`]: the 3×3 conv computed tap by tap, for layers with few channels on one side
//! (the RGB first layer, and its input gradient with 3 outputs).

use rayon::prelude::*;

use super::{flip_swap, ln, with_scratch, CH, L};
use crate::simd::multiversion;
use crate::vgg::ops::{Act, SendPtr};

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

multiversion!(fn direct_row(conv: &DirectConv, input: &Act, op: SendPtr, y: usize, bias: &[f32], relu: bool) => direct_row_body);

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
    use super::super::test_util::{max_rel_err, rand_act};
    use super::*;
    use crate::rng::SplitMix;
    use crate::vgg::ops::conv3x3::conv3x3_slow;

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
}
