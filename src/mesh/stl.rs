//! STL, binary and ASCII (`stl_io`), welded into shared vertices (identical
//! positions become one vertex) so the unwrap sees a connected surface
//! rather than loose triangles. STL has no UVs, colours or materials.

use std::io::Cursor;
use std::path::Path;

use glam::Vec3;

use super::{Material, Mesh, MeshError, MeshErrorKind, UvCoverage};

pub(super) fn load(path: &Path, bytes: &[u8]) -> Result<Mesh, MeshError> {
    let err = |kind, msg: String, hint: &str| MeshError::new(kind, path, msg, hint);
    // Binary: an 80-byte header, a triangle count, 50 bytes per triangle. The
    // header of a binary file may itself start with "solid", so the size
    // decides first.
    let count = (bytes.len() >= 84).then(|| u32::from_le_bytes(bytes[80..84].try_into().unwrap()) as u64);
    let binary_size = count.map(|n| 84 + 50 * n);
    let looks_ascii = bytes.trim_ascii_start().starts_with(b"solid")
        && binary_size != Some(bytes.len() as u64)
        && std::str::from_utf8(bytes).is_ok();
    let indexed = if looks_ascii {
        let text = std::str::from_utf8(bytes).expect("checked above");
        // stl_io wants "solid NAME"; a bare "solid" line is valid STL too.
        let text = text.trim_start();
        let fixed = match text.split_once('\n') {
            Some((first, rest)) if first.trim() == "solid" => format!("solid mesh\n{rest}"),
            _ => text.to_string(),
        };
        if !fixed.contains("endsolid") {
            return Err(err(MeshErrorKind::Truncated, "the ASCII STL ends without 'endsolid': the file is truncated".into(), "export or download it again"));
        }
        stl_io::read_stl(&mut Cursor::new(fixed.as_bytes()))
            .map_err(|e| {
                if e.to_string().contains("finite") {
                    err(MeshErrorKind::NonFinite, format!("a coordinate is not finite ({e})"), "fix or re-export the STL")
                } else {
                    err(MeshErrorKind::Parse, format!("malformed ASCII STL: {e}"), "re-export the STL")
                }
            })?
    } else {
        let Some(expected) = binary_size else {
            return Err(err(MeshErrorKind::Truncated, format!("only {} bytes: too short for an STL", bytes.len()), "export or download it again"));
        };
        if expected != bytes.len() as u64 {
            return Err(err(
                MeshErrorKind::Truncated,
                format!(
                    "binary STL header says {} triangles ({expected} bytes) but the file has {} bytes",
                    count.unwrap(),
                    bytes.len()
                ),
                "the file is truncated or not an STL; export or download it again",
            ));
        }
        let mut data = bytes.to_vec();
        // Keep stl_io's ASCII probe from taking a "solid…" header for text.
        data[..5].copy_from_slice(b"     ");
        stl_io::read_stl(&mut Cursor::new(data))
            .map_err(|e| err(MeshErrorKind::Parse, format!("malformed binary STL: {e}"), "re-export the STL"))?
    };
    let mut mesh = Mesh::empty(path);
    mesh.positions = indexed.vertices.iter().map(|v| Vec3::from_array(v.0)).collect();
    mesh.triangles = indexed.faces.iter().map(|f| f.vertices.map(|i| i as u32)).collect();
    mesh.tri_material = vec![0; mesh.triangles.len()];
    mesh.materials = vec![Material::plain("default")];
    mesh.uv_coverage = UvCoverage::None;
    Ok(mesh)
}
