//! A run's state on disk, so a crash, a reboot or a killed job costs at most
//! the steps since the last checkpoint.
//!
//! One safetensors file, written atomically: named `f32` buffers (texture
//! parameters, Adam's moments, the Gram moving averages, the loss log) and
//! `u8` buffers (which texels some view saw), plus text metadata: the step,
//! the view RNG's position, and the run's fingerprint, a `key=value` line per
//! option and input-file hash. Resuming compares fingerprints line by line,
//! so a mismatch names the option or file that changed.
//!
//! `State` is what of the optimization loop goes into a checkpoint, and
//! under which names.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};

use crate::adam::{Adam, AdamState};
use crate::camera::ViewSampler;
use crate::loss::GramMemory;
use crate::optim::StepLog;
use crate::texture::TextureParam;

/// The file inside the checkpoint folder.
pub const FILE: &str = "checkpoint.safetensors";
/// Format version, in the metadata; bumped when the contents change meaning.
const VERSION: &str = "1";
/// Metadata key of the contents' checksum ([`Checkpoint::sha256`]).
const SHA256: &str = "sha256";

/// What a run needs to continue exactly where it stopped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Steps completed.
    pub step: u64,
    /// Options and inputs that produced this state, `key=value` per line.
    pub fingerprint: String,
    /// Small scalar state (RNG position, optimizer step, …) by name.
    pub scalars: BTreeMap<String, u64>,
    /// `f32` buffers by name, with their shapes.
    pub floats: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Byte buffers by name (flags).
    pub bytes: BTreeMap<String, Vec<u8>>,
}

/// Why a checkpoint cannot be used. Each is the user's to fix (resume with
/// the same inputs, or delete the folder): [`CheckpointError::blame`].
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: cannot read the checkpoint: {error} (delete the folder to start over)", path.display())]
    Unreadable { path: PathBuf, error: std::io::Error },
    #[error("{}: not a readable checkpoint: {error} (delete the folder to start over)", path.display())]
    Damaged { path: PathBuf, error: safetensors::SafeTensorError },
    #[error("{}: {error} (delete the folder to start over)", path.display())]
    BadHeader { path: PathBuf, error: safetensors::SafeTensorError },
    #[error("{}: not a texstyle checkpoint of this version (delete the folder to start over)", path.display())]
    OtherFormat { path: PathBuf },
    #[error("{}: metadata {key} is missing or not a number (delete the folder to start over)", path.display())]
    BadMetadata { path: PathBuf, key: String },
    #[error("{}: unexpected entry {name} (delete the folder to start over)", path.display())]
    UnexpectedEntry { path: PathBuf, name: String },
    /// The SHA-256 of its contents differs from the one saved with it: changed on disk.
    #[error("{}: the checkpoint is damaged (its checksum does not match its contents; delete the folder to start over)", path.display())]
    Corrupt { path: PathBuf },
    /// A saved value is NaN or infinite: no run can continue from it.
    #[error("{}: the checkpoint holds a non-finite value in {name} (delete the folder to start over)", path.display())]
    NotFinite { path: PathBuf, name: String },
    /// Made by other options or inputs; `diffs` names each (`key: old then, new now`).
    #[error(
        "{}: the checkpoint was made by a different run ({}); resume with the same mesh, painting and options, \
         or delete the folder to start over",
        dir.display(),
        diffs.join("; ")
    )]
    OtherRun { dir: PathBuf, diffs: Vec<String> },
    // The three below come from restoring a loaded checkpoint; the caller adds the file.
    #[error("the checkpoint lacks {name} (delete the folder to start over)")]
    Missing { name: String },
    #[error("the checkpoint's {name} holds {found} values, expected {expected} (delete the folder to start over)")]
    WrongLength { name: String, found: usize, expected: usize },
    #[error("the checkpoint's seen-texel flags do not match the texture size (delete the folder to start over)")]
    SeenSize,
}

impl CheckpointError {
    /// Whose problem it is: always the input's (a checkpoint is one of the user's files).
    pub fn blame(&self) -> crate::error::Blame {
        crate::error::Blame::Input
    }
}

impl Checkpoint {
    /// `dir/checkpoint.safetensors`, replaced atomically.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), format!("texstyle-checkpoint-{VERSION}"));
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("fingerprint".to_string(), self.fingerprint.clone());
        for (k, v) in &self.scalars {
            meta.insert(format!("scalar.{k}"), v.to_string());
        }
        meta.insert(SHA256.to_string(), self.sha256());
        let float_bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
            self.floats.iter().map(|(k, (s, v))| (format!("f.{k}"), s.clone(), bytemuck::cast_slice(v).to_vec())).collect();
        let mut views = Vec::new();
        for (k, s, b) in &float_bytes {
            views.push((k.clone(), TensorView::new(Dtype::F32, s.clone(), b)?));
        }
        for (k, b) in &self.bytes {
            views.push((format!("b.{k}"), TensorView::new(Dtype::U8, vec![b.len()], b)?));
        }
        let buf = safetensors::serialize(views, Some(meta))?;
        let path = dir.join(FILE);
        crate::image_io::write_atomic(&path, &buf)?;
        Ok(path)
    }

    /// Reads `dir/checkpoint.safetensors`.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(FILE);
        let p = || path.clone();
        let buf = std::fs::read(&path).map_err(|error| CheckpointError::Unreadable { path: p(), error })?;
        let st = safetensors::SafeTensors::deserialize(&buf).map_err(|error| CheckpointError::Damaged { path: p(), error })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&buf).map_err(|error| CheckpointError::BadHeader { path: p(), error })?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(&format!("texstyle-checkpoint-{VERSION}")) {
            bail!(CheckpointError::OtherFormat { path: p() });
        }
        let num = |k: &str| -> Result<u64> {
            Ok(meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| CheckpointError::BadMetadata { path: p(), key: k.to_string() })?)
        };
        let mut ck = Checkpoint { step: num("step")?, fingerprint: meta.get("fingerprint").cloned().unwrap_or_default(), ..Default::default() };
        for k in meta.keys().filter_map(|k| k.strip_prefix("scalar.")) {
            ck.scalars.insert(k.to_string(), num(&format!("scalar.{k}"))?);
        }
        for (name, view) in st.tensors() {
            match (name.split_once('.'), view.dtype()) {
                (Some(("f", k)), Dtype::F32) => {
                    let v = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                    ck.floats.insert(k.to_string(), (view.shape().to_vec(), v));
                }
                (Some(("b", k)), Dtype::U8) => {
                    ck.bytes.insert(k.to_string(), view.data().to_vec());
                }
                _ => bail!(CheckpointError::UnexpectedEntry { path: p(), name: name.clone() }),
            }
        }
        if meta.get(SHA256) != Some(&ck.sha256()) {
            bail!(CheckpointError::Corrupt { path: p() });
        }
        if let Some(name) = ck.floats.iter().find(|(_, (_, v))| v.iter().any(|x| !x.is_finite())).map(|(k, _)| k) {
            bail!(CheckpointError::NotFinite { path: p(), name: name.clone() });
        }
        Ok(ck)
    }

    /// SHA-256 (hex) of everything saved but the checksum itself: step,
    /// fingerprint, scalars, and each buffer's name, shape and bytes, so a
    /// change anywhere in the file (header or data) is caught on load.
    fn sha256(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(&self.step.to_le_bytes());
        field(self.fingerprint.as_bytes());
        for (k, v) in &self.scalars {
            field(k.as_bytes());
            field(&v.to_le_bytes());
        }
        for (k, (shape, v)) in &self.floats {
            field(k.as_bytes());
            field(&shape.iter().flat_map(|d| (*d as u64).to_le_bytes()).collect::<Vec<u8>>());
            field(bytemuck::cast_slice(v));
        }
        for (k, b) in &self.bytes {
            field(k.as_bytes());
            field(b);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Refuses a checkpoint made by other options or inputs than `fingerprint`,
    /// naming the first lines that differ.
    pub fn check_fingerprint(&self, fingerprint: &str, dir: &Path) -> Result<(), CheckpointError> {
        if self.fingerprint == fingerprint {
            return Ok(());
        }
        let saved: BTreeMap<&str, &str> = self.fingerprint.lines().filter_map(|l| l.split_once('=')).collect();
        let now: BTreeMap<&str, &str> = fingerprint.lines().filter_map(|l| l.split_once('=')).collect();
        let keys: std::collections::BTreeSet<&str> = saved.keys().chain(now.keys()).copied().collect();
        let diffs: Vec<String> = keys
            .into_iter()
            .filter(|k| saved.get(k) != now.get(k))
            .map(|k| format!("{k}: {} then, {} now", saved.get(k).unwrap_or(&"(none)"), now.get(k).unwrap_or(&"(none)")))
            .collect();
        Err(CheckpointError::OtherRun { dir: dir.to_path_buf(), diffs })
    }

    /// The buffer `name`, which must hold `len` values.
    pub fn floats(&self, name: &str, len: usize) -> Result<&[f32], CheckpointError> {
        match self.floats.get(name) {
            Some((_, v)) if v.len() == len => Ok(v),
            Some((_, v)) => Err(CheckpointError::WrongLength { name: name.to_string(), found: v.len(), expected: len }),
            None => Err(CheckpointError::Missing { name: name.to_string() }),
        }
    }

    pub fn scalar(&self, name: &str) -> Result<u64, CheckpointError> {
        self.scalars.get(name).copied().ok_or_else(|| CheckpointError::Missing { name: name.to_string() })
    }
}

/// The names of a run's state in a [`Checkpoint`].
mod key {
    pub const VIEWS_RNG: &str = "views_rng";
    pub const ADAM_STEP: &str = "adam_step";
    /// The held-out score before the first step, as `f32` bits.
    pub const EVAL_BEFORE: &str = "eval_before";
    pub const SEEN: &str = "seen";
    /// `[steps, StepLog::COLUMNS]`, row by row.
    pub const LOG: &str = "log";

    /// `name.i`: the `i`th of a list (parameters, moments, Gram layers).
    pub fn nth(name: &str, i: usize) -> String {
        format!("{name}.{i}")
    }
    pub const PARAM: &str = "param";
    pub const ADAM_M: &str = "adam_m";
    pub const ADAM_V: &str = "adam_v";
    pub const GRAM: &str = "gram";
    pub const GRAM_COUNT: &str = "gram_count";
}

/// The optimization loop's state that a checkpoint holds; everything else is
/// rebuilt from the options, so a resumed run continues with the same bits.
pub(crate) struct State {
    pub param: TextureParam,
    pub adam: Adam,
    pub memory: GramMemory,
    pub views: ViewSampler,
    /// Per texel of every material, whether some view saw it.
    pub seen: Vec<bool>,
    pub log: Vec<StepLog>,
    /// The held-out style score of the initial texture.
    pub eval_before: f32,
}

impl State {
    /// This state as a checkpoint of the run `fingerprint` describes.
    pub fn save(&self, fingerprint: &str) -> Result<Checkpoint> {
        let mut ck = Checkpoint { step: self.log.len() as u64, fingerprint: fingerprint.to_string(), ..Default::default() };
        ck.scalars.insert(key::VIEWS_RNG.into(), self.views.state());
        ck.scalars.insert(key::ADAM_STEP.into(), self.adam.state().step);
        ck.scalars.insert(key::EVAL_BEFORE.into(), self.eval_before.to_bits() as u64);
        let st = self.adam.state();
        for (i, v) in self.param.vars().iter().enumerate() {
            let theta = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            ck.floats.insert(key::nth(key::PARAM, i), (v.dims().to_vec(), theta));
            ck.floats.insert(key::nth(key::ADAM_M, i), (vec![st.m[i].len()], st.m[i].clone()));
            ck.floats.insert(key::nth(key::ADAM_V, i), (vec![st.v[i].len()], st.v[i].clone()));
        }
        for (l, (n, shape, values)) in self.memory.state()?.into_iter().enumerate() {
            ck.scalars.insert(key::nth(key::GRAM_COUNT, l), n as u64);
            ck.floats.insert(key::nth(key::GRAM, l), (shape, values));
        }
        ck.bytes.insert(key::SEEN.into(), self.seen.iter().map(|&b| b as u8).collect());
        let rows: Vec<f32> = self.log.iter().flat_map(StepLog::to_row).collect();
        ck.floats.insert(key::LOG.into(), (vec![self.log.len(), StepLog::COLUMNS.len()], rows));
        Ok(ck)
    }

    /// Replaces this (freshly built) state with the one `ck` holds.
    pub fn restore(&mut self, ck: &Checkpoint, device: &Device) -> Result<()> {
        self.restore_params(ck)?;
        let layers = self.memory.state()?.len();
        let grams = (0..layers)
            .map(|l| {
                let (shape, values) = ck.floats.get(&key::nth(key::GRAM, l)).cloned().unwrap_or_default();
                Ok((ck.scalar(&key::nth(key::GRAM_COUNT, l))? as i32, shape, values))
            })
            .collect::<Result<Vec<_>>>()?;
        self.memory.set_state(grams, device)?;
        self.views.set_state(ck.scalar(key::VIEWS_RNG)?);
        self.eval_before = f32::from_bits(ck.scalar(key::EVAL_BEFORE)? as u32);
        let seen = ck.bytes.get(key::SEEN).filter(|s| s.len() == self.seen.len());
        let seen = seen.ok_or(CheckpointError::SeenSize)?;
        self.seen = seen.iter().map(|&b| b != 0).collect();
        let columns = StepLog::COLUMNS.len();
        let rows = ck.floats(key::LOG, ck.step as usize * columns)?;
        self.log = rows.chunks_exact(columns).map(StepLog::from_row).collect();
        Ok(())
    }

    /// The parameters θ and Adam's moments and step.
    fn restore_params(&mut self, ck: &Checkpoint) -> Result<()> {
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for (i, var) in self.param.vars().iter().enumerate() {
            let n = var.elem_count();
            var.set(&Tensor::from_slice(ck.floats(&key::nth(key::PARAM, i), n)?, var.shape(), var.device())?)?;
            // Into huge-page buffers, as fresh moments are (see `hugepages`).
            let moments = |name: &str| -> Result<Vec<f32>> {
                let mut b = crate::hugepages::zeroed(n);
                b.copy_from_slice(ck.floats(&key::nth(name, i), n)?);
                Ok(b)
            };
            m.push(moments(key::ADAM_M)?);
            v.push(moments(key::ADAM_V)?);
        }
        self.adam.set_state(AdamState { step: ck.scalar(key::ADAM_STEP)?, m, v })?;
        Ok(())
    }
}

/// A short hash of a file's bytes for fingerprints (SHA-256, 16 hex digits).
pub fn file_hash(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes).iter().take(8).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut ck = Checkpoint { step: 42, fingerprint: "steps=300\nseed=0".into(), ..Default::default() };
        ck.scalars.insert("rng".into(), u64::MAX - 7);
        ck.floats.insert("param.0".into(), (vec![2, 3], vec![1.0, -2.5, f32::MIN_POSITIVE, 0.0, -0.0, 7.0]));
        ck.bytes.insert("seen".into(), vec![0, 1, 1, 0]);
        ck
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let ck = sample();
        ck.save(dir.path()).unwrap();
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(back, ck);
        assert_eq!(back.floats["param.0"].1[4].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn other_options_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = sample().check_fingerprint("steps=400\nseed=0", dir.path()).unwrap_err().to_string();
        assert!(err.contains("steps: 300 then, 400 now"), "{err}");
        assert!(sample().check_fingerprint("steps=300\nseed=0", dir.path()).is_ok());
    }

    #[test]
    fn damaged_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample().save(dir.path()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a readable checkpoint"), "{err}");
        assert!(Checkpoint::load(&dir.path().join("none")).unwrap_err().to_string().contains("cannot read"));
    }

    #[test]
    fn changed_bytes_are_caught_by_the_checksum_and_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample().save(dir.path()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.len();
        bytes[end - 10..end - 6].fill(0xFF); // inside the data of the last buffer
        std::fs::write(&path, &bytes).unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("damaged"), "{err}");
    }

    #[test]
    fn a_changed_header_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample().save(dir.path()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // step 42 → 43 in the JSON header: still well-formed, but not what was saved.
        let at = bytes.windows(4).position(|w| w == b"\"42\"").unwrap() + 2;
        bytes[at] = b'3';
        std::fs::write(&path, &bytes).unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn a_non_finite_value_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut ck = sample();
        ck.floats.get_mut("param.0").unwrap().1[2] = f32::NAN;
        let path = ck.save(dir.path()).unwrap();
        let err = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("non-finite value in param.0"), "{err}");
    }
}
