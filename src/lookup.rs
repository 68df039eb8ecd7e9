//! Step 4 of the data path: an image seen through a UV frame.
//!
//! Bilinear, wrapping (repeat), v flipped and half-texel centred, exactly as
//! [`crate::conventions`] states. With a supersampled frame each output pixel
//! is the box-filtered mean of its k×k samples.

use glam::Vec2;

use crate::conventions::uv_to_texel;
use crate::image_io::Image;
use crate::raster::RasterFrame;

/// Bilinear lookup of `image` at `uv`, wrapping at the edges.
pub fn sample_bilinear(image: &Image, uv: Vec2) -> [f32; 3] {
    let p = uv_to_texel(uv, image.width, image.height);
    let (x0, y0) = (p.x.floor(), p.y.floor());
    let (fx, fy) = (p.x - x0, p.y - y0);
    let wrap = |i: f32, n: u32| (i as i64).rem_euclid(n as i64) as u32;
    let (xa, xb) = (wrap(x0, image.width), wrap(x0 + 1.0, image.width));
    let (ya, yb) = (wrap(y0, image.height), wrap(y0 + 1.0, image.height));
    let (a, b, c, d) = (image.pixel(xa, ya), image.pixel(xb, ya), image.pixel(xa, yb), image.pixel(xb, yb));
    [0, 1, 2].map(|k| {
        (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy
    })
}

/// Renders `frame` with one texture per material (`textures[material]`;
/// `None` draws the material's flat colour) over `background`.
pub fn render(
    frame: &RasterFrame,
    tri_material: &[u32],
    textures: &[Option<&Image>],
    flat: &[[f32; 3]],
    background: [f32; 3],
) -> Image {
    let k = frame.samples;
    let mut out = Image::filled(frame.width, frame.height, background);
    let norm = 1.0 / (k * k) as f32;
    for y in 0..frame.height {
        for x in 0..frame.width {
            let mut acc = [0.0f32; 3];
            for sy in 0..k {
                for sx in 0..k {
                    let s = frame.at(x * k + sx, y * k + sy);
                    let rgb = if s.covered() {
                        let m = tri_material[s.tri as usize - 1] as usize;
                        match textures.get(m).copied().flatten() {
                            Some(tex) => sample_bilinear(tex, s.uv()),
                            None => flat.get(m).copied().unwrap_or([1.0; 3]),
                        }
                    } else {
                        background
                    };
                    for c in 0..3 {
                        acc[c] += rgb[c];
                    }
                }
            }
            out.set_pixel(x, y, acc.map(|v| v * norm));
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
