//! The contact sheet of one pairing in `bench quality`: one row per texture
//! (the mesh as it came, then each recipe in order), each row the preview
//! turntable at 256² followed by close-up crops: [`CROP`]² pixels cut from
//! 512² views at full resolution, where a print or a zoom shows strokes and
//! small features. The crops sit where the original texture has the most
//! detail (eyes, markings), found once on the original and kept for every row.

use anyhow::Result;

use crate::camera::Camera;
use crate::image_io::Image;
use crate::mesh::Mesh;
use crate::preview::{contact_sheet, render_views, turntable_cameras, SHEET_BACKGROUND, SHEET_GAP, TURNTABLE_SIZE, TURNTABLE_VIEWS};
use crate::raster::{Raster, RasterMesh, ViewSize};

/// The close-up views' size…
const CLOSE_SIZE: ViewSize = ViewSize { width: 512, height: 512, samples: 2 };
/// …the side of each crop, in pixels (the turntable tiles' size, so the sheet stays a grid)…
pub const CROP: u32 = 256;
/// …and the number of crops per row, each from another turntable view.
pub const CROPS: usize = 2;
/// Where the detail score looks for windows: every this many pixels.
const CROP_STRIDE: u32 = 16;

/// A crop: the turntable view it comes from and its top-left corner in the 512² view.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Crop {
    view: usize,
    x: u32,
    y: u32,
}

/// A pairing's sheet, row by row.
pub struct Sheet {
    cams: Vec<Camera>,
    crops: Vec<Crop>,
    tiles: Vec<Image>,
}

impl Sheet {
    /// The sheet of `mesh`, its first row the mesh with its own textures.
    pub fn new(raster: &mut Raster, mesh: &Mesh) -> Result<Sheet> {
        let cams = turntable_cameras(&RasterMesh::from_mesh(mesh));
        // The object's pixels: where a black and a white background give the same colour.
        let dark = render_views(raster, mesh, &[], &cams, CLOSE_SIZE, [0.0; 3])?;
        let light = render_views(raster, mesh, &[], &cams, CLOSE_SIZE, [1.0; 3])?;
        let mut best: Vec<(f32, Crop)> = dark.iter().zip(&light).enumerate().map(|(view, (d, l))| best_window(view, d, l)).collect();
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        let crops = best.iter().take(CROPS).map(|b| b.1).collect();
        let mut sheet = Sheet { cams, crops, tiles: Vec::new() };
        sheet.add_row(raster, mesh, &[])?;
        Ok(sheet)
    }

    /// A row: `mesh` with `textures` (one per material; none: its own).
    pub fn add_row(&mut self, raster: &mut Raster, mesh: &Mesh, textures: &[Image]) -> Result<()> {
        let textures: Vec<Option<&Image>> = textures.iter().map(Some).collect();
        self.tiles.extend(render_views(raster, mesh, &textures, &self.cams, TURNTABLE_SIZE, SHEET_BACKGROUND)?);
        for c in &self.crops {
            let view = render_views(raster, mesh, &textures, &self.cams[c.view..=c.view], CLOSE_SIZE, SHEET_BACKGROUND)?.remove(0);
            self.tiles.push(crop(&view, c.x, c.y, CROP));
        }
        Ok(())
    }

    /// The sheet as one image.
    pub fn image(&self) -> Image {
        contact_sheet(&self.tiles, (TURNTABLE_VIEWS + self.crops.len()) as u32, SHEET_GAP, SHEET_BACKGROUND)
    }
}

/// The `side`² window of `img` at (`x`, `y`).
fn crop(img: &Image, x: u32, y: u32, side: u32) -> Image {
    let mut out = Image::filled(side, side, SHEET_BACKGROUND);
    for j in 0..side.min(img.height - y) {
        for i in 0..side.min(img.width - x) {
            out.set_pixel(i, j, img.pixel(x + i, y + j));
        }
    }
    out
}

/// The [`CROP`]² window of view `view` with the most detail inside the object:
/// the sum of squared luminance steps between neighbouring object pixels
/// (squared, so the strong edges of eyes and markings outweigh fine fur; the
/// silhouette does not count), plus a little for each object pixel, so a
/// plain object still gets its best-covered window.
fn best_window(view: usize, dark: &Image, light: &Image) -> (f32, Crop) {
    let (w, h) = (dark.width, dark.height);
    let inside = |x: u32, y: u32| dark.pixel(x, y) == light.pixel(x, y);
    let luma = |x: u32, y: u32| {
        let p = dark.pixel(x, y);
        0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
    };
    // Summed-area table of the per-pixel detail, (w + 1) × (h + 1).
    let mut sat = vec![0f32; ((w + 1) * (h + 1)) as usize];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            let mut d = 0.0;
            if inside(x, y) {
                d += 1e-3;
                if x + 1 < w && inside(x + 1, y) {
                    d += (luma(x + 1, y) - luma(x, y)).powi(2);
                }
                if y + 1 < h && inside(x, y + 1) {
                    d += (luma(x, y + 1) - luma(x, y)).powi(2);
                }
            }
            row += d;
            sat[((y + 1) * (w + 1) + x + 1) as usize] = sat[(y * (w + 1) + x + 1) as usize] + row;
        }
    }
    let at = |x: u32, y: u32| sat[(y * (w + 1) + x) as usize];
    let side = CROP.min(w).min(h);
    let mut best = (f32::MIN, Crop { view, x: 0, y: 0 });
    for y in (0..=h - side).step_by(CROP_STRIDE as usize) {
        for x in (0..=w - side).step_by(CROP_STRIDE as usize) {
            let s = at(x + side, y + side) - at(x, y + side) - at(x + side, y) + at(x, y);
            if s > best.0 {
                best = (s, Crop { view, x, y });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_goes_where_the_detail_is_not_to_the_silhouette() {
        // A 512² view: the object is all but a background stripe at the right (a long, strong
        // silhouette), with a faint checkered patch at the top left; the background differs
        // between the two renders.
        let (mut dark, mut light) = (Image::filled(512, 512, [0.0; 3]), Image::filled(512, 512, [1.0; 3]));
        for y in 0..512 {
            for x in 0..448 {
                let v = if (16..56).contains(&x) && (16..56).contains(&y) && (x + y) % 2 == 0 { 0.5 } else { 0.4 };
                dark.set_pixel(x, y, [v; 3]);
                light.set_pixel(x, y, [v; 3]);
            }
        }
        let (_, c) = best_window(3, &dark, &light);
        assert_eq!(c.view, 3);
        assert!(c.x <= 16 && c.y <= 16, "the patch, not the silhouette: {c:?}");
        let tile = crop(&dark, c.x, c.y, CROP);
        assert_eq!((tile.width, tile.height, tile.pixel(0, 0)), (CROP, CROP, dark.pixel(c.x, c.y)));
    }
}
