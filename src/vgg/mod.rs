//! VGG16/19 perceptual network, the network only: features at requested layers, and the
//! gradient to the INPUT image from gradients seeded at those layers (weights are constants; no
//! kernel gradient is ever computed). What is compared, and how, is [`crate::loss`].
//!
//! Public input: an RGB image `[batch, 3, height, width]` f32 in [0, 1]. The preprocessing the
//! weights expect (Caffe BGR 0–255 minus mean, or torchvision normalization) is part of the model
//! and applied inside.
//!
//! Two backends compute the same thing behind [`Vgg::forward`] and [`Forward::backward`]:
//! - [`Backend::Fast`] (CPU only): hand-written forward/backward on channels-last buffers,
//!   Winograd convs with fused bias/ReLU, no autograd ([`net`]).
//! - [`Backend::Generic`]: candle ops + autograd, any device ([`generic`]).

pub mod fetch;
pub mod generic;
pub mod net;
pub mod onnx;
pub mod ops;
pub mod weights;

use std::path::Path;
use std::str::FromStr;

use candle_core::{Device, Tensor};

use weights::{LayerKeys, VggWeights, WeightsError};

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
    #[error("vgg: bf16 conv products need a CPU with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids or later), which this one lacks: use Precision::F32")]
    Bf16Unsupported,
}

impl VggError {
    /// The weights' blame for a weights error; anything else failed while running.
    pub fn blame(&self) -> crate::error::Blame {
        match self {
            VggError::Weights(w) => w.blame(),
            _ => crate::error::Blame::Run,
        }
    }
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

/// Number format of the fast backend's conv GEMMs (the transforms, losses and gradients stay
/// f32). bf16 operands, on CPUs with AVX512-BF16 (Zen 4, Sapphire Rapids and later), take the
/// network step to ~0.8× of f32's time in a whole run (the GEMMs ~1.5×; the Winograd transforms
/// do not change) and its weights to half the size. Each conv's output moves by ~2 % RMS against
/// f32 (Winograd's output transform amplifies the operands' 8-bit rounding); the held-out scores
/// of whole runs are the same within seed noise (README, Quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    Bf16,
}

impl Precision {
    /// bf16 where the CPU runs it, else f32.
    pub fn best() -> Precision {
        if crate::simd::bf16_supported() {
            Precision::Bf16
        } else {
            Precision::F32
        }
    }
}

/// The backends; each variant owns its network. Adding a backend is one variant, one file.
enum Net {
    Fast(net::FastNet),
    Generic(generic::GenericNet),
}

/// A requested layer resolved to the network: conv index and which of its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pick {
    pub conv: usize,
    pub kind: LayerKind,
}

/// The perceptual network, its weights and preprocessing.
pub struct Vgg {
    table: Vec<LayerKeys>,
    device: Device,
    net: Net,
    precision: Precision,
}

/// A forward pass that kept what its backward needs: the features at the requested layers
/// (`[batch, c, h, w]` each, detached) and the backend's trace.
pub struct Forward<'a> {
    features: Vec<Tensor>,
    trace: Trace<'a>,
}

enum Trace<'a> {
    Fast(net::FastTrace<'a>),
    Generic(generic::GenericTrace),
    /// No layer was requested: the gradient is zero (`[batch, 3, h, w]` zeros).
    Nothing(Tensor),
}

impl Vgg {
    /// Loads weights from `path`, or from the cache ([`weights::default_weights_path`]) when `None`,
    /// choosing the fast backend on the CPU and the generic one elsewhere. Missing weights give
    /// [`WeightsError::Missing`], whose message says how to fetch them.
    pub fn load(path: Option<&Path>, device: &Device) -> Result<Self> {
        Self::load_with(path, device, Precision::F32)
    }

    /// [`Vgg::load`] with the fast backend's GEMMs in `precision` (ignored by the generic
    /// backend, which is f32). [`Precision::Bf16`] needs [`crate::simd::bf16_supported`].
    pub fn load_with(path: Option<&Path>, device: &Device, precision: Precision) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_owned(),
            None => weights::default_weights_path()?,
        };
        let w = VggWeights::load(&path)?;
        let backend = if device.is_cpu() { Backend::Fast } else { Backend::Generic };
        Self::from_weights_with(&w, device, backend, precision)
    }

    pub fn from_weights(w: &VggWeights, device: &Device, backend: Backend) -> Result<Self> {
        Self::from_weights_with(w, device, backend, Precision::F32)
    }

    pub fn from_weights_with(w: &VggWeights, device: &Device, backend: Backend, precision: Precision) -> Result<Self> {
        if backend == Backend::Fast && precision == Precision::Bf16 && !crate::simd::bf16_supported() {
            return Err(VggError::Bf16Unsupported);
        }
        let table = w.convs.iter().map(|c| c.keys.clone()).collect();
        let net = match backend {
            Backend::Fast => {
                if !device.is_cpu() {
                    return Err(VggError::FastNeedsCpu(format!("{device:?}")));
                }
                Net::Fast(net::FastNet::new(w, precision))
            }
            Backend::Generic => Net::Generic(generic::GenericNet::new(w, device)?),
        };
        let precision = if backend == Backend::Fast { precision } else { Precision::F32 };
        Ok(Vgg { table, device: device.clone(), net, precision })
    }

    pub fn backend(&self) -> Backend {
        match self.net {
            Net::Fast(_) => Backend::Fast,
            Net::Generic(_) => Backend::Generic,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
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

    /// Checks the image and resolves `layers`; `None` when no layer is requested.
    fn picks(&self, image: &Tensor, layers: &[Layer]) -> Result<Option<(Vec<Pick>, usize)>> {
        let (_, h, w) = self.check_image(image)?;
        let picks: Vec<Pick> =
            layers.iter().map(|l| Ok(Pick { conv: self.conv_index(l)?, kind: l.kind })).collect::<Result<_>>()?;
        let Some(last) = picks.iter().map(|p| p.conv).max() else { return Ok(None) };
        self.check_depth(last, h, w)?;
        Ok(Some((picks, last)))
    }

    /// Frees the buffers the CPU network keeps for reuse (a no-op on other backends): call it
    /// after forwards at a size that will not come again, such as the painting's (at 384² views,
    /// the painting's buffers left in the pool were ~150 MB of a run's peak).
    pub fn release_buffers(&self) {
        if let Net::Fast(n) = &self.net {
            n.release_buffers();
        }
    }

    /// Features at `layers`, each `[batch, c, h, w]`, for an RGB `image` `[batch, 3, height, width]`
    /// in [0, 1]. Forward only: nothing is kept for a backward.
    pub fn features(&self, image: &Tensor, layers: &[Layer]) -> Result<Vec<Tensor>> {
        let Some((picks, last)) = self.picks(image, layers)? else { return Ok(Vec::new()) };
        match &self.net {
            Net::Fast(n) => n.features(image, &picks, last, &self.device),
            Net::Generic(n) => n.features(image, &picks, last),
        }
    }

    /// Like [`Vgg::features`], keeping what [`Forward::backward`] needs.
    pub fn forward(&self, image: &Tensor, layers: &[Layer]) -> Result<Forward<'_>> {
        let Some((picks, last)) = self.picks(image, layers)? else {
            // Nothing requested: the backward has nowhere to start and gives zeros.
            return Ok(Forward { features: Vec::new(), trace: Trace::Nothing(image.zeros_like()?) });
        };
        let (features, trace) = match &self.net {
            Net::Fast(n) => {
                let (f, t) = n.forward_kept(image, &picks, last, &self.device)?;
                (f, Trace::Fast(t))
            }
            Net::Generic(n) => {
                let (f, t) = n.forward_kept(image, &picks, last)?;
                (f, Trace::Generic(t))
            }
        };
        Ok(Forward { features, trace })
    }
}

impl Forward<'_> {
    /// The features at the requested layers, in request order, `[batch, c, h, w]` each.
    pub fn features(&self) -> &[Tensor] {
        &self.features
    }

    /// `dL/dimage` (`[batch, 3, height, width]`) from `seeds[i] = dL/dfeatures[i]` (same shape as
    /// the feature; `None`: no gradient enters there).
    pub fn backward(self, seeds: &[Option<Tensor>]) -> Result<Tensor> {
        if seeds.len() != self.features.len() {
            return Err(VggError::Shape {
                what: "gradient seeds".into(),
                expected: format!("one per requested layer ({})", self.features.len()),
                got: vec![seeds.len()],
            });
        }
        for (s, f) in seeds.iter().zip(&self.features) {
            if let Some(s) = s {
                if s.dims() != f.dims() {
                    return Err(VggError::Shape {
                        what: "gradient seed".into(),
                        expected: format!("{:?} (the feature's shape)", f.dims()),
                        got: s.dims().to_vec(),
                    });
                }
            }
        }
        match self.trace {
            Trace::Fast(t) => t.backward(seeds, &self.features),
            Trace::Generic(t) => t.backward(seeds),
            Trace::Nothing(zeros) => Ok(zeros),
        }
    }
}
