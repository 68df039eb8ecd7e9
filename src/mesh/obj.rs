//! Wavefront OBJ + MTL, read line by line (not through tobj, which reports
//! no line numbers, keeps the last word of `map_Kd` as the file name, misses
//! `mtllib` behind a UTF-8 byte-order mark and fan-triangulates concave
//! polygons).
//!
//! What real exporters write and this reader accepts: `map_Kd` file names
//! with spaces (Blender writes them unquoted), `map_Kd` options (`-s`, `-o`,
//! `-bm`, …) before the name, Windows backslashes in paths, a BOM, negative
//! (relative) indices, `v x y z r g b` vertex colours. Positions keep their
//! file order and count (unreferenced ones included), so an export writes the
//! same vertices back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use glam::{Vec2, Vec3};

use super::triangulate::triangulate;
use super::{Material, Mesh, MeshError, MeshErrorKind, ObjFace, ObjLayout, UvCoverage};

pub(super) fn load(path: &Path, bytes: &[u8]) -> Result<Mesh, MeshError> {
    let not_obj = |why: &str| {
        MeshError::new(MeshErrorKind::NotObj, path, format!("not a Wavefront OBJ: {why}"), "texstyle reads text .obj files")
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) if !t.contains('\0') => t,
        _ => return Err(not_obj("the file holds binary data")),
    };
    // A UTF-8 byte-order mark (Windows editors) would hide the first statement.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let perr = |kind, line: usize, msg: String, hint: &str| MeshError::new(kind, path, msg, hint).at_line(line);

    let mut mesh = Mesh::empty(path);
    let mut colors: Vec<[f32; 3]> = Vec::new();
    let mut statements = 0usize;
    let mut faces = 0u32;
    // Where the first face with and without UVs are (for the mixed-UV message).
    let (mut line_with_uv, mut line_without_uv) = (None, None);
    let mut library: HashMap<String, Material> = HashMap::new();
    let mut libraries_named = false;
    let mut material_ids: HashMap<String, u32> = HashMap::new();
    let mut current: Option<u32> = None;
    let mut corners: Vec<(u32, Option<u32>)> = Vec::new();
    let mut layout = ObjLayout::default();
    let (mut object, mut group, mut smoothing) = (None, None, None);

    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else { continue };
        match keyword {
            "v" | "vt" => {
                statements += 1;
                let mut xs = Vec::with_capacity(6);
                for w in words {
                    let x: f32 = w.parse().map_err(|_| {
                        perr(MeshErrorKind::Parse, line_no, format!("'{w}' is not a number in '{}'", raw.trim()), "")
                    })?;
                    if !x.is_finite() {
                        return Err(perr(MeshErrorKind::NonFinite, line_no, format!("coordinate '{w}' is not finite"), "fix or remove the vertex"));
                    }
                    xs.push(x);
                }
                if keyword == "v" {
                    if xs.len() < 3 {
                        return Err(perr(MeshErrorKind::Parse, line_no, format!("vertex '{}' has fewer than 3 coordinates", raw.trim()), ""));
                    }
                    mesh.positions.push(Vec3::new(xs[0], xs[1], xs[2]));
                    // `v x y z r g b` (MeshLab, slicers): colours in [0, 1].
                    if xs.len() >= 6 {
                        colors.push([xs[3], xs[4], xs[5]]);
                    }
                } else {
                    // A single `vt u` is legal (v defaults to 0).
                    mesh.texcoords.push(Vec2::new(xs.first().copied().unwrap_or(0.0), xs.get(1).copied().unwrap_or(0.0)));
                }
            }
            "f" => {
                statements += 1;
                corners.clear();
                let mut with_uv = 0;
                let mut face = ObjFace { object, group, smoothing, ..Default::default() };
                for corner in words {
                    let mut parts = corner.split('/');
                    let v = resolve_index(parts.next().unwrap_or(""), mesh.positions.len(), "vertex")
                        .map_err(|(k, m, h)| perr(k, line_no, m, h))?;
                    let vt = match parts.next().filter(|t| !t.is_empty()) {
                        Some(t) => {
                            with_uv += 1;
                            Some(resolve_index(t, mesh.texcoords.len(), "texture coordinate").map_err(|(k, m, h)| perr(k, line_no, m, h))?)
                        }
                        None => None,
                    };
                    if let Some(n) = parts.next().filter(|t| !t.is_empty()) {
                        face.normals.push(resolve_index(n, layout.normals.len(), "normal").map_err(|(k, m, h)| perr(k, line_no, m, h))?);
                    }
                    corners.push((v, vt));
                    face.positions.push(v);
                }
                if !face.normals.is_empty() && face.normals.len() != face.positions.len() {
                    return Err(perr(MeshErrorKind::Parse, line_no, "some corners of this face have normals and some do not".into(), "give every corner a normal, or none"));
                }
                layout.faces.push(face);
                if corners.len() < 3 {
                    return Err(perr(MeshErrorKind::Parse, line_no, format!("face '{}' has fewer than 3 corners", raw.trim()), ""));
                }
                if with_uv != 0 && with_uv != corners.len() {
                    return Err(perr(
                        MeshErrorKind::MixedUvs,
                        line_no,
                        "some corners of this face have texture coordinates and some do not".into(),
                        "give every corner UVs (or none), or pass --uv auto",
                    ));
                }
                let has_uv = with_uv > 0;
                if has_uv {
                    line_with_uv.get_or_insert(line_no);
                } else {
                    line_without_uv.get_or_insert(line_no);
                }
                let material = match current {
                    Some(m) => m,
                    None => *material_ids.entry(String::new()).or_insert_with(|| {
                        mesh.materials.push(Material::plain("default"));
                        mesh.materials.len() as u32 - 1
                    }),
                };
                let pos: Vec<Vec3> = corners.iter().map(|c| mesh.positions[c.0 as usize]).collect();
                for [a, b, c] in triangulate(&pos) {
                    let (ca, cb, cc) = (corners[a], corners[b], corners[c]);
                    mesh.triangles.push([ca.0, cb.0, cc.0]);
                    if has_uv {
                        mesh.tri_texcoords.push([ca.1.unwrap(), cb.1.unwrap(), cc.1.unwrap()]);
                    }
                    mesh.tri_material.push(material);
                    mesh.tri_polygon.push(faces);
                }
                faces += 1;
            }
            "mtllib" => {
                statements += 1;
                libraries_named = true;
                let rest = rest_after(line, "mtllib");
                for mtl_path in library_paths(&base, rest) {
                    let mats = load_mtl(path, &mtl_path, &mut mesh.warnings)?;
                    for m in mats {
                        library.entry(m.name.clone()).or_insert(m);
                    }
                }
            }
            "usemtl" => {
                statements += 1;
                let name = rest_after(line, "usemtl").to_string();
                let id = match material_ids.get(&name) {
                    Some(&id) => id,
                    None => {
                        let m = match library.get(&name) {
                            Some(m) => m.clone(),
                            None => {
                                mesh.warnings.push(format!(
                                    "{}:{line_no}: usemtl '{name}' names a material that {}; its faces get a plain white material without texture",
                                    path.display(),
                                    if libraries_named { "no mtllib of this file defines" } else { "is not defined (the file has no mtllib line)" }
                                ));
                                Material::plain(&name)
                            }
                        };
                        mesh.materials.push(m);
                        let id = mesh.materials.len() as u32 - 1;
                        material_ids.insert(name, id);
                        id
                    }
                };
                current = Some(id);
            }
            "vn" => {
                statements += 1;
                let xs: Vec<f32> = words.filter_map(|w| w.parse().ok()).collect();
                if xs.len() < 3 || xs.iter().any(|x| !x.is_finite()) {
                    return Err(perr(MeshErrorKind::Parse, line_no, format!("normal '{}' needs 3 finite numbers", raw.trim()), ""));
                }
                layout.normals.push(Vec3::new(xs[0], xs[1], xs[2]));
            }
            "o" | "g" | "s" => {
                statements += 1;
                layout.statements.push(line.trim().to_string());
                let id = Some(layout.statements.len() as u32 - 1);
                match keyword {
                    "o" => object = id,
                    "g" => group = id,
                    _ => smoothing = id,
                }
            }
            "vp" | "l" | "p" => statements += 1,
            _ => {}
        }
    }
    if statements == 0 {
        return Err(not_obj("no v/vt/f statements found"));
    }
    if faces == 0 {
        return Err(MeshError::new(
            MeshErrorKind::NoFaces,
            path,
            format!("the mesh has {} vertices but no faces", mesh.positions.len()),
            "a point cloud cannot be textured; export the mesh with its faces",
        ));
    }
    mesh.uv_coverage = match (line_with_uv, line_without_uv) {
        (Some(_), None) => UvCoverage::All,
        (None, _) => UvCoverage::None,
        (Some(w), Some(wo)) => {
            mesh.tri_texcoords.clear();
            UvCoverage::Partial(format!("line {w} has UVs, line {wo} has none"))
        }
    };
    mesh.obj_layout = Some(layout);
    if colors.len() == mesh.positions.len() {
        // Floats in [0, 1] as MeshLab and slicers write them; some tools write 0–255.
        if colors.iter().flatten().any(|&c| c > 1.0) {
            colors.iter_mut().flatten().for_each(|c| *c /= 255.0);
        }
        mesh.vertex_colors = colors;
    }
    Ok(mesh)
}

/// The text after a keyword, trimmed (names may contain spaces).
fn rest_after<'a>(line: &'a str, keyword: &str) -> &'a str {
    line.trim_start().strip_prefix(keyword).unwrap_or("").trim()
}

/// Windows exporters write `textures\wood.png`; `/` works everywhere we run.
fn portable(name: &str) -> String {
    name.replace('\\', "/")
}

/// `mtllib a.mtl b.mtl`, or one name with spaces (`mtllib my model.mtl`):
/// the whole rest wins when that file exists.
fn library_paths(base: &Path, rest: &str) -> Vec<PathBuf> {
    let whole = base.join(portable(rest));
    if whole.is_file() || !rest.contains(char::is_whitespace) {
        return vec![whole];
    }
    rest.split_whitespace().map(|n| base.join(portable(n))).collect()
}

/// Resolves a 1-based (or negative, relative) OBJ index against `count`
/// elements defined so far into a 0-based index.
fn resolve_index(word: &str, count: usize, what: &str) -> Result<u32, (MeshErrorKind, String, &'static str)> {
    let i: i64 = word.parse().map_err(|_| (MeshErrorKind::Parse, format!("'{word}' is not a valid {what} index"), ""))?;
    let resolved = if i < 0 { count as i64 + i + 1 } else { i };
    if resolved < 1 || resolved > count as i64 {
        return Err((
            MeshErrorKind::IndexOutOfRange,
            format!("{what} index {i} is out of range: only {count} defined before this line"),
            "the file is truncated or its indices are wrong",
        ));
    }
    Ok((resolved - 1) as u32)
}

/// `map_Kd` options and how many numbers each takes (at most; `-o`, `-s`, `-t` take 1 to 3).
const MAP_OPTIONS: &[(&str, usize)] = &[
    ("-blendu", 1),
    ("-blendv", 1),
    ("-bm", 1),
    ("-boost", 1),
    ("-cc", 1),
    ("-clamp", 1),
    ("-imfchan", 1),
    ("-mm", 2),
    ("-o", 3),
    ("-s", 3),
    ("-t", 3),
    ("-texres", 1),
    ("-type", 1),
];

/// Splits `map_Kd [options] file name.png` into the options it skipped and
/// the file name, which keeps its inner spaces.
fn split_map_statement(rest: &str) -> (Vec<String>, &str) {
    let mut options = Vec::new();
    let mut s = rest.trim_start();
    loop {
        let word = s.split_whitespace().next().unwrap_or("");
        let Some(&(name, max_args)) = MAP_OPTIONS.iter().find(|(n, _)| *n == word) else { break };
        s = s[word.len()..].trim_start();
        let mut taken = 0;
        while taken < max_args {
            let arg = s.split_whitespace().next().unwrap_or("");
            // -o/-s/-t take 1–3 numbers; on/off and channel arguments are words.
            let numeric = arg.parse::<f32>().is_ok();
            if arg.is_empty() || (!numeric && (taken > 0 || max_args == 3)) {
                break;
            }
            s = s[arg.len()..].trim_start();
            taken += 1;
        }
        options.push(name.to_string());
    }
    (options, s.trim_end())
}

/// Reads an MTL file: `newmtl`, `Kd`, `map_Kd`. Texture paths are resolved
/// relative to the MTL file (which may live elsewhere than the OBJ).
fn load_mtl(obj_path: &Path, mtl_path: &Path, warnings: &mut Vec<String>) -> Result<Vec<Material>, MeshError> {
    let bytes = std::fs::read(mtl_path).map_err(|e| {
        let why = if mtl_path.exists() { format!("cannot be read: {e}") } else { "not found".into() };
        MeshError::new(
            MeshErrorKind::Material,
            obj_path,
            format!("material library {} is {why}", mtl_path.display()),
            "put the .mtl next to the OBJ, or remove its mtllib line",
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let dir = mtl_path.parent().unwrap_or(Path::new("."));
    let merr = |line: usize, msg: String| {
        MeshError::new(MeshErrorKind::Material, mtl_path, msg, "fix the .mtl file").at_line(line)
    };
    let mut mats: Vec<Material> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let keyword = line.split_whitespace().next().unwrap_or("");
        let rest = rest_after(line, keyword);
        match keyword {
            "newmtl" => mats.push(Material::plain(rest)),
            "Kd" => {
                let m = mats.last_mut().ok_or_else(|| merr(i + 1, "Kd before any newmtl".into()))?;
                let v: Vec<f32> = rest.split_whitespace().map(|w| w.parse::<f32>()).collect::<Result<_, _>>()
                    .map_err(|_| merr(i + 1, format!("'Kd {rest}' is not three numbers")))?;
                if v.len() < 3 || v.iter().any(|x| !x.is_finite()) {
                    return Err(merr(i + 1, format!("'Kd {rest}' is not three finite numbers")));
                }
                m.diffuse = [v[0], v[1], v[2]];
            }
            "map_Kd" => {
                let m = mats.last_mut().ok_or_else(|| merr(i + 1, "map_Kd before any newmtl".into()))?;
                let (options, file) = split_map_statement(rest);
                // Scale, offset and turbulence move the texture on the surface; texstyle
                // paints through the plain UVs, so say the texture will sit differently.
                if let Some(o) = options.iter().find(|o| ["-s", "-o", "-t"].contains(&o.as_str())) {
                    warnings.push(format!("{}:{}: map_Kd option {o} is ignored: the texture is read through the plain UVs", mtl_path.display(), i + 1));
                }
                if file.is_empty() {
                    return Err(merr(i + 1, "map_Kd names no file".into()));
                }
                m.texture_path = Some(dir.join(portable(file)));
            }
            _ => {}
        }
    }
    Ok(mats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_statements_keep_spaces_and_skip_options() {
        assert_eq!(split_map_statement("my tex.png"), (vec![], "my tex.png"));
        assert_eq!(split_map_statement("-s 2 2 1 -o 0.5 0.5 wood grain.png"), (vec!["-s".into(), "-o".into()], "wood grain.png"));
        assert_eq!(split_map_statement("-bm 0.3 -s 2 tex.png"), (vec!["-bm".into(), "-s".into()], "tex.png"));
        assert_eq!(split_map_statement("-clamp on -blendu off a.png"), (vec!["-clamp".into(), "-blendu".into()], "a.png"));
        assert_eq!(portable(r"textures\wood.png"), "textures/wood.png");
    }
}
