//! Step 1 of the data path: a Wavefront OBJ (+ MTL + textures) in memory.
//!
//! [`Mesh::load`] reads the file with `tobj` (polygons fan-triangulated) and
//! keeps, per triangle corner, one index into the positions and one into the
//! texture coordinates, so vertices are split at UV seams without losing which
//! corners share a position (the rasterizer relies on that for watertight
//! edges, the exporter for writing the original geometry back).
//!
//! Every material group is kept with its `map_Kd` texture (paths relative to
//! the MTL file). Positions stay in the file's coordinates;
//! [`Mesh::normalization`] gives the transform into the [-1, 1] cube used for
//! rendering (see [`crate::conventions`]).
//!
//! Bad input gets a [`MeshError`] naming the file (and line, where there is
//! one) and what to do about it. tobj reports no line numbers and accepts
//! some broken files silently (faces mixing UVs and no UVs, NaN), so a light
//! line scan runs first and locates those problems.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use glam::{Mat4, Vec2, Vec3};

use crate::image_io::Image;

/// What went wrong while loading a mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshErrorKind {
    /// The file is missing or unreadable.
    Io,
    /// The file is not a text Wavefront OBJ.
    NotObj,
    /// A statement could not be parsed.
    Parse,
    /// A face refers to a vertex or texture coordinate that does not exist.
    IndexOutOfRange,
    /// A coordinate is NaN or infinite.
    NonFinite,
    /// Some faces have texture coordinates and others do not.
    MixedUvs,
    /// The file has vertices but no faces.
    NoFaces,
    /// All vertices coincide: nothing to render.
    Degenerate,
    /// A material library (MTL) is missing or malformed.
    Material,
    /// A texture image is missing or cannot be decoded.
    Texture,
}

/// A mesh loading error: the file, the line if known, what is wrong and a hint.
#[derive(Clone, Debug)]
pub struct MeshError {
    pub kind: MeshErrorKind,
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub hint: &'static str,
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for MeshError {}

/// A material group: its name, diffuse colour and optional texture.
#[derive(Clone, Debug)]
pub struct Material {
    pub name: String,
    /// `Kd`, white when absent.
    pub diffuse: [f32; 3],
    /// The `map_Kd` file, resolved relative to the MTL file.
    pub texture_path: Option<PathBuf>,
    pub texture: Option<Image>,
}

/// A triangle mesh as read from an OBJ file.
#[derive(Clone, Debug)]
pub struct Mesh {
    /// The OBJ file it came from.
    pub path: PathBuf,
    /// Vertex positions in the file's coordinates, identical positions merged.
    pub positions: Vec<Vec3>,
    /// Texture coordinates (`vt`, origin bottom-left; see [`crate::conventions`]).
    pub texcoords: Vec<Vec2>,
    /// Per triangle, three indices into `positions`.
    pub triangles: Vec<[u32; 3]>,
    /// Per triangle, three indices into `texcoords`; empty when the mesh has no UVs.
    pub tri_texcoords: Vec<[u32; 3]>,
    /// Per triangle, an index into `materials`.
    pub tri_material: Vec<u32>,
    pub materials: Vec<Material>,
}

impl Mesh {
    /// Loads an OBJ file, its MTL libraries and their `map_Kd` textures.
    pub fn load(path: impl AsRef<Path>) -> Result<Mesh, MeshError> {
        let path = path.as_ref();
        let err = |kind, line, message: String, hint| MeshError {
            kind,
            path: path.to_path_buf(),
            line,
            message,
            hint,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            err(MeshErrorKind::Io, None, format!("cannot read the mesh: {e}"), "check the path")
        })?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) if !t.contains('\0') => t,
            _ => {
                return Err(err(
                    MeshErrorKind::NotObj,
                    None,
                    "not a Wavefront OBJ: the file holds binary data".into(),
                    "texstyle reads text .obj files",
                ))
            }
        };
        let scan = scan_obj(text).map_err(|(kind, line, message, hint)| err(kind, Some(line), message, hint))?;
        if scan.statements == 0 {
            return Err(err(
                MeshErrorKind::NotObj,
                None,
                "not a Wavefront OBJ: no v/vt/f statements found".into(),
                "texstyle reads text .obj files",
            ));
        }
        if scan.faces == 0 {
            return Err(err(
                MeshErrorKind::NoFaces,
                None,
                format!("the mesh has {} vertices but no faces", scan.vertices),
                "a point cloud cannot be textured; export the mesh with its faces",
            ));
        }

        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mtl_error = std::cell::RefCell::new(None);
        let options = tobj::LoadOptions {
            triangulate: true,
            single_index: false,
            ignore_points: true,
            ignore_lines: true,
            ..Default::default()
        };
        let loaded = tobj::load_obj_buf(&mut std::io::Cursor::new(text.as_bytes()), &options, |mtl| {
            let mtl_path = base.join(mtl);
            let result = tobj::load_mtl(&mtl_path);
            if let Err(e) = &result {
                let why = if mtl_path.exists() { format!("malformed ({e})") } else { "not found".into() };
                mtl_error.borrow_mut().get_or_insert((mtl_path.clone(), why));
            }
            // Texture paths are relative to the MTL file, which may live elsewhere.
            result.map(|(mut mats, names)| {
                for m in &mut mats {
                    let dir = mtl_path.parent().unwrap_or(Path::new("."));
                    if let Some(t) = &m.diffuse_texture {
                        m.diffuse_texture = Some(dir.join(texture_file_name(t)).to_string_lossy().into_owned());
                    }
                }
                (mats, names)
            })
        });
        let (models, materials) = loaded.map_err(|e| {
            err(MeshErrorKind::Parse, None, format!("cannot parse the OBJ: {e}"), "check that it is a valid OBJ file")
        })?;
        if let Some((mtl_path, why)) = mtl_error.into_inner() {
            return Err(err(
                MeshErrorKind::Material,
                None,
                format!("material library {} is {why}", mtl_path.display()),
                "put the .mtl next to the OBJ, or remove its mtllib line",
            ));
        }
        // Err here only means "no mtllib at all": every face gets the default material.
        let tobj_materials = materials.unwrap_or_default();

        let mut mesh = Mesh {
            path: path.to_path_buf(),
            positions: Vec::new(),
            texcoords: Vec::new(),
            triangles: Vec::new(),
            tri_texcoords: Vec::new(),
            tri_material: Vec::new(),
            materials: Vec::new(),
        };
        let mut position_ids: HashMap<[u32; 3], u32> = HashMap::new();
        let mut material_ids: HashMap<Option<usize>, u32> = HashMap::new();
        for model in &models {
            let m = &model.mesh;
            let remap: Vec<u32> = m
                .positions
                .chunks_exact(3)
                .map(|p| {
                    let key = [p[0].to_bits(), p[1].to_bits(), p[2].to_bits()];
                    *position_ids.entry(key).or_insert_with(|| {
                        mesh.positions.push(Vec3::new(p[0], p[1], p[2]));
                        mesh.positions.len() as u32 - 1
                    })
                })
                .collect();
            let uv_base = mesh.texcoords.len() as u32;
            mesh.texcoords.extend(m.texcoords.chunks_exact(2).map(|t| Vec2::new(t[0], t[1])));
            let material = *material_ids.entry(m.material_id).or_insert_with(|| {
                mesh.materials.push(match m.material_id.and_then(|i| tobj_materials.get(i)) {
                    Some(tm) => Material {
                        name: tm.name.clone(),
                        diffuse: tm.diffuse.unwrap_or([1.0; 3]),
                        texture_path: tm.diffuse_texture.as_ref().map(PathBuf::from),
                        texture: None,
                    },
                    None => Material { name: "default".into(), diffuse: [1.0; 3], texture_path: None, texture: None },
                });
                mesh.materials.len() as u32 - 1
            });
            for (k, tri) in m.indices.chunks_exact(3).enumerate() {
                mesh.triangles.push([remap[tri[0] as usize], remap[tri[1] as usize], remap[tri[2] as usize]]);
                mesh.tri_material.push(material);
                if scan.faces_with_uv > 0 {
                    let t = &m.texcoord_indices[3 * k..3 * k + 3];
                    mesh.tri_texcoords.push([uv_base + t[0], uv_base + t[1], uv_base + t[2]]);
                }
            }
        }
        if mesh.triangles.is_empty() {
            return Err(err(MeshErrorKind::NoFaces, None, "the mesh has no triangles".into(), ""));
        }
        let (lo, hi) = mesh.bounds();
        if (hi - lo).max_element() <= 0.0 {
            return Err(err(
                MeshErrorKind::Degenerate,
                None,
                "all vertices are at the same point".into(),
                "the mesh has no extent to render",
            ));
        }
        for mat in &mut mesh.materials {
            let Some(tex_path) = &mat.texture_path else { continue };
            let image = Image::load(tex_path).map_err(|e| {
                let why = match e {
                    image::ImageError::IoError(io) if !tex_path.is_file() => format!("cannot be read: {io}"),
                    // A truncated file surfaces as an I/O error from the decoder.
                    other => format!("cannot be decoded: {other}"),
                };
                err(
                    MeshErrorKind::Texture,
                    None,
                    format!("texture {} of material '{}' {why}", tex_path.display(), mat.name),
                    "fix the map_Kd line of the .mtl or the image file",
                )
            })?;
            mat.texture = Some(image);
        }
        Ok(mesh)
    }

    /// True when every triangle has texture coordinates.
    pub fn has_uvs(&self) -> bool {
        !self.tri_texcoords.is_empty()
    }

    /// Axis-aligned bounding box `(min, max)` of the positions.
    pub fn bounds(&self) -> (Vec3, Vec3) {
        self.positions
            .iter()
            .fold((Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY)), |(lo, hi), &p| {
                (lo.min(p), hi.max(p))
            })
    }

    /// The model matrix that moves the bounding-box centre to the origin and
    /// scales the longest side to 2, so the mesh fills the [-1, 1] cube.
    pub fn normalization(&self) -> Mat4 {
        let (lo, hi) = self.bounds();
        let scale = 2.0 / (hi - lo).max_element();
        Mat4::from_scale(Vec3::splat(scale)) * Mat4::from_translation(-(lo + hi) * 0.5)
    }

    /// The three corner UVs of triangle `t` (zeros when the mesh has no UVs).
    pub fn triangle_uvs(&self, t: usize) -> [Vec2; 3] {
        match self.tri_texcoords.get(t) {
            Some(&[a, b, c]) => [self.texcoords[a as usize], self.texcoords[b as usize], self.texcoords[c as usize]],
            None => [Vec2::ZERO; 3],
        }
    }
}

/// `map_Kd` may carry options before the file name (`-s 1 1 1 tex.png`);
/// the file name is the last token.
fn texture_file_name(spec: &str) -> &str {
    spec.split_whitespace().last().unwrap_or(spec)
}

/// What the line scan learned about the file.
struct Scan {
    statements: usize,
    vertices: usize,
    faces: usize,
    faces_with_uv: usize,
}

type ScanError = (MeshErrorKind, usize, String, &'static str);

/// Checks what tobj does not: finite coordinates, face indices in range, and
/// faces that all have or all lack texture coordinates — with line numbers.
fn scan_obj(text: &str) -> Result<Scan, ScanError> {
    let mut s = Scan { statements: 0, vertices: 0, faces: 0, faces_with_uv: 0 };
    let mut texcoords = 0usize;
    let mut first_face_uv: Option<(usize, bool)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let mut words = raw.split_whitespace();
        let Some(keyword) = words.next() else { continue };
        match keyword {
            "v" | "vt" => {
                s.statements += 1;
                let want = if keyword == "v" { 3 } else { 2 };
                let mut count = 0;
                for w in words.by_ref().take(want) {
                    let x: f32 = w.parse().map_err(|_| {
                        (MeshErrorKind::Parse, line_no, format!("'{w}' is not a number in '{}'", raw.trim()), "")
                    })?;
                    if !x.is_finite() {
                        return Err((
                            MeshErrorKind::NonFinite,
                            line_no,
                            format!("coordinate '{w}' is not finite"),
                            "fix or remove the vertex",
                        ));
                    }
                    count += 1;
                }
                // A single `vt u` is legal (v defaults to 0); a vertex needs xyz.
                if keyword == "v" && count < 3 {
                    return Err((MeshErrorKind::Parse, line_no, format!("vertex '{}' has fewer than 3 coordinates", raw.trim()), ""));
                }
                if keyword == "v" {
                    s.vertices += 1;
                } else {
                    texcoords += 1;
                }
            }
            "f" => {
                s.statements += 1;
                let corners: Vec<&str> = words.collect();
                if corners.len() < 3 {
                    return Err((MeshErrorKind::Parse, line_no, format!("face '{}' has fewer than 3 corners", raw.trim()), ""));
                }
                let mut with_uv = 0;
                for corner in &corners {
                    let mut parts = corner.split('/');
                    let v = parts.next().unwrap_or("");
                    check_index(v, s.vertices, "vertex", line_no)?;
                    if let Some(vt) = parts.next().filter(|t| !t.is_empty()) {
                        check_index(vt, texcoords, "texture coordinate", line_no)?;
                        with_uv += 1;
                    }
                }
                if with_uv != 0 && with_uv != corners.len() {
                    return Err((
                        MeshErrorKind::MixedUvs,
                        line_no,
                        "some corners of this face have texture coordinates and some do not".into(),
                        "give every face UVs (or none), e.g. by unwrapping in Blender",
                    ));
                }
                let has_uv = with_uv > 0;
                match first_face_uv {
                    None => first_face_uv = Some((line_no, has_uv)),
                    Some((first, first_has)) if first_has != has_uv => {
                        let (with, without) = if has_uv { (line_no, first) } else { (first, line_no) };
                        return Err((
                            MeshErrorKind::MixedUvs,
                            line_no,
                            format!("faces mix texture coordinates (line {with} has UVs) and none (line {without})"),
                            "give every face UVs (or none), e.g. by unwrapping in Blender",
                        ));
                    }
                    _ => {}
                }
                s.faces += 1;
                s.faces_with_uv += has_uv as usize;
            }
            "vn" | "vp" | "o" | "g" | "s" | "usemtl" | "mtllib" | "l" | "p" => s.statements += 1,
            _ => {}
        }
    }
    Ok(s)
}

/// Checks one 1-based (or negative, relative) OBJ index against `count`
/// elements defined so far.
fn check_index(word: &str, count: usize, what: &str, line: usize) -> Result<(), ScanError> {
    let i: i64 = word
        .parse()
        .map_err(|_| (MeshErrorKind::Parse, line, format!("'{word}' is not a valid {what} index"), ""))?;
    let resolved = if i < 0 { count as i64 + i + 1 } else { i };
    if resolved < 1 || resolved > count as i64 {
        return Err((
            MeshErrorKind::IndexOutOfRange,
            line,
            format!("{what} index {i} is out of range: only {count} defined before this line"),
            "the file is truncated or its indices are wrong",
        ));
    }
    Ok(())
}
