//! Turntable previews of the colour exports, rendered from the colours
//! as they will print (per vertex, per face), so the user sees the print
//! before printing. Same views as `preview_before_after.png`.

use anyhow::{Context, Result};

use super::palette::Palette;
use crate::camera::Camera;
use crate::image_io::Image;
use crate::lookup;
use crate::mesh::Mesh;
use crate::preview::{contact_sheet, turntable_cameras, SHEET_BACKGROUND, SHEET_GAP, TURNTABLE_SIZE, TURNTABLE_VIEWS};
use crate::raster::{Raster, RasterMesh};

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
            let frame = raster
                .rasterize(cam.view_proj(TURNTABLE_SIZE.aspect()), TURNTABLE_SIZE)
                .with_context(|| format!("preview view {i}"))?;
            Ok(lookup::resolve(&frame, SHEET_BACKGROUND, |s| shade(s.tri as usize - 1, [s.u, s.v])))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(contact_sheet(&views, TURNTABLE_VIEWS as u32, SHEET_GAP, SHEET_BACKGROUND))
}

/// The vertex colours of `mesh` interpolated across each triangle, as a
/// slicer shows them. `raster` holds [`barycentric_mesh`]`(mesh)`.
pub fn vertex_colors(raster: &mut Raster, mesh: &Mesh, colors: &[[f32; 3]]) -> Result<Image> {
    let cams = turntable_cameras(&RasterMesh::from_mesh(mesh));
    sheet(raster, &cams, &|t, [u, v]| {
        let [a, b, c] = mesh.triangles[t].map(|i| colors[i as usize]);
        [0, 1, 2].map(|k| a[k] * (1.0 - u - v) + b[k] * u + c[k] * v)
    })
}

/// Each face of `mesh` in its palette colour. `raster` holds `mesh`'s geometry.
pub fn palette(raster: &mut Raster, mesh: &Mesh, palette: &Palette) -> Result<Image> {
    let cams = turntable_cameras(&RasterMesh::from_mesh(mesh));
    sheet(raster, &cams, &|t, _| palette.colors[palette.face_color[t] as usize].map(|v| v as f32 / 255.0))
}
