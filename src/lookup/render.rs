//! The preview renderer: a frame turned into an [`Image`] a person looks at,
//! without gradients. [`resolve`] is the one supersample box filter every
//! preview goes through; [`render`] shades it with textures or flat colours.

use crate::image_io::Image;
use crate::raster::{FramePixel, RasterFrame};

use super::sample::sample_bilinear;

/// Box-filters `frame` into a `width × height` image: each pixel is the mean
/// of its k×k samples, `shade(sample)` where covered and `background`
/// elsewhere (summed in sample order, rows top-down, then scaled by 1/k²).
pub fn resolve(frame: &RasterFrame, background: [f32; 3], shade: impl Fn(&FramePixel) -> [f32; 3]) -> Image {
    let k = frame.samples;
    let mut out = Image::filled(frame.width, frame.height, background);
    let norm = 1.0 / (k * k) as f32;
    for y in 0..frame.height {
        for x in 0..frame.width {
            let mut acc = [0.0f32; 3];
            for sy in 0..k {
                for sx in 0..k {
                    let s = frame.at(x * k + sx, y * k + sy);
                    let rgb = if s.covered() { shade(s) } else { background };
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

/// Renders `frame` with one texture per material (`textures[material]`;
/// `None` draws the material's flat colour) over `background`.
pub fn render(
    frame: &RasterFrame,
    tri_material: &[u32],
    textures: &[Option<&Image>],
    flat: &[[f32; 3]],
    background: [f32; 3],
) -> Image {
    resolve(frame, background, |s| {
        let m = tri_material[s.tri as usize - 1] as usize;
        match textures.get(m).copied().flatten() {
            Some(tex) => sample_bilinear(tex, s.uv()),
            None => flat.get(m).copied().unwrap_or([1.0; 3]),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::fixtures::frame;

    #[test]
    fn resolve_averages_each_pixels_samples_over_the_background() {
        // Pixel (0, 0) covers one sample of triangle 2, pixel (1, 0) two of triangle 1.
        let img = resolve(&frame(), [1.0, 0.0, 0.0], |s| [0.0, s.tri as f32, 0.0]);
        assert_eq!(img.pixel(0, 0), [0.75, 0.5, 0.0]);
        assert_eq!(img.pixel(1, 0), [0.5, 0.5, 0.0]);
        let bg = frame().pixels.iter().filter(|s| !s.covered()).count();
        let total: f32 = img.data.chunks(3).map(|p| p[0]).sum();
        assert_eq!(total, bg as f32 / 4.0);
    }
}
