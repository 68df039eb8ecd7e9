//! The painting's side of a run: the painting scaled for the network, and the
//! style loss on held-out views (the before/after score of [`super::Outcome`]).

use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;

use super::Config;
use crate::camera::ViewSampler;
use crate::image_io::Image;
use crate::lookup::{self, LookupTable};
use crate::loss::{self, StyleTargets};
use crate::mesh::Mesh;
use crate::raster::Raster;
use crate::vgg::Vgg;

/// Mixed into the seed for the held-out views, so they are not the first
/// training views.
const EVAL_SEED_SALT: u64 = 0xE7A1_5EED;

/// The painting, scaled so its longer side is `max_side` pixels (never up).
pub fn prepare_style(img: &Image, max_side: u32) -> Image {
    img.clone().resized_to_fit(max_side)
}

/// The style loss of `texture` seen from each of `cams` (no memory: G_used = G_now).
pub(super) fn eval_style(
    raster: &mut Raster,
    mesh: &Mesh,
    vgg: &Vgg,
    style: &StyleTargets,
    texture: &Tensor,
    cams: &[glam::Mat4],
    cfg: &Config,
) -> Result<f32> {
    let size = cfg.view_size_at(cfg.steps);
    let (m, _, th, tw) = texture.dims4()?;
    let obj = loss::Objective {
        style: style.terms.clone(),
        content: Vec::new(),
        nnfm: Vec::new(),
    };
    let mut sum = 0.0;
    for vp in cams {
        let frame = raster.rasterize(*vp, size)?;
        let table = Arc::new(LookupTable::new(
            &frame,
            &mesh.tri_material,
            m,
            tw as u32,
            th as u32,
        ));
        let img = lookup::lookup(texture, &table, cfg.background)?.to_device(vgg.device())?;
        sum += obj.loss(vgg, &img)?.style;
    }
    Ok(sum / cams.len().max(1) as f32)
}

/// The view-projections of the `cfg.eval_views` held-out views, at the run's
/// final view size.
pub(super) fn eval_cameras(cfg: &Config) -> Vec<glam::Mat4> {
    let size = cfg.view_size_at(cfg.steps);
    let mut s = ViewSampler::new(cfg.seed ^ EVAL_SEED_SALT, cfg.cameras);
    (0..cfg.eval_views)
        .map(|_| s.next_camera().view_proj(size.aspect()))
        .collect()
}
