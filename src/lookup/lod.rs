//! Triangle level of detail: how many texels one sample of a view spans on
//! each triangle, the input a mip-mapped [`super::LookupTable`] reads.

use glam::{Mat4, Vec2, Vec4};
use rayon::prelude::*;

use crate::raster::{RasterMesh, ViewSize};

/// The level of detail of each triangle of `mesh` seen through `view_proj`
/// at `size`: log₂ of the texels (of a `tex_width × tex_height` texture) per
/// sample, from the ratio of the triangle's texture area to its screen area
/// (isotropic; triangles behind the camera get 0).
pub fn triangle_lods(
    mesh: &RasterMesh,
    view_proj: Mat4,
    size: ViewSize,
    tex_width: u32,
    tex_height: u32,
) -> Vec<f32> {
    let (sw, sh) = (
        (size.width * size.samples) as f32 * 0.5,
        (size.height * size.samples) as f32 * 0.5,
    );
    let (tw, th) = (tex_width as f32, tex_height as f32);
    mesh.triangles
        .par_iter()
        .enumerate()
        .map(|(t, tri)| {
            let mut p = [Vec2::ZERO; 3];
            for (i, &v) in tri[..3].iter().enumerate() {
                let c = view_proj * Vec4::from_array(mesh.positions[v as usize]);
                if c.w <= 1e-6 {
                    return 0.0;
                }
                p[i] = Vec2::new(c.x / c.w * sw, c.y / c.w * sh);
            }
            let uv = [0, 1, 2].map(|i| Vec2::from_array(mesh.uvs[3 * t + i]) * Vec2::new(tw, th));
            let screen = (p[1] - p[0]).perp_dot(p[2] - p[0]).abs();
            let texels = (uv[1] - uv[0]).perp_dot(uv[2] - uv[0]).abs();
            if screen <= 0.0 {
                return if texels > 0.0 { f32::INFINITY } else { 0.0 };
            }
            0.5 * (texels / screen).log2()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_of_detail_is_half_the_log_of_the_area_ratio() {
        // Identity camera: NDC = xy. Legs of 1 NDC unit = 32 samples at 64 px;
        // UV legs of 1 = 128 texels: 16× the area, 2 levels.
        let mesh = RasterMesh {
            positions: vec![
                [-0.5, -0.5, 0.5, 1.0],
                [0.5, -0.5, 0.5, 1.0],
                [-0.5, 0.5, 0.5, 1.0],
                [0.0, 0.0, 0.5, -1.0],
            ],
            triangles: vec![[0, 1, 2, 0], [0, 1, 3, 0]],
            uvs: vec![
                [0.0, 0.0],
                [1.0, 0.0],
                [0.0, 1.0],
                [0.0, 0.0],
                [0.5, 0.0],
                [0.0, 0.5],
            ],
        };
        let lods = triangle_lods(&mesh, Mat4::IDENTITY, ViewSize::square(64), 128, 128);
        assert!((lods[0] - 2.0).abs() < 1e-5, "{}", lods[0]);
        // Behind the camera: no level.
        assert_eq!(lods[1], 0.0);
        // 2×2 samples per pixel: each sample spans half as many texels per axis.
        let ss = triangle_lods(
            &mesh,
            Mat4::IDENTITY,
            ViewSize {
                samples: 2,
                ..ViewSize::square(64)
            },
            128,
            128,
        );
        assert!((ss[0] - 1.0).abs() < 1e-5, "{}", ss[0]);
    }
}
