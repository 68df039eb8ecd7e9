//! The slow twin of the 3×3 convs: a direct conv in plain loops with f64 sums, which the tests
//! compare every fast path against.

use crate::vgg::ops::Act;

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
