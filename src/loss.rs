//! Every loss formula: Gatys' style loss against the painting's Gram
//! matrices, with a moving average of Gram matrices across views, plus a
//! content loss, and their gradients with respect to the features. The
//! network ([`crate::vgg`]) only gives features at layers and pulls
//! gradients seeded there back to the image; this module decides WHAT is
//! compared and HOW (change the distance in `distance`, nowhere else).
//!
//! - Gram: `G = F Fᵀ / (C·H·W)` of the `[C, H·W]` feature matrix.
//! - Style: per layer `l` of [`STYLE_LAYERS`],
//!   `style_weight · w_l / (L · ‖T_l‖²) · ‖G_used,l − T_l‖²`, with `T_l` the
//!   painting's Gram and `G = F Fᵀ / (C·H·W)`. Dividing by `‖T_l‖²` makes
//!   every layer a relative error of about the same size, so no layer's
//!   activation scale drowns the others; `w_l` (`--style-layer-weights`, mean 1)
//!   then leans on some: the first layers for crisp, fine strokes.
//! - Memory across views: `G_used = G_now + stopgrad(Ĝ − G_now)`, `Ĝ` the
//!   bias-corrected exponential moving average of `G_now` (decay 0.95 by
//!   default): `Ĝ_t = EMA_t / (1 − decay^t)`. The reference started its EMA
//!   at zero without the correction, so its first ~45 steps compared a Gram
//!   that was too small.
//! - Content: per content layer `c` (`--content-layers`; by default relu1_2, relu2_2, relu4_2),
//!   `content_weight / (L_c · ‖T_c‖²) · ‖F_c(learned) − T_c‖²`, `T_c = F_c(content image)`:
//!   like the style, a relative error per layer, averaged over the `L_c` layers.
//! - NNFM (`nnfm.rs`, optional): each view feature pulled to its nearest painting feature by
//!   cosine distance, at [`NNFM_LAYERS`], beside the Gram loss.
//! - Per image of a batch, summed over the batch. The gradient flows as if
//!   `G_used` were `G_now`: `dL/dG_now = w · d distance(G_used − T)`, pulled
//!   back to the features here and to the image by the network.

use candle_core::{DType, Tensor};

use crate::vgg::{self, Layer, Vgg, VggError};

mod nnfm;
pub use nnfm::{nnfm, NnfmTargets, NnfmTerm, MAX_PAINTING_POSITIONS, NNFM_LAYERS};

/// Which losses a run minimizes (`--loss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LossKind {
    /// Gram matrices (with their moving average across views) and the content term.
    Gram,
    /// The same, plus nearest-neighbour feature matching at relu3_1–relu3_3.
    #[value(name = "gram+nnfm")]
    GramNnfm,
}

/// Style layers of Gatys et al.
pub const STYLE_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
/// Content layer of Gatys et al. (`--content-layers` of `--preset fast`; the library's test configs).
pub const CONTENT_LAYER: &str = "relu4_2";

/// The distance between a value and its target, as a function of the residual `r`:
/// `(Σ ‖r‖², d/dr = 2 r)`, squared L2. The only place the distance is written (but for its
/// one-pass CPU form for content features, [`content_cpu`]).
fn distance(r: &Tensor) -> candle_core::Result<(f32, Tensor)> {
    Ok((sum(&r.sqr()?)?, (r * 2.0)?))
}

/// `‖t‖²` of features, read as the contiguous matrix they are when channels-last.
fn squared_norm(t: &Tensor) -> candle_core::Result<f32> {
    match channels_last(t)? {
        Some(x) => sum(&x.sqr()?),
        None => sum(&t.sqr()?),
    }
}

fn sum(t: &Tensor) -> candle_core::Result<f32> {
    t.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()
}

/// Features as a `[batch, h·w, c]` matrix when they are stored channels-last (the fast CPU
/// network's layout), so that neither the Gram nor its backward copies them.
fn channels_last(f: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let (b, c, h, w) = f.dims4()?;
    let x = f.permute((0, 2, 3, 1))?;
    Ok(if x.is_contiguous() { Some(x.reshape((b, h * w, c))?) } else { None })
}

/// `XᵀX` per batch item of channels-last CPU f32 features `x` (`[batch, h·w, c]`), by the
/// fast path's symmetric kernel (half the multiply-adds of a general product); `None` where
/// that does not apply (other device or dtype, no kernel for this CPU or channel count).
fn gram_cpu(x: &Tensor) -> candle_core::Result<Option<Tensor>> {
    use candle_core::{CpuStorage, Storage};
    let (b, k, n) = x.dims3()?;
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        return Ok(None);
    }
    let (storage, layout) = x.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(None);
    };
    let v = &v[start..end];
    let mut out = Vec::with_capacity(b * n * n);
    for bi in 0..b {
        match crate::simd::gram_xtx(&v[bi * k * n..][..k * n], k, n) {
            Some(g) => out.extend(g),
            None => return Ok(None),
        }
    }
    Ok(Some(Tensor::from_vec(out, (b, n, n), x.device())?))
}

/// The content term `w·‖F − T‖²` and its seed `2w·(F − T)` in one pass over channels-last
/// CPU f32 features and target of one shape, the seed in the features' layout; `None` where
/// that does not apply. (candle's element-wise ops, a pass each on one thread, plus the copy
/// back from NCHW, took ~0.4 s a step for relu1_2 and relu2_2 at 384² views.) The chunk sums
/// are added in order, so the value is the same on every run.
fn content_cpu(f: &Tensor, target: &Tensor, weight: f32) -> candle_core::Result<Option<(f32, Tensor)>> {
    use candle_core::{CpuStorage, Storage};
    use rayon::prelude::*;
    if f.dims() != target.dims() || f.dtype() != DType::F32 || target.dtype() != DType::F32 || !f.device().is_cpu() {
        return Ok(None);
    }
    let (Some(x), Some(t)) = (channels_last(f)?, channels_last(target)?) else {
        return Ok(None);
    };
    let ((xs, xl), (ts, tl)) = (x.storage_and_layout(), t.storage_and_layout());
    let (Storage::Cpu(CpuStorage::F32(xv)), Some((x0, x1)), Storage::Cpu(CpuStorage::F32(tv)), Some((t0, t1))) = (&*xs, xl.contiguous_offsets(), &*ts, tl.contiguous_offsets()) else {
        return Ok(None);
    };
    let (xv, tv) = (&xv[x0..x1], &tv[t0..t1]);
    const CHUNK: usize = 1 << 16;
    let mut seed = vec![0f32; xv.len()];
    let sums: Vec<f64> = seed
        .par_chunks_mut(CHUNK)
        .zip(xv.par_chunks(CHUNK).zip(tv.par_chunks(CHUNK)))
        .map(|(s, (a, b))| {
            let mut acc = 0f32;
            for ((s, a), b) in s.iter_mut().zip(a).zip(b) {
                let r = a - b;
                acc += r * r;
                *s = 2.0 * weight * r;
            }
            acc as f64
        })
        .collect();
    let (b, c, h, w) = f.dims4()?;
    let seed = Tensor::from_vec(seed, (b, h, w, c), f.device())?.permute((0, 3, 1, 2))?;
    Ok(Some((weight * sums.iter().sum::<f64>() as f32, seed)))
}

/// Gram matrices `[batch, c, c]` of features `[batch, c, h, w]`: `F Fᵀ / (C·H·W)`.
pub fn gram(f: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = f.dims4()?;
    let g = match channels_last(f)? {
        Some(x) => match gram_cpu(&x)? {
            Some(g) => g,
            None => x.t()?.matmul(&x)?,
        },
        None => {
            let m = f.reshape((b, c, h * w))?;
            m.matmul(&m.t()?)?
        }
    };
    g / (c * h * w) as f64
}

/// `dL/dF = (dG + dGᵀ) F / (C·H·W)` for `dg = dL/dG` `[batch, c, c]` of the Gram of `f`; in
/// `f`'s layout.
pub fn gram_backward(f: &Tensor, dg: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = f.dims4()?;
    let sym = ((dg + dg.t()?)? / (c * h * w) as f64)?;
    match channels_last(f)? {
        Some(x) => x.matmul(&sym.t()?)?.reshape((b, h, w, c))?.permute((0, 3, 1, 2)),
        None => sym.matmul(&f.reshape((b, c, h * w))?)?.reshape((b, c, h, w)),
    }
}

/// One style term: `weight · distance(G_used − target)` at `layer`; `target` is `[c, c]`.
#[derive(Debug, Clone)]
pub struct StyleTerm {
    pub layer: Layer,
    pub target: Tensor,
    pub weight: f32,
}

/// The content term: `weight · distance(F − target)` at `layer`; `target` is `[1 or batch, c, h, w]`.
#[derive(Debug, Clone)]
pub struct ContentTerm {
    pub layer: Layer,
    pub target: Tensor,
    pub weight: f32,
}

/// What one view is compared with.
#[derive(Debug, Clone, Default)]
pub struct Objective {
    pub style: Vec<StyleTerm>,
    pub content: Vec<ContentTerm>,
    pub nnfm: Vec<NnfmTerm>,
}

/// Loss values of one call. `grams[i]` is the current Gram `G_now` of style term `i`,
/// `[batch, c, c]` (e.g. to update a moving average).
#[derive(Debug, Clone)]
pub struct LossParts {
    pub total: f32,
    pub style: f32,
    pub content: f32,
    pub nnfm: f32,
    pub style_per_term: Vec<f32>,
    pub grams: Vec<Tensor>,
}

/// `G_used` for style term `i` given this image's `G_now` (`[c, c]`).
pub type GramUsed<'a> = dyn FnMut(usize, &Tensor) -> vgg::Result<Tensor> + 'a;

impl Objective {
    /// The layers the objective reads: the style terms' in order, then the content term's, then NNFM's.
    pub fn layers(&self) -> Vec<Layer> {
        let style = self.style.iter().map(|s| s.layer);
        style.chain(self.content.iter().map(|c| c.layer)).chain(self.nnfm.iter().map(|n| n.layer)).collect()
    }

    /// The loss of `image` (`[batch, 3, h, w]` RGB in [0, 1]), forward only, `G_used = G_now`.
    pub fn loss(&self, vgg: &Vgg, image: &Tensor) -> vgg::Result<LossParts> {
        self.loss_of_features(&vgg.features(image, &self.layers())?)
    }

    /// [`Objective::loss`] of features already taken at [`Objective::layers`] (in that order;
    /// any after them are ignored), so one forward can serve several objectives.
    pub fn loss_of_features(&self, features: &[Tensor]) -> vgg::Result<LossParts> {
        Ok(self.evaluate(features, &mut |_, g| Ok(g.clone()))?.0)
    }

    /// The loss and `dL/dimage` (`[batch, 3, h, w]`), `G_used = G_now`.
    pub fn loss_and_grad(&self, vgg: &Vgg, image: &Tensor) -> vgg::Result<(LossParts, Tensor)> {
        self.loss_and_grad_with(vgg, image, &mut |_, g| Ok(g.clone()))
    }

    /// Like [`Objective::loss_and_grad`], with `G_used = gram_used(term, G_now)` per image (e.g.
    /// [`GramMemory::update`]), the gradient taken as if through `G_now`.
    pub fn loss_and_grad_with(&self, vgg: &Vgg, image: &Tensor, gram_used: &mut GramUsed<'_>) -> vgg::Result<(LossParts, Tensor)> {
        let fwd = vgg.forward(image, &self.layers())?;
        let (parts, seeds) = self.evaluate(fwd.features(), gram_used)?;
        Ok((parts, fwd.backward(&seeds)?))
    }

    /// Loss parts and `dL/dF` per feature (style terms in order, then content, then NNFM), from
    /// the features at [`Objective::layers`].
    fn evaluate(&self, features: &[Tensor], gram_used: &mut GramUsed<'_>) -> vgg::Result<(LossParts, Vec<Option<Tensor>>)> {
        let mut seeds = Vec::with_capacity(features.len());
        let (mut style_per_term, mut grams) = (Vec::new(), Vec::new());
        for (i, (s, f)) in self.style.iter().zip(features).enumerate() {
            let g_now = gram(f)?;
            let c = g_now.dim(1)?;
            if s.target.dims() != [c, c] {
                return Err(VggError::Shape {
                    what: format!("style target at {}", s.layer),
                    expected: format!("[{c}, {c}]"),
                    got: s.target.dims().to_vec(),
                });
            }
            let used = (0..g_now.dim(0)?).map(|bi| gram_used(i, &g_now.get(bi)?)).collect::<vgg::Result<Vec<_>>>()?;
            let (value, d) = distance(&Tensor::stack(&used, 0)?.broadcast_sub(&s.target)?)?;
            style_per_term.push(s.weight * value);
            seeds.push(Some(gram_backward(f, &(d * s.weight as f64)?)?));
            grams.push(g_now);
        }
        let mut content = 0.0;
        for (c, f) in self.content.iter().zip(&features[self.style.len()..]) {
            let (b, ch, h, w) = f.dims4()?;
            match c.target.dims4() {
                Ok((tb, tc, th, tw)) if (tc, th, tw) == (ch, h, w) && (tb == 1 || tb == b) => {}
                _ => {
                    return Err(VggError::Shape {
                        what: format!("content target at {}", c.layer),
                        expected: format!("[1 or {b}, {ch}, {h}, {w}]"),
                        got: c.target.dims().to_vec(),
                    })
                }
            }
            let (value, seed) = match content_cpu(f, &c.target, c.weight)? {
                Some(vs) => vs,
                None => {
                    let (value, d) = distance(&f.broadcast_sub(&c.target)?)?;
                    (c.weight * value, (d * c.weight as f64)?)
                }
            };
            content += value;
            seeds.push(Some(seed));
        }
        let mut matched = 0.0;
        for (term, f) in self.nnfm.iter().zip(&features[seeds.len()..]) {
            let (value, d) = nnfm(f, term)?;
            matched += value;
            seeds.push(Some(d));
        }
        let style: f32 = style_per_term.iter().sum();
        Ok((LossParts { total: style + content + matched, style, content, nnfm: matched, style_per_term, grams }, seeds))
    }
}

/// The bias-corrected moving average of each style layer's Gram matrix.
#[derive(Debug)]
pub struct GramMemory {
    pub decay: f32,
    /// Uncorrected averages, one per style layer (None before the first view).
    ema: Vec<Option<Tensor>>,
    /// Views folded in so far, per layer.
    count: Vec<i32>,
}

impl GramMemory {
    pub fn new(layers: usize, decay: f32) -> GramMemory {
        GramMemory { decay, ema: vec![None; layers], count: vec![0; layers] }
    }

    /// Per layer: views folded in, and the uncorrected average as `[c, c]`
    /// values (empty before the first view). For checkpoints.
    pub fn state(&self) -> candle_core::Result<Vec<(i32, Vec<usize>, Vec<f32>)>> {
        self.ema
            .iter()
            .zip(&self.count)
            .map(|(e, &n)| match e {
                Some(t) => Ok((n, t.dims().to_vec(), t.flatten_all()?.to_vec1::<f32>()?)),
                None => Ok((n, vec![], vec![])),
            })
            .collect()
    }

    /// Returns to a [`GramMemory::state`].
    pub fn set_state(&mut self, state: Vec<(i32, Vec<usize>, Vec<f32>)>, device: &candle_core::Device) -> candle_core::Result<()> {
        if state.len() != self.ema.len() {
            candle_core::bail!("gram memory: {} layers saved, {} expected", state.len(), self.ema.len());
        }
        for (l, (n, shape, values)) in state.into_iter().enumerate() {
            self.count[l] = n;
            self.ema[l] = if values.is_empty() { None } else { Some(Tensor::from_vec(values, shape, device)?) };
        }
        Ok(())
    }

    /// Folds in this view's Gram of layer `l` and returns the Gram to use:
    /// the bias-corrected average (with decay 0, just `g_now`).
    pub fn update(&mut self, l: usize, g_now: &Tensor) -> candle_core::Result<Tensor> {
        let d = self.decay as f64;
        let next = match &self.ema[l] {
            Some(e) => ((e * d)? + (g_now * (1.0 - d))?)?,
            None => (g_now * (1.0 - d))?,
        };
        self.count[l] += 1;
        let corrected = (&next / (1.0 - d.powi(self.count[l])))?;
        self.ema[l] = Some(next);
        Ok(corrected)
    }
}

/// Style targets: the painting's Gram matrices and their normalized weights.
#[derive(Debug, Clone)]
pub struct StyleTargets {
    pub terms: Vec<StyleTerm>,
}

impl StyleTargets {
    /// Grams of `painting` (`[1, 3, H, W]` RGB in [0, 1]) at the style layers.
    pub fn new(vgg: &Vgg, painting: &Tensor, style_weight: f32) -> vgg::Result<StyleTargets> {
        let layers = vgg::layers(&STYLE_LAYERS)?;
        let grams = vgg.features(painting, &layers)?.iter().map(gram).collect::<candle_core::Result<Vec<_>>>()?;
        let n = layers.len() as f32;
        let terms = layers
            .into_iter()
            .zip(grams)
            .map(|(layer, g)| {
                let target = g.get(0)?;
                let norm = target.sqr()?.sum_all()?.to_scalar::<f32>()?.max(1e-12);
                Ok(StyleTerm { layer, target, weight: style_weight / (n * norm) })
            })
            .collect::<vgg::Result<Vec<_>>>()?;
        Ok(StyleTargets { terms })
    }

    /// The same targets with layer `l`'s weight times `factors[l]` (`--style-layer-weights`).
    pub fn with_layer_weights(mut self, factors: &[f32]) -> StyleTargets {
        for (t, f) in self.terms.iter_mut().zip(factors) {
            t.weight *= f;
        }
        self
    }
}

/// The objective for one view: the style targets, and a content term per layer of
/// `content_layers` when a content image (`[1, 3, H, W]`) exists.
pub fn objective(vgg: &Vgg, style: &StyleTargets, content: Option<&Tensor>, content_weight: f32, content_layers: &[Layer]) -> vgg::Result<Objective> {
    let content = match content {
        Some(img) if content_weight > 0.0 && !content_layers.is_empty() => {
            let targets = vgg.features(img, content_layers)?;
            let n = content_layers.len() as f32;
            content_layers
                .iter()
                .zip(targets)
                .map(|(&layer, target)| {
                    let norm = squared_norm(&target)?.max(1e-12);
                    Ok(ContentTerm { layer, target, weight: content_weight / (n * norm) })
                })
                .collect::<vgg::Result<Vec<_>>>()?
        }
        _ => Vec::new(),
    };
    Ok(Objective { style: style.terms.clone(), content, nnfm: Vec::new() })
}

/// The content term of `img` (`[1, 3, H, W]`) at `layer`: its features as the
/// target, the weight divided by their squared norm (a relative error).
pub fn content_term(vgg: &Vgg, img: &Tensor, layer: Layer, weight: f32) -> vgg::Result<ContentTerm> {
    let target = vgg.features(img, &[layer])?.remove(0);
    let norm = squared_norm(&target)?.max(1e-12);
    Ok(ContentTerm { layer, target, weight: weight / norm })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bias_corrected_average_is_exact_from_the_first_view() {
        let mut m = GramMemory::new(1, 0.95);
        let g = Tensor::new(&[[2.0f32, 1.0], [1.0, 3.0]], &Device::Cpu).unwrap();
        // A constant Gram averages to itself at every step (no warm-up bias).
        for _ in 0..5 {
            let used = m.update(0, &g).unwrap();
            let diff = (used - &g).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "{diff}");
        }
        // Then it follows a change gradually: one new view moves it by 1 − 0.95 of the
        // way, renormalized by (1 − 0.95⁶).
        let used = m.update(0, &(&g * 2.0).unwrap()).unwrap();
        let w_new = 0.05 / (1.0 - 0.95f32.powi(6));
        let expect = 2.0 * (1.0 - w_new) + 4.0 * w_new;
        let got = used.get(0).unwrap().get(0).unwrap().to_scalar::<f32>().unwrap();
        assert!((got - expect).abs() < 1e-4, "{got} vs {expect}");
    }

    #[test]
    fn layer_weights_scale_each_style_term() {
        let t = Tensor::new(&[[1.0f32]], &Device::Cpu).unwrap();
        let terms = STYLE_LAYERS.iter().map(|l| StyleTerm { layer: l.parse().unwrap(), target: t.clone(), weight: 0.5 }).collect();
        let w = StyleTargets { terms }.with_layer_weights(&[2.0, 0.0, 1.0, 1.0, 1.0]);
        assert_eq!(w.terms.iter().map(|t| t.weight).collect::<Vec<_>>(), [1.0, 0.0, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn zero_decay_is_the_current_view() {
        let mut m = GramMemory::new(2, 0.0);
        let g = Tensor::new(&[[1.0f32]], &Device::Cpu).unwrap();
        m.update(1, &g).unwrap();
        let h = Tensor::new(&[[5.0f32]], &Device::Cpu).unwrap();
        assert_eq!(m.update(1, &h).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), [5.0]);
    }
}
