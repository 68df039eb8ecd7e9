//! The backward's element-wise passes over whole activation buffers (ReLU masks, gradient sums),
//! each compiled per vector level (`crate::simd::multiversion!`).

use crate::simd::multiversion;

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
