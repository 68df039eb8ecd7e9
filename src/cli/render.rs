//! `texstyle render`: the mesh with its texture, seen from several views.

use std::time::Instant;

use anyhow::Context;

use super::args::{Layout, RenderArgs};
use super::config::RenderConfig;
use super::CliError;
use crate::camera::{turntable_fitting, CameraRange, ViewSampler};
use crate::image_io::Image;
use crate::mesh::Mesh;
use crate::preview;
use crate::raster::{RasterMesh, ViewSize};

pub fn run(a: RenderArgs) -> Result<(), CliError> {
    let a = RenderConfig::from_args(a)?;
    let mesh = Mesh::load(&a.mesh)?;
    for w in &mesh.warnings {
        super::warn(w);
    }
    let override_tex = match &a.texture {
        Some(p) => Some(Image::load(p).with_context(|| format!("reading the texture {}", p.display()))?),
        None => None,
    };
    match &mesh.uv_coverage {
        crate::mesh::UvCoverage::Partial(where_) => super::warn(format!(
            "{}: only some faces have texture coordinates ({where_}): drawing flat material colours \
             (give every face UVs in your modeller, or style it with --uv auto for a new atlas)",
            crate::input::shown(&a.mesh)
        )),
        _ if !mesh.has_uvs() => super::warn(format!(
            "{} has no texture coordinates: drawing flat material colours",
            crate::input::shown(&a.mesh)
        )),
        _ => {}
    }
    let raster_mesh = RasterMesh::from_mesh(&mesh);
    let mut raster = super::open_raster(a.cpu, &raster_mesh)?;

    let range = CameraRange::default();
    let cameras = match a.layout {
        Layout::Turntable => turntable_fitting(a.views, a.elevation, raster_mesh.radius(), range.fov_y_deg.0),
        Layout::Random => {
            let mut s = ViewSampler::new(a.seed, range);
            (0..a.views).map(|_| s.next_camera()).collect()
        }
    };
    let size = ViewSize { width: a.size, height: a.size, samples: a.samples };
    let textures = vec![override_tex.as_ref(); mesh.materials.len()];
    let start = Instant::now();
    let images = preview::render_views(&mut raster, &mesh, &textures, &cameras, size, a.background)?;
    let elapsed = start.elapsed();

    // An output folder that cannot be made is the user's --out to fix (exit 2).
    std::fs::create_dir_all(&a.out).map_err(|e| {
        super::config::bad_file(format!("--out {}: cannot create the folder ({e}); choose a writable folder path", a.out.display()))
    })?;
    for (i, img) in images.iter().enumerate() {
        img.save_png(&a.out.join(format!("view_{i:03}.png")))?;
    }
    let columns = (images.len() as f32).sqrt().ceil() as u32;
    let sheet_path = a.out.join("contact_sheet.png");
    preview::contact_sheet(&images, columns, preview::SHEET_GAP, a.background).save_png(&sheet_path)?;
    eprintln!(
        "texstyle: rendered {} views of {} ({} triangles) at {}² ×{} samples with {} in {:.0} ms; contact sheet: {}",
        images.len(),
        a.mesh.display(),
        mesh.triangles.len(),
        a.size,
        a.samples * a.samples,
        raster.name(),
        elapsed.as_secs_f64() * 1e3,
        sheet_path.display()
    );
    Ok(())
}

