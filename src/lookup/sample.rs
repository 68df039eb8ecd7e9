//! Bilinear sampling of one texture at one UV: which four texels a lookup
//! reads and with what weights, as [`crate::conventions`] states (wrapping,
//! v flipped, half-texel centred).

use glam::Vec2;

use crate::conventions::uv_to_texel;
use crate::image_io::Image;

/// The four texels `(x, y)` a bilinear lookup at `uv` reads from a
/// `width × height` texture (wrapping), and their weights.
#[inline]
pub fn bilinear_taps(uv: Vec2, width: u32, height: u32) -> ([(u32, u32); 4], [f32; 4]) {
    let p = uv_to_texel(uv, width, height);
    let (x0, y0) = (p.x.floor(), p.y.floor());
    let (fx, fy) = (p.x - x0, p.y - y0);
    let wrap = |i: f32, n: u32| (i as i64).rem_euclid(n as i64) as u32;
    let (xa, xb) = (wrap(x0, width), wrap(x0 + 1.0, width));
    let (ya, yb) = (wrap(y0, height), wrap(y0 + 1.0, height));
    (
        [(xa, ya), (xb, ya), (xa, yb), (xb, yb)],
        [
            (1.0 - fx) * (1.0 - fy),
            fx * (1.0 - fy),
            (1.0 - fx) * fy,
            fx * fy,
        ],
    )
}

/// Bilinear lookup of `image` at `uv`, wrapping at the edges.
pub fn sample_bilinear(image: &Image, uv: Vec2) -> [f32; 3] {
    let (taps, w) = bilinear_taps(uv, image.width, image.height);
    let mut out = [0.0f32; 3];
    for (&(x, y), &wt) in taps.iter().zip(&w) {
        let px = image.pixel(x, y);
        for k in 0..3 {
            out[k] += wt * px[k];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2×2 texture: red top-left, green top-right, blue bottom-left, white bottom-right.
    fn checker() -> Image {
        let mut img = Image::filled(2, 2, [1.0; 3]);
        img.set_pixel(0, 0, [1.0, 0.0, 0.0]);
        img.set_pixel(1, 0, [0.0, 1.0, 0.0]);
        img.set_pixel(0, 1, [0.0, 0.0, 1.0]);
        img
    }

    #[test]
    fn texel_centres_return_texels_and_v_points_up() {
        let t = checker();
        // v near 1 is the TOP row of the image (OBJ convention).
        assert_eq!(sample_bilinear(&t, Vec2::new(0.25, 0.75)), [1.0, 0.0, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(0.75, 0.75)), [0.0, 1.0, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(0.25, 0.25)), [0.0, 0.0, 1.0]);
    }

    #[test]
    fn halfway_blends_and_edges_wrap() {
        let t = checker();
        // Midway between red and green texel centres.
        assert_eq!(sample_bilinear(&t, Vec2::new(0.5, 0.75)), [0.5, 0.5, 0.0]);
        // u = 0 is midway between the last column (green) and the first (red): wraps.
        assert_eq!(sample_bilinear(&t, Vec2::new(0.0, 0.75)), [0.5, 0.5, 0.0]);
        assert_eq!(sample_bilinear(&t, Vec2::new(1.0, 0.75)), [0.5, 0.5, 0.0]);
    }
}
