//! Test inputs the lookup's files share: a tiny supersampled frame and
//! deterministic texture values.

use crate::raster::{FramePixel, RasterFrame};

/// A 2×2-pixel frame with 2×2 samples: background, two materials, UVs off-centre.
pub fn frame() -> RasterFrame {
    let px = |u: f32, v: f32, tri: u32| FramePixel {
        u,
        v,
        depth: 0.5,
        tri,
    };
    let mut pixels = vec![FramePixel::default(); 16];
    let uvs = [
        (0.1, 0.2),
        (0.37, 0.91),
        (0.8, 0.45),
        (0.02, 0.98),
        (0.5, 0.5),
        (0.66, 0.13),
    ];
    for (i, &(u, v)) in uvs.iter().enumerate() {
        pixels[2 + 2 * i] = px(u, v, 1 + (i as u32 % 2));
    }
    RasterFrame {
        width: 2,
        height: 2,
        samples: 2,
        pixels,
    }
}

/// `n` values in [0, 1), spread without a pattern a lookup could hide.
pub fn pseudo_random(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761) % 997) as f32 / 997.0)
        .collect()
}
