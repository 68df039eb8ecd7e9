//! Turntable previews of the colour exports, rendered from the colours
//! as they will print (per vertex, per face), so the user sees the print
//! before printing. Same views as `preview_before_after.png`.

use anyhow::{Context, Result};

use super::palette::Palette;
use crate::camera::{turntable_fitting, Camera, CameraRange};
use crate::image_io::Image;
use crate::mesh::Mesh;
use crate::preview::contact_sheet;
use crate::raster::{Raster, RasterFrame, RasterMesh, ViewSize};

/// Views around the vertical axis, one row of the sheet.
pub const VIEWS: usize = 8;
/// Elevation of the views above the horizon, in degrees.
pub const ELEVATION_DEG: f32 = 20.0;
/// Each view's size: 256² pixels, 2×2 samples per pixel.
pub const SIZE: ViewSize = ViewSize { width: 256, height: 256, samples: 2 };
pub const BACKGROUND: [f32; 3] = [0.5; 3];
/// Pixels between the views of a sheet.
pub const GAP: u32 = 4;

/// The turntable around `mesh`, framed to fit it.
pub fn cameras(mesh: &RasterMesh) -> Vec<Camera> {
    turntable_fitting(VIEWS, ELEVATION_DEG, mesh.radius(), CameraRange::default().fov_y_deg.0)
}

/// `mesh` for the rasterizer with the corner UVs (0, 0), (1, 0), (0, 1) in
/// every triangle: the frame's perspective-correct "UV" is then the
/// barycentric weight of corners 1 and 2, which interpolates vertex colours.
pub fn barycentric_mesh(mesh: &Mesh) -> RasterMesh {
    let mut r = RasterMesh::from_mesh(mesh);
    for (i, uv) in r.uvs.iter_mut().enumerate() {
        *uv = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]][i % 3];
    }
    r
}

/// Renders each view of the turntable, `shade` colouring one covered
/// sample (triangle index, frame UV), box-filtered over the samples.
fn sheet(raster: &mut Raster, rmesh_cams: &[Camera], shade: &dyn Fn(usize, [f32; 2]) -> [f32; 3]) -> Result<Image> {
    let views = rmesh_cams
        .iter()
        .enumerate()
        .map(|(i, cam)| {
            let frame = raster.rasterize(cam.view_proj(SIZE.aspect()), SIZE).with_context(|| format!("preview view {i}"))?;
            Ok(shade_frame(&frame, shade))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(contact_sheet(&views, VIEWS as u32, GAP, BACKGROUND))
}

fn shade_frame(frame: &RasterFrame, shade: &dyn Fn(usize, [f32; 2]) -> [f32; 3]) -> Image {
    let k = frame.samples;
    let mut out = Image::filled(frame.width, frame.height, BACKGROUND);
    for y in 0..frame.height {
        for x in 0..frame.width {
            let mut acc = [0.0f32; 3];
            for s in (0..k * k).map(|j| frame.at(x * k + j % k, y * k + j / k)) {
                let rgb = if s.covered() { shade(s.tri as usize - 1, [s.u, s.v]) } else { BACKGROUND };
                (0..3).for_each(|c| acc[c] += rgb[c] / (k * k) as f32);
            }
            out.set_pixel(x, y, acc);
        }
    }
    out
}

/// The vertex colours of `mesh` interpolated across each triangle, as a
/// slicer shows them. `raster` holds [`barycentric_mesh`]`(mesh)`.
pub fn vertex_colors(raster: &mut Raster, mesh: &Mesh, colors: &[[f32; 3]]) -> Result<Image> {
    let cams = cameras(&RasterMesh::from_mesh(mesh));
    sheet(raster, &cams, &|t, [u, v]| {
        let [a, b, c] = mesh.triangles[t].map(|i| colors[i as usize]);
        [0, 1, 2].map(|k| a[k] * (1.0 - u - v) + b[k] * u + c[k] * v)
    })
}

/// Each face of `mesh` in its palette colour. `raster` holds `mesh`'s geometry.
pub fn palette(raster: &mut Raster, mesh: &Mesh, palette: &Palette) -> Result<Image> {
    let cams = cameras(&RasterMesh::from_mesh(mesh));
    sheet(raster, &cams, &|t, _| palette.colors[palette.face_color[t] as usize].map(|v| v as f32 / 255.0))
}
