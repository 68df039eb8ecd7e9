//! The fixed judge of `bench quality`: held-out views that no recipe trains
//! on, each seen at every size of [`JUDGE_SIZES`], scored against the painting
//! (style) and against the mesh's own texture seen the same way (content, at
//! [`JUDGE_CONTENT_LAYERS`]), and how crisp its strokes are in those views
//! ([`edge_measures`]). Every constant of the judge is here.

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

/// Pixels this close to the silhouette are left out of [`edge_measures`]: the
/// object's outline against the background is not a brush stroke.
const EDGE_MARGIN: usize = 3;

/// The judge's numbers for one texture at one view size, means over the views:
/// relative errors (1 = as far from the target as zero features are) and the
/// strokes' edge measures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SizeScore {
    pub style: f32,
    /// At `JUDGE_CONTENT_LAYERS[0]` and `[1]`; 0 when the mesh has no texture.
    pub content: f32,
    pub content_shallow: f32,
    /// Mean luminance gradient on the object, in luminance per pixel ([`edge_measures`]).
    pub edges: f32,
    /// The transitions' slope over the luminance's spread: crispness with contrast divided out ([`edge_measures`]).
    pub sharpness: f32,
}

impl SizeScore {
    /// Column names' stems, in the order of [`SizeScore::values`].
    pub const NAMES: [&'static str; 5] = ["style", "content", "content_shallow", "edges", "sharpness"];

    pub fn values(&self) -> [f32; 5] {
        [self.style, self.content, self.content_shallow, self.edges, self.sharpness]
    }

    pub fn from_values([style, content, content_shallow, edges, sharpness]: [f32; 5]) -> SizeScore {
        SizeScore { style, content, content_shallow, edges, sharpness }
    }
}

/// How crisp the strokes of a rendered view are, over the object's pixels at
/// least [`EDGE_MARGIN`] px inside its silhouette (pixels of exactly the
/// `background` colour are background), from the luminance gradient `g`
/// (central differences, per pixel): `(edges, sharpness)`, `edges = E|g|`
/// (acutance: edge contrast per pixel) and `sharpness = (E[g²] / E|g|) /
/// σ(luminance)`, the slope of the transitions where there are any (each
/// pixel weighed by its own gradient) over the contrast. A blur lowers both;
/// a paler texture only `edges`. `(0, 0)` when no pixel qualifies or the
/// object is one flat colour.
pub fn edge_measures(img: &Image, background: [f32; 3]) -> (f32, f32) {
    let (w, h) = (img.width as usize, img.height as usize);
    let px = |i: usize| &img.data[3 * i..3 * i + 3];
    let luma: Vec<f32> = (0..w * h).map(|i| 0.299 * px(i)[0] + 0.587 * px(i)[1] + 0.114 * px(i)[2]).collect();
    let mut inside: Vec<bool> = (0..w * h).map(|i| px(i).iter().zip(background).any(|(a, b)| a != &b)).collect();
    for _ in 0..EDGE_MARGIN {
        let prev = inside.clone();
        for y in 0..h {
            for x in 0..w {
                let keep = x > 0 && y > 0 && x + 1 < w && y + 1 < h && prev[y * w + x - 1] && prev[y * w + x + 1] && prev[(y - 1) * w + x] && prev[(y + 1) * w + x];
                inside[y * w + x] &= keep;
            }
        }
    }
    // The margin keeps every counted pixel's four neighbours in the image.
    let (mut n, mut grad, mut grad_sq, mut sum, mut sq) = (0usize, 0f64, 0f64, 0f64, 0f64);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !inside[i] {
                continue;
            }
            let gx = (luma[i + 1] - luma[i - 1]) / 2.0;
            let gy = (luma[i + w] - luma[i - w]) / 2.0;
            let l = luma[i] as f64;
            let g2 = (gx * gx + gy * gy) as f64;
            (n, grad, grad_sq, sum, sq) = (n + 1, grad + g2.sqrt(), grad_sq + g2, sum + l, sq + l * l);
        }
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let n = n as f64;
    let (edges, sd) = (grad / n, (sq / n - (sum / n).powi(2)).max(0.0).sqrt());
    match edges > 1e-9 && sd > 1e-6 {
        true => (edges as f32, (grad_sq / grad / sd) as f32),
        false => (edges as f32, 0.0),
    }
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
            let mut sum = [0.0f32; 5];
            for (img, view) in rendered.iter().zip(views) {
                let mut s = view.score(vgg, &image_to_tensor(img)?.to_device(vgg.device())?)?;
                (s.edges, s.sharpness) = edge_measures(img, JUDGE_BACKGROUND);
                sum.iter_mut().zip(s.values()).for_each(|(a, v)| *a += v);
            }
            let n = views.len().max(1) as f32;
            scores.push(SizeScore::from_values(sum.map(|v| v / n)));
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
        Ok(SizeScore { style: parts.style, content: parts.content, content_shallow: shallow, ..SizeScore::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: [f32; 3] = [0.5, 0.5, 0.5];

    /// A 64² view: background, and inside a centred square vertical stripes of
    /// luminance `lo`/`hi`, 4 px wide, box-blurred horizontally over `blur` px each side.
    fn stripes(lo: f32, hi: f32, blur: usize) -> Image {
        let sharp = |x: usize| if x % 8 < 4 { lo } else { hi };
        let mut img = Image::filled(64, 64, BG);
        for y in 8..56 {
            for x in 8..56 {
                let v = (x - blur..=x + blur).map(sharp).sum::<f32>() / (2 * blur + 1) as f32;
                img.data[3 * (y * 64 + x)..][..3].fill(v);
            }
        }
        img
    }

    #[test]
    fn a_flat_object_has_no_edges_its_silhouette_does_not_count() {
        assert_eq!(edge_measures(&stripes(0.9, 0.9, 0), BG), (0.0, 0.0));
        assert_eq!(edge_measures(&Image::filled(16, 16, BG), BG), (0.0, 0.0));
    }

    #[test]
    fn blur_lowers_both_measures_and_a_paler_copy_only_the_edges() {
        let (e, s) = edge_measures(&stripes(0.1, 0.9, 0), BG);
        let (eb, sb) = edge_measures(&stripes(0.1, 0.9, 2), BG);
        let (ep, sp) = edge_measures(&stripes(0.3, 0.7, 0), BG);
        assert!(e > 0.0 && s > 0.0);
        assert!(eb < 0.8 * e && sb < 0.8 * s, "blurred {eb} {sb} vs {e} {s}");
        assert!((ep / e - 0.5).abs() < 1e-3, "paler: edges {ep} vs {e}");
        assert!((sp / s - 1.0).abs() < 1e-3, "paler: sharpness {sp} vs {s}");
    }
}
