//! Step 1 of the data path: a triangle mesh with its materials in memory.
//!
//! [`Mesh::load`] picks the reader by file extension: Wavefront OBJ (+ MTL +
//! textures, [`obj`]), STL ([`stl`]), PLY ([`ply`]) and glTF 2.0 / GLB
//! ([`gltf`]). Every reader keeps, per triangle corner, one index into the
//! positions and one into the texture coordinates, so vertices are split at
//! UV seams without losing which corners share a position (the rasterizer
//! relies on that for watertight edges, the exporter for writing the original
//! geometry back). Polygons are triangulated by ear clipping
//! ([`triangulate`]); each triangle remembers the polygon it came from.
//!
//! Positions stay in the file's coordinates and order; [`Mesh::normalization`]
//! gives the transform into the [-1, 1] cube used for rendering (see
//! [`crate::conventions`]). A mesh without texture coordinates gets an
//! automatic atlas from [`Mesh::prepare_uvs`] ([`unwrap`]).
//!
//! Bad input gets a [`MeshError`] naming the file (and line, where there is
//! one) and what to do about it; no reader panics on any input.

mod gltf;
mod obj;
mod ply;
mod stl;
pub mod triangulate;
pub mod unwrap;

use std::fmt;
use std::path::{Path, PathBuf};

use glam::{Mat4, Vec2, Vec3};

use crate::error::Blame;
use crate::image_io::Image;

pub use unwrap::AtlasReport;

/// What went wrong while loading a mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeshErrorKind {
    /// The file is missing or unreadable.
    Io,
    /// The file is not in the format its extension says (or the extension is unknown).
    NotObj,
    /// A statement or record could not be parsed.
    Parse,
    /// The file ends before the data its header or structure announces.
    Truncated,
    /// A face refers to a vertex or texture coordinate that does not exist.
    IndexOutOfRange,
    /// A coordinate is NaN or infinite.
    NonFinite,
    /// Some faces have texture coordinates and others do not.
    MixedUvs,
    /// The mesh has no UVs and `--uv keep` asked to keep them.
    NoUvs,
    /// The file has vertices but no faces.
    NoFaces,
    /// All vertices coincide: nothing to render.
    Degenerate,
    /// A material library (MTL) is missing or malformed.
    Material,
    /// A texture image is missing or cannot be decoded.
    Texture,
    /// A buffer the file refers to (glTF) is missing or too short.
    Buffer,
    /// The automatic UV unwrap failed.
    Unwrap,
}

impl MeshErrorKind {
    /// Whose problem it is: every kind today is something wrong with the
    /// mesh file or the files it names, or an option it cannot meet.
    pub fn blame(self) -> Blame {
        match self {
            MeshErrorKind::Io
            | MeshErrorKind::NotObj
            | MeshErrorKind::Parse
            | MeshErrorKind::Truncated
            | MeshErrorKind::IndexOutOfRange
            | MeshErrorKind::NonFinite
            | MeshErrorKind::MixedUvs
            | MeshErrorKind::NoUvs
            | MeshErrorKind::NoFaces
            | MeshErrorKind::Degenerate
            | MeshErrorKind::Material
            | MeshErrorKind::Texture
            | MeshErrorKind::Buffer
            | MeshErrorKind::Unwrap => Blame::Input,
        }
    }
}

/// A mesh loading error: the file, the line if known, what is wrong and a hint.
#[derive(Clone, Debug)]
pub struct MeshError {
    pub kind: MeshErrorKind,
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub hint: String,
}

impl MeshError {
    pub(crate) fn new(kind: MeshErrorKind, path: &Path, message: impl Into<String>, hint: impl Into<String>) -> MeshError {
        MeshError { kind, path: path.to_path_buf(), line: None, message: message.into(), hint: hint.into() }
    }

    pub(crate) fn at_line(mut self, line: usize) -> MeshError {
        self.line = Some(line);
        self
    }

    /// Whose problem it is (the exit code): that of its kind.
    pub fn blame(&self) -> Blame {
        self.kind.blame()
    }
}

impl fmt::Display for MeshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::input::shown(&self.path))?;
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
    /// `Kd` (glTF: base colour factor), white when absent.
    pub diffuse: [f32; 3],
    /// The texture file, resolved relative to the file that names it; `None`
    /// for textures embedded in the mesh file (glTF) and baked vertex colours.
    pub texture_path: Option<PathBuf>,
    pub texture: Option<Image>,
}

impl Material {
    pub(crate) fn plain(name: &str) -> Material {
        Material { name: name.into(), diffuse: [1.0; 3], texture_path: None, texture: None }
    }
}

/// Whether the faces of a loaded mesh carry texture coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UvCoverage {
    All,
    None,
    /// Some faces have UVs, others not; the text says where (for messages).
    Partial(String),
}

/// `--uv`: keep the file's texture coordinates or compute an atlas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvChoice {
    Keep,
    Auto,
}

/// A triangle mesh as read from a file.
#[derive(Clone, Debug)]
pub struct Mesh {
    /// The file it came from.
    pub path: PathBuf,
    /// Vertex positions in the file's coordinates and order (STL: welded).
    pub positions: Vec<Vec3>,
    /// Texture coordinates (`vt`, origin bottom-left; see [`crate::conventions`]).
    pub texcoords: Vec<Vec2>,
    /// Per triangle, three indices into `positions`.
    pub triangles: Vec<[u32; 3]>,
    /// Per triangle, three indices into `texcoords`; empty when the mesh has no UVs.
    pub tri_texcoords: Vec<[u32; 3]>,
    /// Per triangle, an index into `materials`.
    pub tri_material: Vec<u32>,
    /// Per triangle, the index of the file's face (polygon) it came from, so
    /// an exporter can write quads and n-gons back as they were.
    pub tri_polygon: Vec<u32>,
    pub materials: Vec<Material>,
    /// Per position, an RGB colour in [0, 1] (PLY, OBJ `v x y z r g b`); empty when none.
    pub vertex_colors: Vec<[f32; 3]>,
    /// Whether the file gave UVs on all, none or some faces.
    pub uv_coverage: UvCoverage,
    /// Problems that do not stop the run, to be shown to the user
    /// (an undefined `usemtl` material, ignored `map_Kd` options).
    pub warnings: Vec<String>,
    /// What an OBJ carries beyond triangles, kept so the exported OBJ reopens
    /// with the same faces, normals, objects, groups and smoothing; `None`
    /// for other formats.
    pub obj_layout: Option<ObjLayout>,
}

/// An OBJ's faces as written (before triangulation), its normals and the
/// `o`/`g`/`s` statements in force at each face.
#[derive(Clone, Debug, Default)]
pub struct ObjLayout {
    /// `vn` normals.
    pub normals: Vec<Vec3>,
    /// `o`, `g` and `s` statements, as written (e.g. `g body`, `s 1`).
    pub statements: Vec<String>,
    /// Faces in file order; `tri_polygon` indexes this.
    pub faces: Vec<ObjFace>,
}

/// One `f` statement: its position corners in order, their `vn` indices
/// (empty when it had none), and the statements in force (indices into
/// [`ObjLayout::statements`]: object, group, smoothing).
#[derive(Clone, Debug, Default)]
pub struct ObjFace {
    pub positions: Vec<u32>,
    pub normals: Vec<u32>,
    pub object: Option<u32>,
    pub group: Option<u32>,
    pub smoothing: Option<u32>,
}

impl Mesh {
    /// Loads a mesh file by its extension: `.obj`, `.stl`, `.ply`, `.gltf`, `.glb`.
    pub fn load(path: impl AsRef<Path>) -> Result<Mesh, MeshError> {
        let path = path.as_ref();
        let bytes = crate::input::read(path, crate::input::MESH_MAX_BYTES).map_err(|e| match e.kind() {
            // The input module's own refusals carry their advice.
            std::io::ErrorKind::InvalidInput => MeshError::new(MeshErrorKind::Io, path, format!("the mesh {e}"), ""),
            _ => MeshError::new(MeshErrorKind::Io, path, format!("cannot read the mesh: {e}"), "check the path"),
        })?;
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let (format, sniffed) = match ext.as_str() {
            "stl" | "ply" | "gltf" | "glb" | "obj" => (ext.as_str(), false),
            _ => match sniff(&bytes) {
                Some(format) => (format, true),
                None => {
                    return Err(MeshError::new(
                        MeshErrorKind::NotObj,
                        path,
                        format!("unknown mesh format '.{ext}', and the content is no OBJ, STL, PLY or glTF either"),
                        "texstyle reads .obj, .stl, .ply, .gltf and .glb files",
                    ))
                }
            },
        };
        let mut mesh = match format {
            "stl" => stl::load(path, &bytes)?,
            "ply" => ply::load(path, &bytes)?,
            "gltf" | "glb" => gltf::load(path, &bytes)?,
            _ => obj::load(path, &bytes)?,
        };
        if sniffed {
            let name = format.to_ascii_uppercase().replace("GLB", "glTF binary").replace("GLTF", "glTF");
            mesh.warnings.push(format!(
                "{}: no known extension ('.{ext}'): read as {name} from its content (name it .{format} to say so)",
                crate::input::shown(path)
            ));
        }
        mesh.finish()
    }

    /// An empty mesh for `path`, for the readers (and mesh-making code) to fill.
    pub fn empty(path: &Path) -> Mesh {
        Mesh {
            path: path.to_path_buf(),
            positions: Vec::new(),
            texcoords: Vec::new(),
            triangles: Vec::new(),
            tri_texcoords: Vec::new(),
            tri_material: Vec::new(),
            tri_polygon: Vec::new(),
            materials: Vec::new(),
            vertex_colors: Vec::new(),
            uv_coverage: UvCoverage::None,
            warnings: Vec::new(),
            obj_layout: None,
        }
    }

    /// The checks every format shares, then the texture files.
    fn finish(mut self) -> Result<Mesh, MeshError> {
        let err = |kind, msg: String, hint: &str| MeshError::new(kind, &self.path, msg, hint);
        if self.triangles.is_empty() {
            return Err(err(
                MeshErrorKind::NoFaces,
                format!("the mesh has {} vertices but no triangles", self.positions.len()),
                "a point cloud cannot be textured; export the mesh with its faces",
            ));
        }
        if let Some(i) = self.positions.iter().position(|p| !p.is_finite()) {
            return Err(err(
                MeshErrorKind::NonFinite,
                format!("vertex {} has a coordinate that is not finite ({})", i + 1, self.positions[i]),
                "fix or remove the vertex in your modeller",
            ));
        }
        let n = self.positions.len() as u32;
        if let Some(t) = self.triangles.iter().position(|t| t.iter().any(|&i| i >= n)) {
            return Err(err(
                MeshErrorKind::IndexOutOfRange,
                format!("triangle {} refers to vertex {} but only {n} exist", t + 1, self.triangles[t].iter().max().unwrap()),
                "the file is truncated or its indices are wrong",
            ));
        }
        let (lo, hi) = self.bounds();
        if (hi - lo).max_element() <= 0.0 {
            return Err(err(MeshErrorKind::Degenerate, "all vertices are at the same point".into(), "the mesh has no extent to render"));
        }
        if self.uv_coverage == UvCoverage::All && self.texcoords.iter().any(|t| !t.is_finite()) {
            return Err(err(MeshErrorKind::NonFinite, "a texture coordinate is not finite".into(), "fix the UVs, or pass --uv auto"));
        }
        if self.uv_coverage == UvCoverage::All && self.uv_area() <= 1e-12 {
            self.warnings.push(format!(
                "{}: every texture coordinate lies on one point or line (zero UV area): the texture would paint \
                 each face one colour (pass --uv auto to unwrap a new atlas)",
                crate::input::shown(&self.path)
            ));
        }
        if self.tri_polygon.len() != self.triangles.len() {
            self.tri_polygon = (0..self.triangles.len() as u32).collect();
        }
        let path = self.path.clone();
        for mat in &mut self.materials {
            let Some(tex_path) = &mat.texture_path else { continue };
            if mat.texture.is_some() {
                continue;
            }
            let image = Image::load(tex_path).map_err(|e| {
                let why = match e {
                    image::ImageError::IoError(io) if !tex_path.is_file() => format!("cannot be read: {io}"),
                    // A truncated file surfaces as an I/O error from the decoder.
                    other => format!("cannot be decoded: {other}"),
                };
                MeshError::new(
                    MeshErrorKind::Texture,
                    &path,
                    format!("texture {} of material '{}' {why}", crate::input::shown(tex_path), mat.name),
                    "fix the texture reference (MTL map_Kd, glTF image uri) or the image file",
                )
            })?;
            mat.texture = Some(image);
        }
        Ok(self)
    }

    /// The summed area of the triangles in UV space (0 when UVs collapse to a point or line).
    fn uv_area(&self) -> f32 {
        (0..self.tri_texcoords.len())
            .map(|t| {
                let [a, b, c] = self.triangle_uvs(t);
                (b - a).perp_dot(c - a).abs() * 0.5
            })
            .sum()
    }

    /// True when every triangle has texture coordinates.
    pub fn has_uvs(&self) -> bool {
        !self.tri_texcoords.is_empty()
    }

    /// Applies `--uv`: keeps the file's UVs, or unwraps the mesh into one
    /// atlas page of `atlas_size²` texels per material. `None` (no `--uv`)
    /// keeps UVs present on every face and unwraps a mesh that has none; UVs
    /// on only some faces need an explicit choice. Vertex colours, when the
    /// file has them and no texture, are baked into the new atlas as the
    /// content texture. Returns the atlas figures when it unwrapped.
    pub fn prepare_uvs(&mut self, choice: Option<UvChoice>, atlas_size: u32) -> Result<Option<AtlasReport>, MeshError> {
        let err = |kind, msg: String, hint: &str| MeshError::new(kind, &self.path, msg, hint);
        match (&self.uv_coverage, choice) {
            (UvCoverage::All, None | Some(UvChoice::Keep)) => Ok(None),
            (UvCoverage::Partial(where_), None | Some(UvChoice::Keep)) => Err(err(
                MeshErrorKind::MixedUvs,
                format!("only some faces have texture coordinates ({where_})"),
                "pass --uv auto to unwrap the whole mesh into a new atlas, or give every face UVs in your modeller and pass --uv keep",
            )),
            (UvCoverage::None, Some(UvChoice::Keep)) => Err(err(
                MeshErrorKind::NoUvs,
                "the mesh has no texture coordinates to keep".into(),
                "pass --uv auto (the default for such meshes) to unwrap it into a new atlas",
            )),
            (_, _) => unwrap::unwrap(self, atlas_size).map(Some),
        }
    }

    /// Axis-aligned bounding box `(min, max)` of the positions the triangles use
    /// (unreferenced vertices, as in the Stanford bunny, do not count).
    pub fn bounds(&self) -> (Vec3, Vec3) {
        let init = (Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY));
        let n = self.positions.len() as u32;
        self.triangles.iter().flatten().filter(|&&i| i < n).fold(init, |(lo, hi), &i| {
            let p = self.positions[i as usize];
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

/// The format a file without a known extension holds, from its first bytes:
/// GLB magic, PLY header, binary STL size formula, ASCII STL, glTF JSON, OBJ statements.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"glTF") {
        return Some("glb");
    }
    if bytes.starts_with(b"ply\n") || bytes.starts_with(b"ply\r\n") {
        return Some("ply");
    }
    if bytes.len() >= 84 {
        let n = u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]) as u64;
        if 84 + 50 * n == bytes.len() as u64 {
            return Some("stl");
        }
    }
    let text = std::str::from_utf8(&bytes[..bytes.len().min(1 << 16)]).ok()?;
    let head = text.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with("solid") && text.contains("facet") {
        return Some("stl");
    }
    if head.starts_with('{') && text.contains("\"asset\"") {
        return Some("gltf");
    }
    let obj = ["v ", "f ", "vt ", "vn ", "o ", "g ", "mtllib ", "usemtl "];
    text.lines().any(|l| obj.iter().any(|s| l.trim_start().starts_with(s))).then_some("obj")
}
