//! Coordinate conventions, stated once. Every function that crosses one of
//! these cites this module; when an image looks mirrored, fix the root cause
//! here instead of flipping things until it looks right.
//!
//! # Mesh and world space
//! - Positions are kept in the OBJ's own coordinates (for export). Rendering
//!   goes through [`crate::mesh::Mesh::normalization`], which maps the
//!   bounding-box centre to the origin and the longest side to length 2, so
//!   the mesh fits the [-1, 1] cube.
//! - Cameras are right-handed look-at cameras with up = +Y (+Z / −Z when the
//!   view direction is (anti)parallel to Y). Projection is glam's
//!   `camera::rh::proj::directx::perspective`: NDC y up, clip-space depth
//!   from 0 at the near plane to 1 at the far plane.
//!
//! # Image space
//! - Images are stored row-major, rows top-down. Pixel `(col, row)` has its
//!   centre at `(col + 0.5, row + 0.5)`.
//! - NDC x = −1 is the left edge, NDC y = +1 the TOP edge, so the centre of
//!   pixel `(col, row)` of a W×H view is
//!   `x = (col + 0.5) / W · 2 − 1`, `y = 1 − (row + 0.5) / H · 2`
//!   ([`pixel_center_ndc`]).
//!
//! # Texture space
//! - OBJ `vt` has its origin at the BOTTOM-left of the image: v = 0 is the
//!   last row. Texel `(x, y)` (rows top-down) has its centre at
//!   `u = (x + 0.5) / W`, `v = 1 − (y + 0.5) / H`.
//! - So a lookup at `(u, v)` reads the continuous texel position
//!   `(u · W − 0.5, (1 − v) · H − 0.5)` ([`uv_to_texel`]) and blends the
//!   four surrounding texel centres bilinearly, wrapping around the edges
//!   (repeat), like OpenGL's `GL_REPEAT` + `GL_LINEAR`.
//!
//! # The UV frame
//! - [`crate::raster::RasterFrame`] holds per pixel `[u, v, depth, tri_id + 1]`:
//!   `tri_id + 1 = 0` means background. `depth` is clip-space z/w in [0, 1].
//! - Between two surfaces at equal depth the smaller triangle id wins, so the
//!   frame does not depend on thread scheduling.

use glam::Vec2;

/// NDC coordinates of the centre of pixel `(col, row)` in a `width × height`
/// view (rows top-down, NDC y up).
#[inline]
pub fn pixel_center_ndc(col: u32, row: u32, width: u32, height: u32) -> Vec2 {
    Vec2::new(
        (col as f32 + 0.5) / width as f32 * 2.0 - 1.0,
        1.0 - (row as f32 + 0.5) / height as f32 * 2.0,
    )
}

/// Continuous texel position read by a lookup at `uv` in a `width × height`
/// texture (rows top-down, texel centres at +0.5, v flipped).
#[inline]
pub fn uv_to_texel(uv: Vec2, width: u32, height: u32) -> Vec2 {
    Vec2::new(uv.x * width as f32 - 0.5, (1.0 - uv.y) * height as f32 - 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_centres_span_ndc_symmetrically() {
        // Top-left pixel of a 2×2 view is at (−0.5, +0.5).
        assert_eq!(pixel_center_ndc(0, 0, 2, 2), Vec2::new(-0.5, 0.5));
        assert_eq!(pixel_center_ndc(1, 1, 2, 2), Vec2::new(0.5, -0.5));
    }

    #[test]
    fn texel_centres_round_trip() {
        // The centre of texel (0, 0) — top-left — has v near 1.
        let uv = Vec2::new(0.5 / 2.0, 1.0 - 0.5 / 2.0);
        assert_eq!(uv_to_texel(uv, 2, 2), Vec2::new(0.0, 0.0));
        // Bottom-right texel of a 2×2 texture.
        let uv = Vec2::new(1.5 / 2.0, 1.0 - 1.5 / 2.0);
        assert_eq!(uv_to_texel(uv, 2, 2), Vec2::new(1.0, 1.0));
    }
}
