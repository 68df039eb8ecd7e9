//! VGG16/19 perceptual network: features, Gram matrices, and the Gatys style + content loss with
//! its gradient with respect to the INPUT image (weights are constants; no kernel gradient is
//! ever computed).
//!
//! Public input: an RGB image `[batch, 3, height, width]` f32 in [0, 1]. The preprocessing the
//! weights expect (Caffe BGR 0–255 minus mean, or torchvision normalization) is part of the model
//! and applied inside.
//!
//! Two backends compute the same thing:
//! - [`Backend::Fast`] (CPU only): hand-written forward/backward on channels-last buffers,
//!   Winograd convs with fused bias/ReLU, no autograd ([`net`]).
//! - [`Backend::Generic`]: candle ops + autograd, any device ([`generic`]).
//!
//! Loss (per image of the batch, summed over the batch):
//! `L = Σ_style w_s · Σ (G_used − T_s)² + w_c · Σ (F_c − T_c)²`, `G = F Fᵀ / (C·H·W)`.
//! The gradient flows as if `G_used` were the current Gram `G_now`: the caller may substitute
//! `G_used = G_now + stopgrad(EMA(G) − G_now)` through the hook of [`Vgg::style_content_grad_with`].

pub mod cli;
pub mod generic;
pub mod net;
pub mod onnx;
pub mod ops;
pub mod weights;

use std::path::Path;
use std::str::FromStr;

use candle_core::{Device, Tensor};

use ops::Act;
use weights::{LayerKeys, VggWeights, WeightsError};

/// Style layers of Gatys et al.
pub const STYLE_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
/// Content layer.
pub const CONTENT_LAYER: &str = "relu4_2";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VggError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("vgg: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("vgg: unknown layer {0:?} (expected reluB_I or convB_I, e.g. relu4_2, present in this VGG)")]
    UnknownLayer(String),
    #[error("vgg: {what} has shape {got:?}, expected {expected}")]
    Shape { what: String, expected: String, got: Vec<usize> },
    #[error("vgg: the fast backend runs on the CPU only; use Backend::Generic on {0:?}")]
    FastNeedsCpu(String),
}

pub type Result<T> = std::result::Result<T, VggError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Output of the conv, before ReLU.
    Conv,
    /// After ReLU.
    Relu,
}

/// A feature layer, named like `relu4_2` (block 4, second conv, after ReLU) or `conv4_2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layer {
    pub block: usize,
    pub index: usize,
    pub kind: LayerKind,
}

impl FromStr for Layer {
    type Err = VggError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || VggError::UnknownLayer(s.to_string());
        let (kind, rest) = if let Some(r) = s.strip_prefix("relu") {
            (LayerKind::Relu, r)
        } else if let Some(r) = s.strip_prefix("conv") {
            (LayerKind::Conv, r)
        } else {
            return Err(bad());
        };
        let (b, i) = rest.split_once('_').ok_or_else(bad)?;
        let (block, index) = (b.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?);
        Ok(Layer { block, index, kind })
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = if self.kind == LayerKind::Relu { "relu" } else { "conv" };
        write!(f, "{k}{}_{}", self.block, self.index)
    }
}

/// Parses a list of layer names.
pub fn layers(names: &[&str]) -> Result<Vec<Layer>> {
    names.iter().map(|n| n.parse()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Hand-written CPU path (CPU device only).
    Fast,
    /// candle ops + autograd (any device).
    Generic,
}

/// One style term: `weight · Σ (G_used − target)²` at `layer`; `target` is `[c, c]`.
#[derive(Debug, Clone)]
pub struct StyleTerm {
    pub layer: Layer,
    pub target: Tensor,
    pub weight: f32,
}

/// The content term: `weight · Σ (F − target)²` at `layer`; `target` is `[1 or batch, c, h, w]`.
#[derive(Debug, Clone)]
pub struct ContentTerm {
    pub layer: Layer,
    pub target: Tensor,
    pub weight: f32,
}

#[derive(Debug, Clone, Default)]
pub struct Objective {
    pub style: Vec<StyleTerm>,
    pub content: Option<ContentTerm>,
}

/// Loss values of one call. `grams[i]` is the current Gram `G_now` of style term `i`,
/// `[batch, c, c]` (e.g. to update a moving average).
#[derive(Debug, Clone)]
pub struct LossParts {
    pub total: f32,
    pub style: f32,
    pub content: f32,
    pub style_per_term: Vec<f32>,
    pub grams: Vec<Tensor>,
}

/// The perceptual network, its weights and preprocessing.
pub struct Vgg {
    table: Vec<LayerKeys>,
    device: Device,
    backend: Backend,
    fast: Option<net::FastNet>,
    generic: Option<generic::GenericNet>,
}

impl Vgg {
    /// Loads weights from `path`, or from the cache ([`weights::default_weights_path`]) when `None`,
    /// choosing the fast backend on the CPU and the generic one elsewhere. Missing weights give
    /// [`WeightsError::Missing`], whose message says how to fetch them.
    pub fn load(path: Option<&Path>, device: &Device) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => weights::default_weights_path()?,
        };
        let w = VggWeights::load(&path)?;
        let backend = if device.is_cpu() { Backend::Fast } else { Backend::Generic };
        Self::from_weights(&w, device, backend)
    }

    pub fn from_weights(w: &VggWeights, device: &Device, backend: Backend) -> Result<Self> {
        let table = w.convs.iter().map(|c| c.keys.clone()).collect();
        let (fast, generic) = match backend {
            Backend::Fast => {
                if !device.is_cpu() {
                    return Err(VggError::FastNeedsCpu(format!("{device:?}")));
                }
                (Some(net::FastNet::new(w)), None)
            }
            Backend::Generic => (None, Some(generic::GenericNet::new(w, device)?)),
        };
        Ok(Vgg { table, device: device.clone(), backend, fast, generic })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Index of a layer's conv in the network; errors for a layer this VGG does not have.
    fn conv_index(&self, l: &Layer) -> Result<usize> {
        self.table
            .iter()
            .position(|k| k.block == l.block && k.index_in_block == l.index)
            .ok_or_else(|| VggError::UnknownLayer(l.to_string()))
    }

    fn check_image(&self, image: &Tensor) -> Result<(usize, usize, usize)> {
        let dims = image.dims().to_vec();
        match image.dims4() {
            Ok((b, 3, h, w)) if h >= 1 && w >= 1 => Ok((b, h, w)),
            _ => Err(VggError::Shape { what: "image".into(), expected: "[batch, 3, height, width]".into(), got: dims }),
        }
    }

    /// Each pool halves the image: the deepest layer's block needs at least 2^(block-1) pixels.
    fn check_depth(&self, last: usize, h: usize, w: usize) -> Result<()> {
        let need = 1usize << (self.table[last].block - 1);
        if h < need || w < need {
            return Err(VggError::Shape {
                what: format!("image for layer {} (block {})", self.table[last].name, self.table[last].block),
                expected: format!("height and width >= {need}"),
                got: vec![h, w],
            });
        }
        Ok(())
    }

    /// Features at `layers`, each `[batch, c, h, w]`, for an RGB `image` `[batch, 3, height, width]` in [0, 1].
    pub fn features(&self, image: &Tensor, layers: &[Layer]) -> Result<Vec<Tensor>> {
        let (b, h, w) = self.check_image(image)?;
        let idx: Vec<usize> = layers.iter().map(|l| self.conv_index(l)).collect::<Result<_>>()?;
        let Some(&last) = idx.iter().max() else { return Ok(Vec::new()) };
        self.check_depth(last, h, w)?;
        if let Some(g) = &self.generic {
            let t = g.forward(image, last)?;
            return Ok(layers
                .iter()
                .zip(&idx)
                .map(|(l, &k)| if l.kind == LayerKind::Relu { t.a[k].clone() } else { t.z[k].clone() })
                .collect());
        }
        let fast = self.fast.as_ref().expect("fast or generic");
        let rgb = image.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let keep_z: Vec<usize> = layers.iter().zip(&idx).filter(|(l, _)| l.kind == LayerKind::Conv).map(|(_, &k)| k).collect();
        let mut per_layer: Vec<Vec<f32>> = vec![Vec::new(); layers.len()];
        let mut shapes = vec![(0, 0, 0); layers.len()];
        for i in 0..b {
            let x = fast.input(&rgb[i * 3 * h * w..][..3 * h * w], h, w);
            let t = fast.forward(x, last, &keep_z);
            for (j, (l, &k)) in layers.iter().zip(&idx).enumerate() {
                let a = if l.kind == LayerKind::Relu { &t.a[k] } else { &t.z[&k] };
                per_layer[j].extend(a.to_chw());
                shapes[j] = (a.c, a.h, a.w);
            }
            fast.recycle(t);
        }
        per_layer
            .into_iter()
            .zip(shapes)
            .map(|(v, (c, hh, ww))| Ok(Tensor::from_vec(v, (b, c, hh, ww), &self.device)?))
            .collect()
    }

    /// Gram matrices `[batch, c, c]` at `layers` (`G = F Fᵀ / (C·H·W)`).
    pub fn grams(&self, image: &Tensor, layers: &[Layer]) -> Result<Vec<Tensor>> {
        self.features(image, layers)?.iter().map(|f| Ok(generic::gram(f)?)).collect()
    }

    /// Loss and `dL/dimage` (`[batch, 3, h, w]`), with `G_used = G_now`.
    pub fn style_content_grad(&self, image: &Tensor, obj: &Objective) -> Result<(LossParts, Tensor)> {
        self.style_content_grad_with(image, obj, &mut |_, _, g| Ok(g.clone()))
    }

    /// Like [`Vgg::style_content_grad`], but the style residual uses
    /// `G_used = gram_used(term index, batch item, G_now [c, c])`, while the gradient is taken as
    /// if through `G_now`: `dL/dG_now = 2 w (G_used − T)`. For the moving-average memory, return
    /// the updated EMA of the Gram from the hook.
    pub fn style_content_grad_with(
        &self,
        image: &Tensor,
        obj: &Objective,
        gram_used: &mut dyn FnMut(usize, usize, &Tensor) -> Result<Tensor>,
    ) -> Result<(LossParts, Tensor)> {
        let (parts, g) = self.run_objective(image, obj, gram_used, true)?;
        Ok((parts, g.expect("gradient requested")))
    }

    /// The loss alone (forward only, `G_used = G_now`).
    pub fn style_content_loss(&self, image: &Tensor, obj: &Objective) -> Result<LossParts> {
        Ok(self.run_objective(image, obj, &mut |_, _, g| Ok(g.clone()), false)?.0)
    }

    fn run_objective(
        &self,
        image: &Tensor,
        obj: &Objective,
        gram_used: &mut dyn FnMut(usize, usize, &Tensor) -> Result<Tensor>,
        want_grad: bool,
    ) -> Result<(LossParts, Option<Tensor>)> {
        let (b, h, w) = self.check_image(image)?;
        let style_idx: Vec<usize> = obj.style.iter().map(|s| self.conv_index(&s.layer)).collect::<Result<_>>()?;
        let content_idx = obj.content.as_ref().map(|c| self.conv_index(&c.layer)).transpose()?;
        let Some(last) = style_idx.iter().copied().chain(content_idx).max() else {
            let parts = LossParts { total: 0.0, style: 0.0, content: 0.0, style_per_term: vec![], grams: vec![] };
            return Ok((parts, Some(image.zeros_like()?)));
        };
        self.check_depth(last, h, w)?;
        let mut style_per_term = vec![0.0f32; obj.style.len()];
        let mut grams: Vec<Vec<Tensor>> = vec![Vec::new(); obj.style.len()];
        let mut content = 0.0f32;
        let mut grads = Vec::with_capacity(b);

        if let Some(g) = &self.generic {
            let x = candle_core::Var::from_tensor(image)?;
            let t = g.forward(x.as_tensor(), last)?;
            let feat = |l: &Layer, k: usize| if l.kind == LayerKind::Relu { &t.a[k] } else { &t.z[k] };
            // Surrogate whose gradient is the loss gradient: Σ G ⊙ stopgrad(dL/dG) + Σ F ⊙ stopgrad(dL/dF).
            let mut surrogate = Tensor::zeros((), candle_core::DType::F32, &self.device)?;
            for (i, (s, &k)) in obj.style.iter().zip(&style_idx).enumerate() {
                let g_now = generic::gram(feat(&s.layer, k))?;
                let mut dgs = Vec::new();
                for bi in 0..b {
                    let gn = g_now.get(bi)?.detach();
                    let r = gram_used(i, bi, &gn)?.broadcast_sub(&s.target)?;
                    style_per_term[i] += s.weight * generic::sum_all(&r.sqr()?)?;
                    dgs.push((r * (2.0 * s.weight as f64))?);
                    grams[i].push(gn);
                }
                surrogate = (surrogate + generic::sum_all_t(&(g_now * Tensor::stack(&dgs, 0)?)?)?)?;
            }
            if let (Some(c), Some(k)) = (&obj.content, content_idx) {
                let f = feat(&c.layer, k);
                let r = f.broadcast_sub(&c.target)?.detach();
                content = c.weight * generic::sum_all(&r.sqr()?)?;
                surrogate = (surrogate + generic::sum_all_t(&(f * (r * (2.0 * c.weight as f64))?)?)?)?;
            }
            let gx = if want_grad {
                let store = surrogate.backward()?;
                Some(store.get(x.as_tensor()).cloned().unwrap_or(image.zeros_like()?))
            } else {
                None
            };
            return Ok((self.parts(style_per_term, content, grams)?, gx));
        }

        let fast = self.fast.as_ref().expect("fast or generic");
        let rgb = image.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let content_target = match &obj.content {
            Some(c) => Some(c.target.to_dtype(candle_core::DType::F32)?),
            None => None,
        };
        let keep_z: Vec<usize> = obj
            .style
            .iter()
            .map(|s| s.layer)
            .chain(obj.content.as_ref().map(|c| c.layer))
            .filter(|l| l.kind == LayerKind::Conv)
            .map(|l| self.conv_index(&l))
            .collect::<Result<_>>()?;
        for bi in 0..b {
            let x = fast.input(&rgb[bi * 3 * h * w..][..3 * h * w], h, w);
            let t = fast.forward(x, last, &keep_z);
            let feat = |l: &Layer, k: usize| if l.kind == LayerKind::Relu { &t.a[k] } else { &t.z[&k] };
            let mut seeds = Vec::new();
            for (i, (s, &k)) in obj.style.iter().zip(&style_idx).enumerate() {
                let f = feat(&s.layer, k);
                let g_now = Tensor::from_vec(ops::gram::gram(f), (f.c, f.c), &self.device)?;
                let r = gram_used(i, bi, &g_now)?.broadcast_sub(&s.target)?;
                let r = r.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                if r.len() != f.c * f.c {
                    return Err(VggError::Shape {
                        what: format!("style target at {}", s.layer),
                        expected: format!("[{}, {}]", f.c, f.c),
                        got: s.target.dims().to_vec(),
                    });
                }
                style_per_term[i] += s.weight * r.iter().map(|v| v * v).sum::<f32>();
                seeds.push((k, s.layer.kind, net::Seed::Gram(r.iter().map(|v| 2.0 * s.weight * v).collect())));
                grams[i].push(g_now);
            }
            if let (Some(c), Some(k), Some(tgt)) = (&obj.content, content_idx, &content_target) {
                let f = feat(&c.layer, k);
                let (tb, tc, th, tw) = tgt.dims4()?;
                if tc != f.c || th != f.h || tw != f.w || (tb != 1 && tb != b) {
                    return Err(VggError::Shape {
                        what: format!("content target at {}", c.layer),
                        expected: format!("[1 or {b}, {}, {}, {}]", f.c, f.h, f.w),
                        got: tgt.dims().to_vec(),
                    });
                }
                let tv = tgt.get(if tb == 1 { 0 } else { bi })?.flatten_all()?.to_vec1::<f32>()?;
                let mut d = Act::from_chw(f.c, f.h, f.w, &tv);
                for y in 0..f.h {
                    for xx in 0..f.w {
                        let o = f.at(y, xx);
                        for ch in 0..f.c {
                            let r = f.data[o + ch] - d.data[o + ch];
                            content += c.weight * r * r;
                            d.data[o + ch] = 2.0 * c.weight * r;
                        }
                    }
                }
                seeds.push((k, c.layer.kind, net::Seed::Feature(d)));
            }
            if want_grad {
                let dx = fast.backward(&t, seeds);
                grads.push(Tensor::from_vec(fast.input_grad_to_rgb(&dx), (3, h, w), &self.device)?);
                fast.recycle_act(dx);
            }
            fast.recycle(t);
        }
        let gx = if want_grad { Some(Tensor::stack(&grads, 0)?) } else { None };
        Ok((self.parts(style_per_term, content, grams)?, gx))
    }

    fn parts(&self, style_per_term: Vec<f32>, content: f32, grams: Vec<Vec<Tensor>>) -> Result<LossParts> {
        let style: f32 = style_per_term.iter().sum();
        let grams = grams.iter().map(|g| Tensor::stack(g, 0)).collect::<candle_core::Result<_>>()?;
        Ok(LossParts { total: style + content, style, content, style_per_term, grams })
    }
}
