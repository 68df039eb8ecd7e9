//! RGB images in memory (`f32` in [0, 1], rows top-down) and their files:
//! decoding with a clear error, and PNG writing that is atomic (a temporary
//! file renamed into place), so an interrupted run never leaves a
//! half-written image behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An RGB image, `[height, width, 3]` row-major, rows top-down, values in
/// [0, 1] (the file's sRGB values, not linearized).
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` values.
    pub data: Vec<f32>,
}

impl Image {
    /// A `width × height` image filled with `rgb`.
    pub fn filled(width: u32, height: u32, rgb: [f32; 3]) -> Image {
        let data = rgb.iter().copied().cycle().take((width * height * 3) as usize).collect();
        Image { width, height, data }
    }

    /// The RGB value at column `x`, row `y`.
    #[inline]
    pub fn pixel(&self, x: u32, y: u32) -> [f32; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    #[inline]
    pub fn set_pixel(&mut self, x: u32, y: u32, rgb: [f32; 3]) {
        let i = ((y * self.width + x) * 3) as usize;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Decodes an image file (PNG, JPEG), dropping any alpha channel.
    pub fn load(path: &Path) -> Result<Image, image::ImageError> {
        let rgb = image::ImageReader::open(path)?.with_guessed_format()?.decode()?.to_rgb8();
        Ok(Image::from_rgb8(&rgb))
    }

    pub fn from_rgb8(rgb: &image::RgbImage) -> Image {
        let data = rgb.as_raw().iter().map(|&b| b as f32 / 255.0).collect();
        Image { width: rgb.width(), height: rgb.height(), data }
    }

    /// Quantizes to 8 bits per channel, clamping to [0, 1].
    pub fn to_rgb8(&self) -> image::RgbImage {
        let bytes = self.data.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        image::RgbImage::from_raw(self.width, self.height, bytes).expect("data length matches size")
    }

    /// The image as an 8-bit RGB PNG file, in memory.
    pub fn png_bytes(&self) -> Result<Vec<u8>> {
        let mut png = Vec::new();
        self.to_rgb8().write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).context("encoding a PNG")?;
        Ok(png)
    }

    /// Writes a PNG atomically (see the module docs).
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let png = self.png_bytes().with_context(|| path.display().to_string())?;
        write_atomic(path, &png)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers see either the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp: PathBuf = dir.join(tmp_name);
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_is_exact_for_8bit_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = Image::filled(3, 2, [0.0, 0.5, 1.0]);
        img.set_pixel(2, 1, [1.0, 0.0, 64.0 / 255.0]);
        let path = dir.path().join("x.png");
        img.save_png(&path).unwrap();
        let back = Image::load(&path).unwrap();
        assert_eq!(back.width, 3);
        assert_eq!(back.pixel(2, 1), [1.0, 0.0, 64.0 / 255.0]);
        assert_eq!(back.pixel(0, 0), [0.0, 128.0 / 255.0, 1.0]);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
