//! The fixed judge of `bench quality`: held-out views that no recipe trains
//! on, each seen at every size of [`JUDGE_SIZES`], scored against the painting
//! (style) and against the mesh's own texture seen the same way (content, at
//! [`JUDGE_CONTENT_LAYERS`]). Every constant of the judge is here.

use anyhow::Result;
use candle_core::Tensor;

use crate::camera::{Camera, CameraRange, ViewSampler};
use crate::image_io::{image_to_tensor, Image};
use crate::loss::{self, ContentTerm, Objective, StyleTargets};
use crate::mesh::Mesh;
use crate::optim;
use crate::preview::render_views;
use crate::raster::{Raster, ViewSize};
use crate::vgg::Vgg;

/// The judge's views: this many, from this seed (not any recipe's training or held-out seed)…
pub const JUDGE_VIEWS: usize = 6;
const JUDGE_SEED: u64 = 0x9D6E_0F1E;
/// …each rendered at these sizes, anti-aliased (2×2 samples): 256² as the
/// default trains, 512² close up (the reference's own views, and what a print
/// or a zoom shows).
pub const JUDGE_SIZES: [ViewSize; 2] = [ViewSize { width: 256, height: 256, samples: 2 }, ViewSize { width: 512, height: 512, samples: 2 }];
/// The painting's longer side for the style targets, at every view size: at
/// 512² views this is the reference's own ground (it trained 512² views
/// against a 606×480 copy of The Starry Night).
pub const JUDGE_STYLE_SIZE: u32 = 512;
/// Content layers: relu4_2 (the training's: shapes and colour regions) and a
/// shallower one that sees small features. relu3_1 (stride 4) keeps an eye of
/// 8–12 px at 256² in 2–3 cells and the colours and edges that make it an eye;
/// relu2_2 (stride 2) is close to comparing pixels, so any brushwork would
/// read as lost content everywhere.
pub const JUDGE_CONTENT_LAYERS: [&str; 2] = crate::optim::HELD_OUT_CONTENT_LAYERS;
const JUDGE_BACKGROUND: [f32; 3] = crate::preview::STYLE_BACKGROUND;

/// The judge's numbers for one texture at one view size: relative errors
/// (1 = as far from the target as zero features are), means over the views.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SizeScore {
    pub style: f32,
    /// At `JUDGE_CONTENT_LAYERS[0]` and `[1]`; 0 when the mesh has no texture.
    pub content: f32,
    pub content_shallow: f32,
}

/// One held-out view at one size: what it is compared with.
struct View {
    /// The style terms and the content term at the deep layer.
    objective: Objective,
    /// The content term at the shallow layer.
    shallow: Option<ContentTerm>,
}

/// The fixed judge of one pairing.
pub struct Judge {
    cams: Vec<Camera>,
    /// Per size of [`JUDGE_SIZES`], per camera.
    views: Vec<Vec<View>>,
}

impl Judge {
    pub fn new(vgg: &Vgg, raster: &mut Raster, mesh: &Mesh, painting: &Image) -> Result<Judge> {
        let mut s = ViewSampler::new(JUDGE_SEED, CameraRange::default());
        let cams: Vec<Camera> = (0..JUDGE_VIEWS).map(|_| s.next_camera()).collect();
        let painting = image_to_tensor(&optim::prepare_style(painting, JUDGE_STYLE_SIZE))?.to_device(vgg.device())?;
        let targets = StyleTargets::new(vgg, &painting, 1.0)?;
        let has_content = mesh.materials.iter().any(|m| m.texture.is_some());
        let [deep, shallow] = JUDGE_CONTENT_LAYERS.map(|l| l.parse::<crate::vgg::Layer>());
        let (deep, shallow) = (deep?, shallow?);
        let mut views = Vec::new();
        for size in JUDGE_SIZES {
            let originals = render_views(raster, mesh, &[], &cams, size, JUDGE_BACKGROUND)?;
            let at_size = originals
                .into_iter()
                .map(|original| {
                    let img = image_to_tensor(&original)?.to_device(vgg.device())?;
                    let content = if has_content { Some(loss::content_term(vgg, &img, deep, 1.0)?) } else { None };
                    let shallow = if has_content { Some(loss::content_term(vgg, &img, shallow, 1.0)?) } else { None };
                    Ok(View { objective: Objective { style: targets.terms.clone(), content: content.into_iter().collect(), nnfm: Vec::new() }, shallow })
                })
                .collect::<Result<Vec<_>>>()?;
            views.push(at_size);
        }
        Ok(Judge { cams, views })
    }

    /// The scores of `textures` (one per material, as exported) at each size of [`JUDGE_SIZES`].
    pub fn score(&self, vgg: &Vgg, raster: &mut Raster, mesh: &Mesh, textures: &[Image]) -> Result<Vec<SizeScore>> {
        let learned: Vec<Option<&Image>> = textures.iter().map(Some).collect();
        let mut scores = Vec::new();
        for (size, views) in JUDGE_SIZES.into_iter().zip(&self.views) {
            let rendered = render_views(raster, mesh, &learned, &self.cams, size, JUDGE_BACKGROUND)?;
            let mut sum = SizeScore::default();
            for (img, view) in rendered.iter().zip(views) {
                let s = view.score(vgg, &image_to_tensor(img)?.to_device(vgg.device())?)?;
                (sum.style, sum.content, sum.content_shallow) = (sum.style + s.style, sum.content + s.content, sum.content_shallow + s.content_shallow);
            }
            let n = views.len().max(1) as f32;
            scores.push(SizeScore { style: sum.style / n, content: sum.content / n, content_shallow: sum.content_shallow / n });
        }
        Ok(scores)
    }
}

impl View {
    /// All three numbers from one forward of `image`.
    fn score(&self, vgg: &Vgg, image: &Tensor) -> Result<SizeScore> {
        let mut layers = self.objective.layers();
        let n = layers.len();
        layers.extend(self.shallow.as_ref().map(|c| c.layer));
        let features = vgg.features(image, &layers)?;
        let parts = self.objective.loss_of_features(&features[..n])?;
        let shallow = match &self.shallow {
            Some(c) => Objective { style: Vec::new(), content: vec![c.clone()], nnfm: Vec::new() }.loss_of_features(&features[n..])?.content,
            None => 0.0,
        };
        Ok(SizeScore { style: parts.style, content: parts.content, content_shallow: shallow })
    }
}
