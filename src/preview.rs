//! Pictures a person can look at: a mesh rendered with its textures from a
//! set of cameras, and a contact sheet of those renders.

use anyhow::{Context, Result};

use crate::camera::{turntable_fitting, Camera, CameraRange};
use crate::image_io::Image;
use crate::lookup;
use crate::mesh::Mesh;
use crate::raster::{Raster, RasterMesh, ViewSize};

// Background colours, one name each; the CLI's `--background` help names
// the first two in hex (000000, 808080).

/// The style transfer's views (the reference's: black); the quality judge
/// renders its views the same way.
pub const STYLE_BACKGROUND: [f32; 3] = [0.0; 3];
/// `texstyle render`'s (808080: mid grey, so dark and light textures both show).
pub const RENDER_BACKGROUND: [f32; 3] = [128.0 / 255.0; 3];
/// The preview sheets' (before/after, the colour exports', the quality
/// judge's): a neutral grey.
pub const SHEET_BACKGROUND: [f32; 3] = [0.5; 3];

/// Pixels between and around the tiles of a contact sheet.
pub const SHEET_GAP: u32 = 4;

/// The turntable every preview sheet shows (the style transfer's
/// before/after, the colour exports'): this many views around the vertical
/// axis, one row of the sheet…
pub const TURNTABLE_VIEWS: usize = 8;
/// …each this size (256², 2×2 samples per pixel)…
pub const TURNTABLE_SIZE: ViewSize = ViewSize { width: 256, height: 256, samples: 2 };
/// …seen from this elevation above the horizon, in degrees.
pub const TURNTABLE_ELEVATION_DEG: f32 = 20.0;

/// The preview turntable around `mesh`, framed to fit it.
pub fn turntable_cameras(mesh: &RasterMesh) -> Vec<Camera> {
    turntable_fitting(TURNTABLE_VIEWS, TURNTABLE_ELEVATION_DEG, mesh.radius(), CameraRange::default().fov_y_deg.0)
}

/// The before/after sheet of `mesh` with its own textures and with `learned`
/// (one per material): the turntable with the original textures on top, the
/// learned ones below.
pub fn before_after(raster: &mut Raster, mesh: &Mesh, learned: &[Image]) -> Result<Image> {
    let cams = turntable_cameras(&RasterMesh::from_mesh(mesh));
    let (size, grey) = (TURNTABLE_SIZE, SHEET_BACKGROUND);
    let before = render_views(raster, mesh, &[], &cams, size, grey)?;
    let learned: Vec<Option<&Image>> = learned.iter().map(Some).collect();
    let after = render_views(raster, mesh, &learned, &cams, size, grey)?;
    Ok(contact_sheet(&[before, after].concat(), TURNTABLE_VIEWS as u32, SHEET_GAP, grey))
}

/// Renders `mesh` from each camera. `textures[m]` overrides material `m`'s
/// own texture when `Some`.
pub fn render_views(
    raster: &mut Raster,
    mesh: &Mesh,
    textures: &[Option<&Image>],
    cameras: &[Camera],
    size: ViewSize,
    background: [f32; 3],
) -> Result<Vec<Image>> {
    let flat: Vec<[f32; 3]> = mesh.materials.iter().map(|m| m.diffuse).collect();
    let textures: Vec<Option<&Image>> = (0..mesh.materials.len())
        .map(|m| textures.get(m).copied().flatten().or(mesh.materials[m].texture.as_ref()))
        .collect();
    let textures = if mesh.has_uvs() { textures } else { vec![None; mesh.materials.len()] };
    cameras
        .iter()
        .enumerate()
        .map(|(i, cam)| {
            let frame = raster.rasterize(cam.view_proj(size.aspect()), size).with_context(|| format!("view {i}"))?;
            Ok(lookup::render(&frame, &mesh.tri_material, &textures, &flat, background))
        })
        .collect()
}

/// Tiles images (all of the first one's size) into a grid `columns` wide,
/// separated by `gap` pixels of `background`.
pub fn contact_sheet(images: &[Image], columns: u32, gap: u32, background: [f32; 3]) -> Image {
    let (w, h) = images.first().map_or((0, 0), |i| (i.width, i.height));
    let columns = columns.max(1).min(images.len().max(1) as u32);
    let rows = (images.len() as u32).div_ceil(columns);
    let mut sheet = Image::filled(columns * (w + gap) + gap, rows * (h + gap) + gap, background);
    for (k, img) in images.iter().enumerate() {
        let (cx, cy) = (k as u32 % columns, k as u32 / columns);
        let (ox, oy) = (gap + cx * (w + gap), gap + cy * (h + gap));
        for y in 0..h.min(img.height) {
            for x in 0..w.min(img.width) {
                sheet.set_pixel(ox + x, oy + y, img.pixel(x, y));
            }
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_sheet_places_tiles_in_reading_order() {
        let tiles: Vec<Image> = (0..3).map(|i| Image::filled(2, 2, [i as f32 / 2.0; 3])).collect();
        let sheet = contact_sheet(&tiles, 2, 1, [1.0, 0.0, 0.0]);
        assert_eq!((sheet.width, sheet.height), (7, 7));
        assert_eq!(sheet.pixel(1, 1), [0.0; 3]);
        assert_eq!(sheet.pixel(4, 1), [0.5; 3]);
        assert_eq!(sheet.pixel(1, 4), [1.0; 3]);
        assert_eq!(sheet.pixel(4, 4), [1.0, 0.0, 0.0]); // empty slot
        assert_eq!(sheet.pixel(0, 0), [1.0, 0.0, 0.0]); // gap
    }

    /// The `--background` help states the defaults in hex.
    #[test]
    fn default_backgrounds_are_the_hex_the_help_states() {
        let hex = |c: [f32; 3]| c.map(|v| format!("{:02x}", (v * 255.0).round() as u8)).concat();
        assert_eq!(hex(STYLE_BACKGROUND), "000000");
        assert_eq!(hex(RENDER_BACKGROUND), "808080");
    }
}
