//! The sparse passes' arithmetic on a block of sites, in loops that
//! vectorize (compiled per instruction set): the colour matrix and sigmoid
//! that turn collapsed values into texture, their adjoint, and the `exp`
//! they need in plain arithmetic.

/// `e^x` to within 2 ulp (Cephes' `expf`: `x = k·ln 2 + r`, a degree-5
/// polynomial for `e^r`), in plain arithmetic so that a loop over it
/// vectorizes; libm's `expf` is a call per element.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Bounds that keep 2^k a normal number; NaN passes through.
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by the 1.5·2²³ shift (no SSE4.1 rounding needed).
    const SHIFT: f32 = 12_582_912.0;
    let k = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    // ln 2 in two parts, so k·ln 2 is exact to f32.
    let r = (x - k * 0.693_359_4) - k * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    (p * r * r + r + 1.0) * f32::from_bits(((k as i32 + 127) << 23) as u32)
}

/// `out[c] = σ(Σ_d color[c][d] · v[d])` for each element: the texture of
/// collapsed values (the colour matrix, then the sigmoid).
#[inline(always)]
fn color_sigmoid_body(color: &[[f32; 3]; 3], v: [&[f32]; 3], out: [&mut [f32]; 3]) {
    let n = v[0].len();
    let (v0, v1, v2) = (&v[0][..n], &v[1][..n], &v[2][..n]);
    let [o0, o1, o2] = out;
    let (o0, o1, o2) = (&mut o0[..n], &mut o1[..n], &mut o2[..n]);
    for j in 0..n {
        let x = [v0[j], v1[j], v2[j]];
        let z = |c: usize| color[c][0] * x[0] + color[c][1] * x[1] + color[c][2] * x[2];
        o0[j] = 1.0 / (1.0 + exp(-z(0)));
        o1[j] = 1.0 / (1.0 + exp(-z(1)));
        o2[j] = 1.0 / (1.0 + exp(-z(2)));
    }
}

/// The adjoint of [`color_sigmoid_body`] at its output `t`, given the
/// output's gradient `dt`: `out[d] = Σ_c color[c][d] · dt[c] · t[c](1 − t[c])
/// + below[d]` for each element.
#[inline(always)]
fn color_sigmoid_adjoint_body(color: &[[f32; 3]; 3], t: [&[f32]; 3], dt: [&[f32]; 3], below: [&[f32]; 3], out: [&mut [f32]; 3]) {
    let n = t[0].len();
    let (t, dt, below) = (t.map(|s| &s[..n]), dt.map(|s| &s[..n]), below.map(|s| &s[..n]));
    let [o0, o1, o2] = out;
    let (o0, o1, o2) = (&mut o0[..n], &mut o1[..n], &mut o2[..n]);
    for j in 0..n {
        let u = [0, 1, 2].map(|c| dt[c][j] * (t[c][j] * (1.0 - t[c][j])));
        let own = |d: usize| color[0][d] * u[0] + color[1][d] * u[1] + color[2][d] * u[2];
        o0[j] = below[0][j] + own(0);
        o1[j] = below[1][j] + own(1);
        o2[j] = below[2][j] + own(2);
    }
}

crate::simd::multiversion!(pub(super) fn color_sigmoid_adjoint(color: &[[f32; 3]; 3], t: [&[f32]; 3], dt: [&[f32]; 3], below: [&[f32]; 3], out: [&mut [f32]; 3]) => color_sigmoid_adjoint_body);

crate::simd::multiversion!(pub(super) fn color_sigmoid(color: &[[f32; 3]; 3], v: [&[f32]; 3], out: [&mut [f32]; 3]) => color_sigmoid_body);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(-1e4) >= 0.0 && exp(1e4).is_finite());
    }
}
