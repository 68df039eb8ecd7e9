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
//!
//! [`load`] decodes the text, hands each statement to a [`Reader`] (one
//! method per statement kind) and assembles the mesh at the end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::SplitWhitespace;

use glam::{Vec2, Vec3};

use super::triangulate::triangulate;
use super::{Material, Mesh, MeshError, MeshErrorKind, ObjFace, ObjLayout, UvCoverage};

pub(super) fn load(path: &Path, bytes: &[u8]) -> Result<Mesh, MeshError> {
    let text = decode(path, bytes)?;
    let mut reader = Reader::new(path);
    // A trailing `\\` continues the statement on the next line (as tobj and
    // Blender read it); errors name the statement's first line.
    let (mut pending, mut first) = (String::new(), 0);
    for (i, raw) in text.lines().enumerate() {
        let continued = raw.trim_end().strip_suffix('\\');
        match (continued, pending.is_empty()) {
            (Some(head), _) => {
                if pending.is_empty() {
                    first = i + 1;
                }
                pending.push_str(head);
                pending.push(' ');
            }
            (None, true) => reader.statement(i + 1, raw)?,
            (None, false) => {
                pending.push_str(raw);
                reader.statement(first, &pending)?;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        reader.statement(first, &pending)?;
    }
    reader.finish()
}

fn not_obj(path: &Path, why: &str) -> MeshError {
    MeshError::new(MeshErrorKind::NotObj, path, format!("not a Wavefront OBJ: {why}"), "texstyle reads text .obj files")
}

/// The file as text, without a UTF-8 byte-order mark (Windows editors), which
/// would hide the first statement.
fn decode<'b>(path: &Path, bytes: &'b [u8]) -> Result<&'b str, MeshError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) if !t.contains('\0') => t,
        _ => return Err(not_obj(path, "the file holds binary data")),
    };
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// What the reader has gathered so far, statement by statement.
struct Reader<'p> {
    path: &'p Path,
    /// The OBJ's folder, against which `mtllib` names are resolved.
    base: PathBuf,
    mesh: Mesh,
    /// `v x y z r g b` colours, as written (0–1 or 0–255).
    colors: Vec<[f32; 3]>,
    /// Geometry statements seen (to tell an OBJ from some other text file).
    statements: usize,
    faces: u32,
    /// Where the first face with and without UVs are (for the mixed-UV message).
    line_with_uv: Option<usize>,
    line_without_uv: Option<usize>,
    /// Materials the `mtllib` files define, by name (the first definition wins).
    library: HashMap<String, Material>,
    libraries_named: bool,
    /// Materials used so far, by name, as indices into `mesh.materials`.
    material_ids: HashMap<String, u32>,
    /// The material of the last `usemtl`.
    current: Option<u32>,
    /// The face being read: (position, texture coordinate) per corner.
    corners: Vec<(u32, Option<u32>)>,
    layout: ObjLayout,
    /// The `o`, `g` and `s` statements in force (indices into `layout.statements`).
    object: Option<u32>,
    group: Option<u32>,
    smoothing: Option<u32>,
}

impl<'p> Reader<'p> {
    fn new(path: &'p Path) -> Reader<'p> {
        Reader {
            path,
            base: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            mesh: Mesh::empty(path),
            colors: Vec::new(),
            statements: 0,
            faces: 0,
            line_with_uv: None,
            line_without_uv: None,
            library: HashMap::new(),
            libraries_named: false,
            material_ids: HashMap::new(),
            current: None,
            corners: Vec::new(),
            layout: ObjLayout::default(),
            object: None,
            group: None,
            smoothing: None,
        }
    }

    /// An error at line `line` of the OBJ.
    fn err(&self, kind: MeshErrorKind, line: usize, msg: String, hint: &str) -> MeshError {
        MeshError::new(kind, self.path, msg, hint).at_line(line)
    }

    /// Reads one line (`raw`, the `line_no`th): comments dropped, dispatched on its keyword.
    fn statement(&mut self, line_no: usize, raw: &str) -> Result<(), MeshError> {
        let line = raw.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else { return Ok(()) };
        match keyword {
            "v" | "vt" => self.vertex(keyword, words, line_no, raw)?,
            "f" => self.face(words, line_no, raw)?,
            "mtllib" => self.mtllib(line)?,
            "usemtl" => self.usemtl(line, line_no),
            "vn" => self.normal(words, line_no, raw)?,
            "o" | "g" | "s" => self.grouping(keyword, line),
            "vp" | "l" | "p" => {}
            _ => return Ok(()),
        }
        self.statements += 1;
        Ok(())
    }

    /// `v x y z [r g b]` or `vt u [v [w]]`.
    fn vertex(&mut self, keyword: &str, words: SplitWhitespace, line_no: usize, raw: &str) -> Result<(), MeshError> {
        let mut xs = Vec::with_capacity(6);
        for w in words {
            let x: f32 = w
                .parse()
                .map_err(|_| self.err(MeshErrorKind::Parse, line_no, format!("'{w}' is not a number in '{}'", raw.trim()), ""))?;
            if !x.is_finite() {
                return Err(self.err(MeshErrorKind::NonFinite, line_no, format!("coordinate '{w}' is not finite"), "fix or remove the vertex"));
            }
            xs.push(x);
        }
        if keyword == "v" {
            if xs.len() < 3 {
                return Err(self.err(MeshErrorKind::Parse, line_no, format!("vertex '{}' has fewer than 3 coordinates", raw.trim()), ""));
            }
            self.mesh.positions.push(Vec3::new(xs[0], xs[1], xs[2]));
            // `v x y z r g b` (MeshLab, slicers): colours in [0, 1].
            if xs.len() >= 6 {
                self.colors.push([xs[3], xs[4], xs[5]]);
            }
        } else {
            // A single `vt u` is legal (v defaults to 0).
            self.mesh.texcoords.push(Vec2::new(xs.first().copied().unwrap_or(0.0), xs.get(1).copied().unwrap_or(0.0)));
        }
        Ok(())
    }

    /// `f v[/vt[/vn]] …`: checked, kept as written in the layout, then
    /// triangulated into the mesh.
    fn face(&mut self, words: SplitWhitespace, line_no: usize, raw: &str) -> Result<(), MeshError> {
        let (face, with_uv) = self.face_corners(words, line_no)?;
        if !face.normals.is_empty() && face.normals.len() != face.positions.len() {
            return Err(self.err(MeshErrorKind::Parse, line_no, "some corners of this face have normals and some do not".into(), "give every corner a normal, or none"));
        }
        self.layout.faces.push(face);
        if self.corners.len() < 3 {
            return Err(self.err(MeshErrorKind::Parse, line_no, format!("face '{}' has fewer than 3 corners", raw.trim()), ""));
        }
        if with_uv != 0 && with_uv != self.corners.len() {
            return Err(self.err(
                MeshErrorKind::MixedUvs,
                line_no,
                "some corners of this face have texture coordinates and some do not".into(),
                "give every corner UVs (or none), or pass --uv auto",
            ));
        }
        let has_uv = with_uv > 0;
        if has_uv {
            self.line_with_uv.get_or_insert(line_no);
        } else {
            self.line_without_uv.get_or_insert(line_no);
        }
        let material = self.face_material();
        self.push_triangles(has_uv, material);
        self.faces += 1;
        Ok(())
    }

    /// Resolves a face's corners into `self.corners` and the face as written;
    /// also returns how many corners have texture coordinates.
    fn face_corners(&mut self, words: SplitWhitespace, line_no: usize) -> Result<(ObjFace, usize), MeshError> {
        self.corners.clear();
        let mut with_uv = 0;
        let mut face = ObjFace { object: self.object, group: self.group, smoothing: self.smoothing, ..Default::default() };
        let path = self.path;
        let located = |(k, m, h): (MeshErrorKind, String, &str)| MeshError::new(k, path, m, h).at_line(line_no);
        for corner in words {
            let mut parts = corner.split('/');
            let v = resolve_index(parts.next().unwrap_or(""), self.mesh.positions.len(), "vertex").map_err(located)?;
            let vt = match parts.next().filter(|t| !t.is_empty()) {
                Some(t) => {
                    with_uv += 1;
                    Some(resolve_index(t, self.mesh.texcoords.len(), "texture coordinate").map_err(located)?)
                }
                None => None,
            };
            if let Some(n) = parts.next().filter(|t| !t.is_empty()) {
                face.normals.push(resolve_index(n, self.layout.normals.len(), "normal").map_err(located)?);
            }
            self.corners.push((v, vt));
            face.positions.push(v);
        }
        Ok((face, with_uv))
    }

    /// The material of the face being read: the last `usemtl`'s, or a plain
    /// default one for faces before any `usemtl`.
    fn face_material(&mut self) -> u32 {
        match self.current {
            Some(m) => m,
            None => *self.material_ids.entry(String::new()).or_insert_with(|| {
                self.mesh.materials.push(Material::plain("default"));
                self.mesh.materials.len() as u32 - 1
            }),
        }
    }

    /// Ear-clips the face in `self.corners` into the mesh's triangles.
    fn push_triangles(&mut self, has_uv: bool, material: u32) {
        let mesh = &mut self.mesh;
        let corners = &self.corners;
        let pos: Vec<Vec3> = corners.iter().map(|c| mesh.positions[c.0 as usize]).collect();
        for [a, b, c] in triangulate(&pos) {
            let (ca, cb, cc) = (corners[a], corners[b], corners[c]);
            mesh.triangles.push([ca.0, cb.0, cc.0]);
            if has_uv {
                mesh.tri_texcoords.push([ca.1.unwrap(), cb.1.unwrap(), cc.1.unwrap()]);
            }
            mesh.tri_material.push(material);
            mesh.tri_polygon.push(self.faces);
        }
    }

    /// `mtllib a.mtl [b.mtl …]`: loads the libraries' materials.
    fn mtllib(&mut self, line: &str) -> Result<(), MeshError> {
        self.libraries_named = true;
        let rest = rest_after(line, "mtllib");
        for mtl_path in library_paths(&self.base, rest) {
            let mats = load_mtl(self.path, &mtl_path, &mut self.mesh.warnings)?;
            for m in mats {
                self.library.entry(m.name.clone()).or_insert(m);
            }
        }
        Ok(())
    }

    /// `usemtl NAME`: the material of the faces that follow; a name no
    /// library defines gets a plain white material and a warning.
    fn usemtl(&mut self, line: &str, line_no: usize) {
        let name = rest_after(line, "usemtl").to_string();
        let id = match self.material_ids.get(&name) {
            Some(&id) => id,
            None => {
                let m = match self.library.get(&name) {
                    Some(m) => m.clone(),
                    None => {
                        self.mesh.warnings.push(format!(
                            "{}:{line_no}: usemtl '{name}' names a material that {}; its faces get a plain white material without texture",
                            self.path.display(),
                            if self.libraries_named { "no mtllib of this file defines" } else { "is not defined (the file has no mtllib line)" }
                        ));
                        Material::plain(&name)
                    }
                };
                self.mesh.materials.push(m);
                let id = self.mesh.materials.len() as u32 - 1;
                self.material_ids.insert(name, id);
                id
            }
        };
        self.current = Some(id);
    }

    /// `vn x y z`, kept for writing the faces back.
    fn normal(&mut self, words: SplitWhitespace, line_no: usize, raw: &str) -> Result<(), MeshError> {
        let xs: Vec<f32> = words.filter_map(|w| w.parse().ok()).collect();
        if xs.len() < 3 || xs.iter().any(|x| !x.is_finite()) {
            return Err(self.err(MeshErrorKind::Parse, line_no, format!("normal '{}' needs 3 finite numbers", raw.trim()), ""));
        }
        self.layout.normals.push(Vec3::new(xs[0], xs[1], xs[2]));
        Ok(())
    }

    /// `o`, `g` or `s`: in force for the faces that follow.
    fn grouping(&mut self, keyword: &str, line: &str) {
        self.layout.statements.push(line.trim().to_string());
        let id = Some(self.layout.statements.len() as u32 - 1);
        match keyword {
            "o" => self.object = id,
            "g" => self.group = id,
            _ => self.smoothing = id,
        }
    }

    /// The mesh, once every line is read: whether it is an OBJ with faces,
    /// its UV coverage, layout and vertex colours.
    fn finish(self) -> Result<Mesh, MeshError> {
        let Reader { path, mut mesh, mut colors, statements, faces, line_with_uv, line_without_uv, layout, .. } = self;
        if statements == 0 {
            return Err(not_obj(path, "no v/vt/f statements found"));
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
    let bytes = crate::input::read(mtl_path, crate::input::MESH_MAX_BYTES).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::InvalidInput => e.to_string(),
            _ if mtl_path.exists() => format!("cannot be read: {e}"),
            _ => "not found".into(),
        };
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
