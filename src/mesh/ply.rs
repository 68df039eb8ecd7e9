//! PLY, ASCII and binary (`ply-rs-bw`): positions, faces (polygons are
//! ear-clipped), optional vertex colours (`red green blue`, bytes or floats)
//! and UVs (per vertex `s t` / `u v` / `texture_u texture_v`, or per face
//! `texcoord` lists as MeshLab writes them, with its `comment TextureFile`).

use std::path::Path;

use glam::{Vec2, Vec3};
use ply_rs_bw::parser::Parser;
use ply_rs_bw::ply::{DefaultElement, Ply, Property};

use super::triangulate::triangulate;
use super::{Material, Mesh, MeshError, MeshErrorKind, UvCoverage};

fn scalar(e: &DefaultElement, names: &[&str]) -> Option<f32> {
    names.iter().find_map(|n| e.get(*n)).and_then(Property::to_f32_lossy)
}

fn float_list(p: &Property) -> Option<Vec<f32>> {
    match p {
        Property::ListFloat(v) => Some(v.clone()),
        Property::ListDouble(v) => Some(v.iter().map(|&x| x as f32).collect()),
        _ => None,
    }
}

pub(super) fn load(path: &Path, bytes: &[u8]) -> Result<Mesh, MeshError> {
    let ply = parse(path, bytes)?;
    let empty = Vec::new();
    let vertices = ply.payload.get("vertex").unwrap_or(&empty);
    let faces = ply.payload.get("face").unwrap_or(&empty);
    check_counts(path, &ply)?;

    let mut mesh = Mesh::empty(path);
    let (colors, vertex_uvs) = read_vertices(path, vertices, &mut mesh)?;
    mesh.materials = vec![Material::plain("default")];
    let texture_file = ply.header.comments.iter().find_map(|c| c.trim().strip_prefix("TextureFile").map(|f| f.trim().to_string()));
    if let Some(file) = texture_file {
        mesh.materials[0].texture_path = Some(path.parent().unwrap_or(Path::new(".")).join(file.replace('\\', "/")));
    }
    let per_vertex_uv = !vertex_uvs.is_empty() && vertex_uvs.len() == mesh.positions.len();
    if per_vertex_uv {
        mesh.texcoords = vertex_uvs;
    }
    let faces_with_uv = read_faces(path, faces, &mut mesh, per_vertex_uv)?;
    mesh.uv_coverage = if per_vertex_uv || (faces_with_uv == faces.len() && !faces.is_empty()) {
        UvCoverage::All
    } else if faces_with_uv == 0 {
        UvCoverage::None
    } else {
        mesh.tri_texcoords.clear();
        UvCoverage::Partial(format!("{faces_with_uv} of {} faces have texcoord lists", faces.len()))
    };
    if colors.len() == mesh.positions.len() {
        mesh.vertex_colors = colors;
    }
    Ok(mesh)
}

/// The file through `ply-rs-bw`, its failures said as what is wrong with the file.
fn parse(path: &Path, bytes: &[u8]) -> Result<Ply<DefaultElement>, MeshError> {
    let err = |kind, msg: String, hint: &str| MeshError::new(kind, path, msg, hint);
    if !bytes.starts_with(b"ply") {
        return Err(err(MeshErrorKind::NotObj, "not a PLY file: it does not start with 'ply'".into(), "texstyle reads ASCII and binary PLY"));
    }
    let parser = Parser::<DefaultElement>::new();
    parser.read_ply(&mut &bytes[..]).map_err(|e| {
        // The payload ending early is by far the commonest: a truncated
        // download, or a header that announces more elements than there are.
        // The crate's message may span lines (a cause chain); the first says it.
        let full = e.to_string();
        let text = full.lines().next().unwrap_or("").trim_end_matches('.').to_string();
        let truncated = ["Unexpected end of file", "fill whole buffer"].iter().any(|w| full.contains(w));
        // The ASCII reader does not take "nan"/"inf": say what is wrong with the line.
        let line = e.line().and_then(|l| bytes.split(|&b| b == b'\n').nth(l.checked_sub(1)?));
        let non_finite = line.is_some_and(|l| {
            String::from_utf8_lossy(l).split_whitespace().any(|w| w.parse::<f32>().is_ok_and(|x| !x.is_finite()))
        });
        if non_finite {
            err(MeshErrorKind::NonFinite, format!("{text}: a coordinate is not finite"), "fix or remove the vertex")
        } else if truncated {
            err(
                MeshErrorKind::Truncated,
                format!("the PLY ends before the elements its header announces ({text})"),
                "the file is truncated or its header counts are wrong; export it again",
            )
        } else {
            err(MeshErrorKind::Parse, format!("malformed PLY: {text}"), "export it again")
        }
    })
}

/// Every element the header announces is in the payload, as many times as announced.
fn check_counts(path: &Path, ply: &Ply<DefaultElement>) -> Result<(), MeshError> {
    for (name, def) in &ply.header.elements {
        let got = ply.payload.get(name).map_or(0, Vec::len);
        if got != def.count {
            return Err(MeshError::new(
                MeshErrorKind::Truncated,
                path,
                format!("the header announces {} '{name}' elements but the file holds {got}", def.count),
                "the file is truncated or its header counts are wrong; export it again",
            ));
        }
    }
    Ok(())
}

/// Pushes the vertices' positions into `mesh`; returns the colours (0–1)
/// and per-vertex UVs of the vertices that have them.
fn read_vertices(path: &Path, vertices: &[DefaultElement], mesh: &mut Mesh) -> Result<(Vec<[f32; 3]>, Vec<Vec2>), MeshError> {
    let mut colors = Vec::with_capacity(vertices.len());
    let mut vertex_uvs = Vec::with_capacity(vertices.len());
    for (i, v) in vertices.iter().enumerate() {
        let (Some(x), Some(y), Some(z)) = (scalar(v, &["x"]), scalar(v, &["y"]), scalar(v, &["z"])) else {
            return Err(MeshError::new(MeshErrorKind::Parse, path, format!("vertex {i} lacks an x, y or z property"), "export positions as x, y, z"));
        };
        mesh.positions.push(Vec3::new(x, y, z));
        let rgb = ["red", "green", "blue"].map(|c| v.get(c).or_else(|| v.get(&c[..1])));
        if let [Some(r), Some(g), Some(b)] = rgb {
            // Bytes are 0–255, floats already 0–1.
            let unit = |p: &Property| match p {
                Property::Float(_) | Property::Double(_) => p.to_f32_lossy().unwrap_or(0.0),
                _ => p.to_f32_lossy().unwrap_or(0.0) / 255.0,
            };
            colors.push([unit(r), unit(g), unit(b)]);
        }
        let u = scalar(v, &["s", "u", "texture_u"]);
        let t = scalar(v, &["t", "v", "texture_v"]);
        if let (Some(u), Some(t)) = (u, t) {
            vertex_uvs.push(Vec2::new(u, t));
        }
    }
    Ok((colors, vertex_uvs))
}

/// Ear-clips the faces into `mesh`'s triangles, with per-face `texcoord`
/// lists (appended to the texture coordinates) or the per-vertex UVs;
/// returns how many faces had a `texcoord` list.
fn read_faces(path: &Path, faces: &[DefaultElement], mesh: &mut Mesh, per_vertex_uv: bool) -> Result<usize, MeshError> {
    let err = |kind, msg: String, hint: &str| MeshError::new(kind, path, msg, hint);
    let n = mesh.positions.len();
    let mut faces_with_uv = 0;
    for (f, face) in faces.iter().enumerate() {
        let Some(ids) = ["vertex_indices", "vertex_index"].iter().find_map(|k| face.get(*k)).and_then(|p| p.to_u32_list()) else {
            return Err(err(MeshErrorKind::Parse, format!("face {f} has no vertex_indices list"), "export faces as vertex_indices"));
        };
        if ids.len() < 3 {
            return Err(err(MeshErrorKind::Parse, format!("face {f} has {} corners, fewer than 3", ids.len()), "remove degenerate faces"));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= n) {
            return Err(err(
                MeshErrorKind::IndexOutOfRange,
                format!("face {f} refers to vertex {bad} but the file has only {n} vertices"),
                "the file is truncated or its indices are wrong",
            ));
        }
        let wedge = face.get("texcoord").and_then(float_list).filter(|l| l.len() == 2 * ids.len());
        let uv_base = mesh.texcoords.len() as u32;
        if let Some(l) = &wedge {
            mesh.texcoords.extend(l.chunks_exact(2).map(|c| Vec2::new(c[0], c[1])));
            faces_with_uv += 1;
        }
        let pos: Vec<Vec3> = ids.iter().map(|&i| mesh.positions[i as usize]).collect();
        for [a, b, c] in triangulate(&pos) {
            mesh.triangles.push([ids[a], ids[b], ids[c]]);
            mesh.tri_material.push(0);
            mesh.tri_polygon.push(f as u32);
            if wedge.is_some() {
                mesh.tri_texcoords.push([uv_base + a as u32, uv_base + b as u32, uv_base + c as u32]);
            } else if per_vertex_uv {
                mesh.tri_texcoords.push([ids[a], ids[b], ids[c]]);
            }
        }
    }
    Ok(faces_with_uv)
}
