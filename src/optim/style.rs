//! The painting's side of a run: the painting scaled for the network, and the
//! style loss on held-out views (the before/after score of [`super::Outcome`]).

use std::sync::Arc;

use anyhow::Result;
use candle_core::Tensor;

use super::Config;
use crate::camera::ViewSampler;
use crate::image_io::{image_to_tensor, Image};
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

/// Layers of the held-out content score, also `bench quality`'s judge's
/// (`JUDGE_CONTENT_LAYERS`): relu4_2 for shapes and colour regions, relu3_1
/// for small features such as an eye; so a run's closing line and
/// `batch.csv` read like the judge.
pub const HELD_OUT_CONTENT_LAYERS: [&str; 2] = ["relu4_2", "relu3_1"];

/// The held-out scores of a texture: means over the views.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct HeldOut {
    pub style: f32,
    /// Relative error against the mesh's own texture seen the same way, averaged
    /// over [`HELD_OUT_CONTENT_LAYERS`] (0: as the original, 1: as far as no
    /// features at all); `None` when not asked for or the mesh has no texture.
    pub content: Option<f32>,
}

/// The style loss of `texture` seen from each of `cams` (no memory: G_used =
/// G_now) and, with `content`, its content loss against the mesh's own textures.
#[allow(clippy::too_many_arguments)]
pub(super) fn eval_held_out(
    raster: &mut Raster,
    mesh: &Mesh,
    vgg: &Vgg,
    style: &StyleTargets,
    texture: &Tensor,
    cams: &[glam::Mat4],
    cfg: &Config,
    content: bool,
) -> Result<HeldOut> {
    let size = cfg.view_size_at(cfg.steps);
    let (m, _, th, tw) = texture.dims4()?;
    let originals: Vec<Option<&Image>> = mesh.materials.iter().map(|m| m.texture.as_ref()).collect();
    let flat: Vec<[f32; 3]> = mesh.materials.iter().map(|m| m.diffuse).collect();
    let content = content && originals.iter().any(|t| t.is_some());
    let content_layers = crate::vgg::layers(&HELD_OUT_CONTENT_LAYERS)?;
    let (mut style_sum, mut content_sum) = (0.0, 0.0);
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
        let obj = match content {
            true => {
                let original = image_to_tensor(&lookup::render(&frame, &mesh.tri_material, &originals, &flat, cfg.background))?.to_device(vgg.device())?;
                loss::objective(vgg, style, Some(&original), 1.0, &content_layers)?
            }
            false => loss::Objective { style: style.terms.clone(), content: Vec::new(), nnfm: Vec::new() },
        };
        let parts = obj.loss(vgg, &img)?;
        (style_sum, content_sum) = (style_sum + parts.style, content_sum + parts.content);
    }
    let n = cams.len().max(1) as f32;
    Ok(HeldOut { style: style_sum / n, content: content.then_some(content_sum / n) })
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
