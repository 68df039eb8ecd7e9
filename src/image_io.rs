//! RGB images in memory (`f32` in [0, 1], rows top-down) and their files:
//! decoding with a clear error, and PNG writing that is atomic (a temporary
//! file renamed into place), so an interrupted run never leaves a
//! half-written image behind. Also the one place images become tensors and
//! back ([`image_to_tensor`], [`tensor_to_image`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};

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

    /// Decodes an image file (PNG, JPEG), dropping any alpha channel, scaled
    /// down to at most [`MAX_LOADED_SIDE`] pixels on its longer side. Files
    /// over [`MAX_SIDE`] or [`MAX_PIXELS`] are refused from their header.
    pub fn load(path: &Path) -> Result<Image, image::ImageError> {
        Image::load_fit(path, MAX_LOADED_SIDE)
    }

    /// [`Image::load`], scaled down (never up) so the longer side is at most
    /// `max_side`. Images over [`STREAM_ABOVE_PIXELS`] that must shrink are
    /// reduced while decoding (JPEG: scaled IDCT; PNG: row by row), so a
    /// 10000² painting never sits in memory whole.
    pub fn load_fit(path: &Path, max_side: u32) -> Result<Image, image::ImageError> {
        Image::load_fit_inner(path, max_side).map_err(one_sentence).map_err(with_advice)
    }

    fn load_fit_inner(path: &Path, max_side: u32) -> Result<Image, image::ImageError> {
        // Before any open: a FIFO would block, a device never end.
        crate::input::check(path, crate::input::IMAGE_MAX_BYTES)?;
        let reader = image::ImageReader::open(path)?.with_guessed_format()?;
        let format = reader.format();
        let (w, h) = reader.into_dimensions()?;
        check_size(w, h)?;
        let max_side = max_side.max(1);
        let big = w as u64 * h as u64 > STREAM_ABOVE_PIXELS && w.max(h) > max_side;
        let (tw, th) = fit(w, h, max_side);
        let rgb = match format {
            Some(image::ImageFormat::Jpeg) if big => decode_jpeg_scaled(path, tw, th)?,
            Some(image::ImageFormat::Png) if big => match decode_png_box(path, w.max(h).div_ceil(max_side))? {
                Some(rgb) => rgb,
                None => decode_whole(path)?,
            },
            _ => decode_whole(path)?,
        };
        Ok(Image::from_rgb8(&rgb).resized_to_fit(max_side))
    }

    /// This image scaled down (never up, triangle filter) so its longer
    /// side is at most `max_side` pixels.
    pub fn resized_to_fit(self, max_side: u32) -> Image {
        let (w, h) = fit(self.width, self.height, max_side);
        if (w, h) == (self.width, self.height) {
            return self;
        }
        Image::from_rgb8(&image::imageops::resize(&self.to_rgb8(), w, h, image::imageops::FilterType::Triangle))
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

/// Longest side of an image file texstyle decodes at all.
pub const MAX_SIDE: u32 = 16384;
/// Most pixels of an image file texstyle decodes at all (10000² passes).
pub const MAX_PIXELS: u64 = 128 * 1024 * 1024;
/// Longest side kept in memory by [`Image::load`]: a mesh texture beyond it
/// adds nothing to 256–1024² views, and 4096² RGB f32 is already 200 MB.
pub const MAX_LOADED_SIDE: u32 = 4096;
/// Above this many pixels an image that must shrink is reduced while it is
/// decoded; below it, decoded whole and then resized (as small files always were).
pub const STREAM_ABOVE_PIXELS: u64 = 4096 * 4096;

/// An image error that reads as one sentence (no decoder prefix).
fn image_error(msg: String) -> image::ImageError {
    image::ImageError::IoError(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

/// A decoder error as one line: its own text (which already quotes the
/// decoder's cause, so the cause is not chained a second time), newlines folded.
fn one_sentence(e: image::ImageError) -> image::ImageError {
    match e {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::InvalidData => image::ImageError::IoError(io),
        image::ImageError::IoError(io) => image_error(io.to_string()),
        other => image_error(other.to_string().split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

/// A decoder's message without advice (an empty, truncated or corrupt file)
/// gets the advice every error line ends with.
fn with_advice(e: image::ImageError) -> image::ImageError {
    let msg = e.to_string();
    if msg.trim_end().ends_with(')') {
        return e;
    }
    image_error(format!("{msg} (the file is empty, truncated or no PNG/JPEG: open it in an image viewer and save it again)"))
}

/// Refuses sizes over the limits before anything is allocated.
fn check_size(w: u32, h: u32) -> Result<(), image::ImageError> {
    if w == 0 || h == 0 {
        return Err(image_error(format!("the image is {w}×{h} pixels, it has no pixels (use a real image)")));
    }
    if w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS {
        return Err(image_error(format!(
            "the image is {w}×{h} pixels, over texstyle's limit of {MAX_SIDE} pixels a side and {} megapixels \
             (shrink it first, e.g. `convert IN -resize 4096x4096 OUT`)",
            MAX_PIXELS >> 20
        )));
    }
    Ok(())
}

/// The size of `w × h` scaled down (never up) to fit `max_side`, aspect kept.
pub fn fit(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= max_side {
        return (w, h);
    }
    let s = max_side as f32 / long as f32;
    (((w as f32 * s).round() as u32).max(1), ((h as f32 * s).round() as u32).max(1))
}

/// Decodes the whole file, with the decoder's own allocation limit set.
fn decode_whole(path: &Path) -> Result<image::RgbImage, image::ImageError> {
    let mut reader = image::ImageReader::open(path)?.with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    Ok(reader.decode()?.to_rgb8())
}

/// A JPEG decoded at 1/2, 1/4 or 1/8 scale straight from its DCT
/// coefficients: the smallest scale at least `tw × th`.
fn decode_jpeg_scaled(path: &Path, tw: u32, th: u32) -> Result<image::RgbImage, image::ImageError> {
    let file = std::io::BufReader::new(fs::File::open(path)?);
    let mut dec = jpeg_decoder::Decoder::new(file);
    let bad = |e: jpeg_decoder::Error| image_error(format!("the JPEG cannot be decoded: {e}"));
    let (w, h) = dec.scale(tw.min(u16::MAX as u32) as u16, th.min(u16::MAX as u32) as u16).map_err(bad)?;
    let pixels = dec.decode().map_err(bad)?;
    let info = dec.info().ok_or_else(|| image_error("the JPEG has no frame header".into()))?;
    let (w, h) = (w as u32, h as u32);
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels.chunks_exact(2).flat_map(|b| [b[0]; 3]).collect(),
        // Adobe CMYK JPEGs store inverted ink values.
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = p[3] as u32;
                [0, 1, 2].map(|c| (p[c] as u32 * k / 255) as u8)
            })
            .collect(),
    };
    image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| image_error("the JPEG's pixel data is shorter than its size".into()))
}

/// A non-interlaced PNG averaged over `factor × factor` blocks while its rows
/// stream in: memory is one row plus one row of sums. `None` for interlaced
/// files, whose rows arrive out of order.
fn decode_png_box(path: &Path, factor: u32) -> Result<Option<image::RgbImage>, image::ImageError> {
    let bad = |e: png::DecodingError| image_error(format!("the PNG cannot be decoded: {e}"));
    let file = std::io::BufReader::new(fs::File::open(path)?);
    let mut dec = png::Decoder::new(file);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(bad)?;
    if reader.info().interlaced {
        return Ok(None);
    }
    let (w, h) = (reader.info().width, reader.info().height);
    let channels = match reader.output_color_type().0 {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Ok(None),
    };
    let f = factor.max(1);
    let (ow, oh) = (w.div_ceil(f), h.div_ceil(f));
    let mut sums = vec![0u32; ow as usize * 3];
    let mut counts = vec![0u32; ow as usize];
    let mut out = Vec::with_capacity(ow as usize * oh as usize * 3);
    let flush = |sums: &mut Vec<u32>, counts: &mut Vec<u32>, out: &mut Vec<u8>| {
        for (x, &n) in counts.iter().enumerate() {
            for c in 0..3 {
                out.push(((sums[x * 3 + c] + n / 2) / n.max(1)) as u8);
            }
        }
        sums.fill(0);
        counts.fill(0);
    };
    let mut y = 0;
    while let Some(row) = reader.next_row().map_err(bad)? {
        for (x, px) in row.data().chunks_exact(channels).take(w as usize).enumerate() {
            let o = x / f as usize;
            let rgb = if channels < 3 { [px[0]; 3] } else { [px[0], px[1], px[2]] };
            for c in 0..3 {
                sums[o * 3 + c] += rgb[c] as u32;
            }
            counts[o] += 1;
        }
        y += 1;
        if y % f == 0 || y == h {
            flush(&mut sums, &mut counts, &mut out);
        }
    }
    if y != h {
        return Err(image_error(format!("the PNG ends after {y} of its {h} rows (the file is truncated)")));
    }
    Ok(image::RgbImage::from_raw(ow, oh, out))
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

/// `[1, 3, H, W]` on the CPU from an image.
pub fn image_to_tensor(img: &Image) -> candle_core::Result<Tensor> {
    let (w, h) = (img.width as usize, img.height as usize);
    Tensor::from_slice(&img.data, (h, w, 3), &Device::Cpu)?.permute((2, 0, 1))?.contiguous()?.unsqueeze(0)
}

/// An image from `[3, H, W]` (e.g. one material of a texture tensor).
pub fn tensor_to_image(t: &Tensor) -> candle_core::Result<Image> {
    let (c, h, w) = t.dims3()?;
    if c != 3 {
        candle_core::bail!("tensor_to_image: expected [3, H, W], got {:?}", t.dims())
    }
    let hwc = t.permute((1, 2, 0))?.contiguous()?.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(Image { width: w as u32, height: h as u32, data: hwc })
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

    /// A PNG whose header claims `w × h` and whose data is missing: the
    /// limit must be applied from the header, before any decoding.
    fn header_only_png(w: u32, h: u32) -> Vec<u8> {
        let mut f = Vec::new();
        let mut enc = png::Encoder::new(&mut f, 1, 1);
        enc.set_color(png::ColorType::Rgb);
        enc.write_header().unwrap().write_image_data(&[0, 0, 0]).unwrap();
        // IHDR's width and height sit at bytes 16..24; fix its CRC after.
        f[16..20].copy_from_slice(&w.to_be_bytes());
        f[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&f[12..29]);
        f[29..33].copy_from_slice(&crc.to_be_bytes());
        f
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn oversized_image_is_refused_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        fs::write(&path, header_only_png(20000, 20000)).unwrap();
        let t = std::time::Instant::now();
        let err = Image::load(&path).unwrap_err().to_string();
        assert!(t.elapsed().as_secs_f64() < 1.0, "refused only after {:?}", t.elapsed());
        assert!(err.contains("20000×20000") && err.contains("16384") && err.contains("shrink"), "{err}");
        // Under the side limit but over the pixel count.
        fs::write(&path, header_only_png(16000, 16000)).unwrap();
        assert!(Image::load(&path).unwrap_err().to_string().contains("megapixels"));
    }

    /// Left third white, rest black.
    fn stripe(x: u32, w: u32) -> u8 {
        if x < w / 3 { 255 } else { 0 }
    }

    #[test]
    fn large_png_is_box_filtered_while_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.png");
        let (w, h) = (9000u32, 6000u32); // 54 MP: over STREAM_ABOVE_PIXELS
        {
            let file = std::io::BufWriter::new(fs::File::create(&path).unwrap());
            let mut enc = png::Encoder::new(file, w, h);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_compression(png::Compression::Fast);
            let mut stream = enc.write_header().unwrap().into_stream_writer().unwrap();
            let row: Vec<u8> = (0..w).map(|x| stripe(x, w)).collect();
            for _ in 0..h {
                stream.write_all(&row).unwrap();
            }
            stream.finish().unwrap();
        }
        let img = Image::load_fit(&path, 600).unwrap();
        assert_eq!((img.width, img.height), (600, 400));
        assert_eq!(img.pixel(10, 200), [1.0; 3]);
        assert_eq!(img.pixel(590, 10), [0.0; 3]);
        // Truncated: a clear error, not a panic or a short image.
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = Image::load_fit(&path, 600).unwrap_err().to_string();
        assert!(err.contains("PNG"), "{err}");
    }

    #[test]
    fn large_jpeg_is_decoded_at_reduced_scale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jpg");
        let (w, h) = (6000u32, 4000u32); // 24 MP
        let img = image::GrayImage::from_fn(w, h, |x, _| image::Luma([stripe(x, w)]));
        img.save(&path).unwrap();
        let got = Image::load_fit(&path, 512).unwrap();
        assert_eq!((got.width, got.height), (512, 341));
        assert!(got.pixel(20, 100)[0] > 0.95 && got.pixel(500, 100)[0] < 0.05);
        // The same file through `load` keeps up to MAX_LOADED_SIDE.
        let full = Image::load(&path).unwrap();
        assert_eq!(full.width.max(full.height), MAX_LOADED_SIDE);
    }
}
