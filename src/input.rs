//! The one way texstyle opens a file the user names (mesh, MTL, glTF
//! buffer, painting, texture, network weights): only a regular file (after symlinks), checked
//! before it is opened so a FIFO never blocks, and never more bytes than a
//! cap per kind of file, so `/dev/zero` or a growing file cannot eat memory.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Largest mesh file (OBJ, STL, PLY, glTF, GLB) or MTL/glTF buffer read.
pub const MESH_MAX_BYTES: u64 = 2 << 30;
/// Largest network weights file read (VGG19 in f32 is about 550 MiB).
pub const WEIGHTS_MAX_BYTES: u64 = 4 << 30;
/// Largest image file read (the pixel caps of [`crate::image_io`] come on top).
pub const IMAGE_MAX_BYTES: u64 = 1 << 30;

/// The size of `path` when it is a regular file of at most `cap` bytes;
/// otherwise an error that says what it is and what to do.
pub fn check(path: &Path, cap: u64) -> io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a folder" } else { "a device, FIFO or socket" };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is not a regular file but {what} (give a file; save a stream to a file first)"),
        ));
    }
    if meta.len() > cap {
        return Err(too_big(cap));
    }
    Ok(meta.len())
}

fn too_big(cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is over texstyle's limit of {} MiB for this kind of file (use a smaller file)", cap >> 20),
    )
}

/// The whole file, after [`check`], reading at most `cap` bytes (a file that
/// grows past its cap while read is refused too).
pub fn read(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let len = check(path, cap)?;
    let mut bytes = Vec::with_capacity(len as usize);
    File::open(path)?.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_big(cap));
    }
    Ok(bytes)
}

/// A path for a one-line message: as is, or quoted with escapes when it
/// holds a control character (a newline would break the error line).
pub fn shown(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars().any(char::is_control) {
        format!("{s:?}")
    } else {
        s
    }
}
