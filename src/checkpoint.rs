//! A run's state on disk, so a crash, a reboot or a killed job costs at most
//! the steps since the last checkpoint.
//!
//! One safetensors file, written atomically: named `f32` buffers (texture
//! parameters, Adam's moments, the Gram moving averages, the loss log) and
//! `u8` buffers (which texels some view saw), plus text metadata: the step,
//! the view RNG's position, and the run's fingerprint, a `key=value` line per
//! option and input-file hash. Resuming compares fingerprints line by line,
//! so a mismatch names the option or file that changed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};

/// The file inside the checkpoint folder.
pub const FILE: &str = "checkpoint.safetensors";
/// Format version, in the metadata; bumped when the contents change meaning.
const VERSION: &str = "1";

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

/// The reason a checkpoint cannot be used (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);

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
        let bad = |what: String| CheckpointError(format!("{}: {what} (delete the folder to start over)", path.display()));
        let buf = std::fs::read(&path).map_err(|e| bad(format!("cannot read the checkpoint: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&buf).map_err(|e| bad(format!("not a readable checkpoint: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&buf).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(&format!("texstyle-checkpoint-{VERSION}")) {
            bail!(bad("not a texstyle checkpoint of this version".into()));
        }
        let num = |k: &str| -> Result<u64> {
            Ok(meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("metadata {k} is missing or not a number")))?)
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
                _ => bail!(bad(format!("unexpected entry {name}"))),
            }
        }
        Ok(ck)
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
        Err(CheckpointError(format!(
            "{}: the checkpoint was made by a different run ({}); resume with the same mesh, painting and options, \
             or delete the folder to start over",
            dir.display(),
            diffs.join("; ")
        )))
    }

    /// The buffer `name`, which must hold `len` values.
    pub fn floats(&self, name: &str, len: usize) -> Result<&[f32], CheckpointError> {
        match self.floats.get(name) {
            Some((_, v)) if v.len() == len => Ok(v),
            Some((_, v)) => Err(CheckpointError(format!("checkpoint: {name} holds {} values, expected {len}", v.len()))),
            None => Err(CheckpointError(format!("checkpoint: {name} is missing"))),
        }
    }

    pub fn scalar(&self, name: &str) -> Result<u64, CheckpointError> {
        self.scalars.get(name).copied().ok_or_else(|| CheckpointError(format!("checkpoint: {name} is missing")))
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
}
