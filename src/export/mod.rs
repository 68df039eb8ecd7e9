//! The last step of the data path: the learned textures and the mesh as
//! files other programs read. One seam, [`Format`]: each format is one file
//! in this folder (its `produce` function) and one variant (one arm of
//! `Format::produce`), and produces its files in memory ([`OutFile`]) in the
//! order they must be written, so the whole output set is staged before
//! anything touches the disk.
//!
//! - [`obj`]: textured OBJ + MTL + PNG (Blender, full-colour printers), or
//!   the same zipped for upload (`obj-zip`).
//! - [`threemf`]: 3MF with textures, in millimetres (full-colour printers, services).
//! - [`glb`]: glTF binary with embedded textures (viewers, Blender).
//! - [`vertex_colors`] and [`palette`]: colour forms Bambu Studio and
//!   OrcaSlicer import, on the mesh split by [`subdivide`].
//!
//! [`Plan::new`] checks a request against the mesh before the optimization
//! starts (an impossible export fails in seconds, not after the run);
//! [`write_all`] makes the files, a preview of each colour form, and writes them.

pub mod glb;
pub mod holes;
pub mod obj;
pub mod palette;
pub mod preview;
pub mod subdivide;
pub mod threemf;
pub mod vertex_colors;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use glam::Vec3;

use crate::image_io::{write_atomic, Image};
use crate::mesh::Mesh;
use crate::raster::{Raster, RasterMesh};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Textured OBJ + MTL + PNG.
    Obj,
    /// The same, zipped into one file.
    ObjZip,
    /// 3MF package with textures, millimetres.
    ThreeMf,
    /// glTF 2.0 binary with embedded textures.
    Glb,
    /// OBJ with per-vertex colours on the split mesh.
    VertexColors,
    /// OBJ with per-face colours from a palette of N, on the split mesh.
    Palette(u32),
}

impl Format {
    /// Formats that colour the split mesh rather than carry the texture.
    fn needs_split(self) -> bool {
        matches!(self, Format::VertexColors | Format::Palette(_))
    }

    /// Formats made for printing: placed on the plate, checked for holes.
    fn is_print(self) -> bool {
        self.needs_split() || self == Format::ThreeMf
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Obj => f.write_str("obj"),
            Format::ObjZip => f.write_str("obj-zip"),
            Format::ThreeMf => f.write_str("3mf"),
            Format::Glb => f.write_str("glb"),
            Format::VertexColors => f.write_str("vertex-colors"),
            Format::Palette(n) => write!(f, "palette:{n}"),
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        let s = s.trim().to_ascii_lowercase();
        Ok(match s.as_str() {
            "obj" => Format::Obj,
            "obj-zip" | "zip" => Format::ObjZip,
            "3mf" => Format::ThreeMf,
            "glb" | "gltf" => Format::Glb,
            "vertex-colors" | "vertex-colours" => Format::VertexColors,
            _ => match s.strip_prefix("palette:").map(str::parse::<u32>) {
                Some(Ok(n)) if palette::SIZES.contains(&n) => Format::Palette(n),
                Some(_) => return Err(format!("'{s}': the palette size must be a number from {} to {}, e.g. palette:4", palette::SIZES.start(), palette::SIZES.end())),
                None => return Err(format!(
                    "unknown export '{s}': use obj, obj-zip, 3mf, glb, vertex-colors or palette:N (N from {} to {})",
                    palette::SIZES.start(),
                    palette::SIZES.end()
                )),
            },
        })
    }
}

/// What to export, as the user asked for it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Each format once, in the order given.
    pub formats: Vec<Format>,
    /// Longest side of the printed object in millimetres (3MF and the
    /// colour OBJs, and GLB in metres); `None` keeps the mesh's units.
    pub print_size_mm: Option<f32>,
    /// Most triangles any exported file may have.
    pub max_triangles: usize,
    /// Fill the holes of the print exports ([`holes::close`]).
    pub close_holes: bool,
}

/// The default triangle budget: print services cap files around 1 M polygons.
pub const DEFAULT_MAX_TRIANGLES: usize = 1_000_000;

/// A request checked against the mesh, with the split mesh computed
/// (it depends on the UVs and the texture size, not on the colours).
#[derive(Clone, Debug)]
pub struct Plan {
    pub request: Request,
    /// The mesh the print exports write (holes closed if asked, only the
    /// positions faces use), when one is asked for.
    pub print: Option<Mesh>,
    /// Its open and non-manifold edges.
    pub edges: Option<holes::EdgeReport>,
    /// The split mesh (of `print`), when a format needs it.
    pub split: Option<subdivide::Split>,
}

/// A request that cannot be met with this mesh.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A palette size outside [`palette::SIZES`].
    #[error("palette:{}: the palette size must be from {} to {}, e.g. palette:4", .0, palette::SIZES.start(), palette::SIZES.end())]
    PaletteSize(u32),
    /// The mesh has no texture coordinates to carry a texture.
    #[error("{}: the mesh has no texture coordinates to export a texture with", .0.display())]
    NoUvs(PathBuf),
    /// The mesh has more triangles than an exported file may have (the CLI
    /// checks `--max-triangles` first, in its own words: `cli::config`).
    #[error("{}: the mesh has {triangles} triangles, more than the {max} an exported file may have", .path.display())]
    TooManyTriangles { path: PathBuf, triangles: usize, max: usize },
}

impl PlanError {
    /// Whose problem it is: every kind today is the user's request or mesh.
    pub fn blame(&self) -> crate::error::Blame {
        match self {
            PlanError::PaletteSize(_) | PlanError::NoUvs(_) | PlanError::TooManyTriangles { .. } => {
                crate::error::Blame::Input
            }
        }
    }
}

impl Plan {
    /// Checks `request` against `mesh` (whose textures will be
    /// `texture_size` texels) and splits the mesh if a format needs it.
    /// The option values themselves (print size, triangle budget against the
    /// mesh) are the caller's to check, in its own words (`cli::config`);
    /// what is refused here is what the exporters cannot do at all.
    pub fn new(mesh: &Mesh, mut request: Request, texture_size: (u32, u32)) -> Result<Plan, PlanError> {
        let mut seen = HashSet::new();
        request.formats.retain(|f| seen.insert(*f));
        if let Some(Format::Palette(n)) = request.formats.iter().find(|f| matches!(f, Format::Palette(n) if !palette::SIZES.contains(n))) {
            return Err(PlanError::PaletteSize(*n));
        }
        if !mesh.has_uvs() {
            return Err(PlanError::NoUvs(mesh.path.clone()));
        }
        let print = request.formats.iter().any(|f| f.is_print()).then(|| {
            let closed = if request.close_holes { holes::close(mesh) } else { mesh.clone() };
            holes::used_only(&closed)
        });
        let most = print.as_ref().map_or(0, |p| p.triangles.len()).max(mesh.triangles.len());
        if most > request.max_triangles {
            return Err(PlanError::TooManyTriangles { path: mesh.path.clone(), triangles: most, max: request.max_triangles });
        }
        let edges = print.as_ref().map(holes::report);
        let split = print.as_ref().filter(|_| request.formats.iter().any(|f| f.needs_split())).map(|p| {
            subdivide::subdivide(p, texture_size, subdivide::MAX_EDGE_TEXELS, request.max_triangles)
        });
        Ok(Plan { request, print, edges, split })
    }

    /// What the plan means for the user, one line each (e.g. the budget binding).
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.edges.and_then(|e| e.warning()).into_iter().collect();
        if let Some(s) = &self.split {
            notes.push(format!(
                "colour exports: the mesh is split into {} triangles (longest edge {:.1} texels of the texture, aim {})",
                s.mesh.triangles.len(),
                s.longest_edge_texels,
                subdivide::MAX_EDGE_TEXELS
            ));
            if s.budget_bound {
                notes.push(format!(
                    "--max-triangles {} binds: the colour exports have {} triangles and edges up to {:.1} texels (aim: {}), so the finest strokes blur; raise --max-triangles for more detail",
                    self.request.max_triangles,
                    s.mesh.triangles.len(),
                    s.longest_edge_texels,
                    subdivide::MAX_EDGE_TEXELS
                ));
            }
        }
        notes
    }
}

/// One output file, in memory until written.
#[derive(Clone, Debug)]
pub struct OutFile {
    /// File name inside the output folder.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// File names claimed so far in one output folder, compared without case
/// (macOS and Windows file systems would merge `Red.png` and `red.png`).
#[derive(Clone, Debug, Default)]
pub struct Names(HashSet<String>);

impl Names {
    /// `STEM.EXT`, or `STEM_2.EXT`, `STEM_3.EXT`, … when taken.
    pub fn claim(&mut self, stem: &str, ext: &str) -> String {
        let mut name = format!("{stem}.{ext}");
        let mut k = 2;
        while !self.0.insert(name.to_lowercase()) {
            name = format!("{stem}_{k}.{ext}");
            k += 1;
        }
        name
    }
}

/// A file-name-safe version of a material name.
fn file_stem(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if s.is_empty() { "material".into() } else { s }
}

/// Writes `files` into `dir` (created if missing) in order, each atomically.
pub fn write_files(dir: &Path, files: &[OutFile]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating the output directory {}", dir.display()))?;
    files
        .iter()
        .map(|f| {
            let path = dir.join(&f.name);
            write_atomic(&path, &f.bytes)?;
            Ok(path)
        })
        .collect()
}

/// A zip archive of `parts` (deflate), in memory.
fn zip(parts: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut z = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Deflated)
        // A fixed date: the same inputs give the same bytes.
        .last_modified_time(::zip::DateTime::default());
    for (name, bytes) in parts {
        z.start_file(name.as_str(), options).with_context(|| format!("zipping {name}"))?;
        z.write_all(bytes)?;
    }
    Ok(z.finish()?.into_inner())
}

/// Positions as slicers and 3MF expect them: +Z up (the mesh files'
/// +Y, the convention texstyle renders with, becomes +Z; a rotation, so the
/// shape and the faces' winding are unchanged), scaled so the longest side
/// is `size_mm` when given.
pub fn print_positions(mesh: &Mesh, size_mm: Option<f32>) -> Vec<Vec3> {
    let s = size_mm.map_or(1.0, |mm| mm / longest_side(mesh));
    mesh.positions.iter().map(|p| Vec3::new(p.x, -p.z, p.y) * s).collect()
}

/// The longest side of the mesh's bounding box, in its own units.
pub fn longest_side(mesh: &Mesh) -> f32 {
    let (lo, hi) = mesh.bounds();
    (hi - lo).max_element()
}

/// Time and size of one format's files (for the summary and the bench).
#[derive(Clone, Debug)]
pub struct Made {
    pub format: Format,
    pub seconds: f64,
    pub bytes: u64,
    /// The files, in the output folder.
    pub files: Vec<PathBuf>,
    /// The preview rendered from this format's colours, if it has its own
    /// (textured formats show the texture, as `preview_before_after.png` does).
    pub preview: Option<PathBuf>,
    /// What to tell the user (palette hex codes, sizes).
    pub notes: Vec<String>,
    /// A palette export's colours (8-bit sRGB) and their share of the
    /// surface, most-used first; empty for the other formats.
    pub swatches: Vec<([u8; 3], f32)>,
}

/// Makes every format of `plan` from `mesh` and its learned `textures`,
/// renders a turntable preview of each colour form (`open_raster` gives a
/// rasterizer for a mesh), then writes everything into `dir`, each file
/// atomically, every OBJ after the files it points at. `reserved` names
/// are left for the caller's own files.
pub fn write_all(
    plan: &Plan,
    mesh: &Mesh,
    textures: &[Image],
    dir: &Path,
    name: &str,
    reserved: &[&str],
    open_raster: &mut dyn FnMut(&RasterMesh) -> Result<Raster>,
) -> Result<Vec<Made>> {
    let mut names = Names::default();
    for r in reserved {
        let (stem, ext) = r.rsplit_once('.').unwrap_or((r, ""));
        names.claim(stem, ext);
    }
    let mut job = Job { plan, mesh, textures, name, names, open_raster, split_raster: None };
    let mut staged: Vec<(Made, Vec<OutFile>)> = Vec::new();
    for &format in &plan.request.formats {
        let start = Instant::now();
        let produced = format.produce(&mut job)?;
        staged.push(stage(format, produced, &mut job.names, dir, start)?);
    }
    // Everything is made: only now touch the disk.
    let all: Vec<OutFile> = staged.iter_mut().flat_map(|(_, f)| std::mem::take(f)).collect();
    write_files(dir, &all)?;
    Ok(staged.into_iter().map(|(m, _)| m).collect())
}

/// What one [`write_all`] gives every format: the plan, the mesh and its
/// learned textures, the base file name, the names claimed so far, and a
/// rasterizer of the split mesh (opened once, for the colour forms' previews).
struct Job<'a> {
    plan: &'a Plan,
    mesh: &'a Mesh,
    textures: &'a [Image],
    name: &'a str,
    names: Names,
    open_raster: &'a mut dyn FnMut(&RasterMesh) -> Result<Raster>,
    split_raster: Option<Raster>,
}

impl<'a> Job<'a> {
    fn size_mm(&self) -> Option<f32> {
        self.plan.request.print_size_mm
    }

    /// The mesh the 3MF writes: holes closed if asked, unused positions dropped.
    fn print(&self) -> &'a Mesh {
        self.plan.print.as_ref().expect("Plan::new prepares it for print formats")
    }

    /// The split mesh, for the formats that colour it.
    fn split(&self) -> &'a Mesh {
        &self.plan.split.as_ref().expect("Plan::new splits for these formats").mesh
    }

    /// `mesh`'s positions as printers take them ([`print_positions`]) and the note saying their size.
    fn placed(&self, mesh: &Mesh) -> (Vec<Vec3>, String) {
        let mut p = print_positions(mesh, self.size_mm());
        // On the plate: the lowest point at z = 0, as slicers expect.
        let floor = p.iter().map(|q| q.z).fold(f32::INFINITY, f32::min);
        p.iter_mut().for_each(|q| q.z -= floor);
        let note = size_note(&p, self.size_mm());
        (p, note)
    }

    /// The rasterizer of the split mesh, opened by the first format that asks.
    fn split_raster(&mut self) -> Result<&mut Raster> {
        if self.split_raster.is_none() {
            let split = self.split();
            let raster = (self.open_raster)(&preview::barycentric_mesh(split))?;
            self.split_raster = Some(raster);
        }
        Ok(self.split_raster.as_mut().expect("opened above"))
    }
}

/// One format's output, in memory: its files in write order, the preview of
/// its colours if it has its own, and what to tell the user.
struct Produced {
    files: Vec<OutFile>,
    preview: Option<Image>,
    notes: Vec<String>,
    swatches: Vec<([u8; 3], f32)>,
}

impl Produced {
    /// Files alone, no preview or notes.
    fn files(files: Vec<OutFile>) -> Produced {
        Produced { files, preview: None, notes: Vec::new(), swatches: Vec::new() }
    }
}

impl Format {
    /// Makes this format's files: the one place that knows which file of
    /// this folder makes which format.
    fn produce(self, job: &mut Job) -> Result<Produced> {
        match self {
            Format::Obj => obj::produce(job),
            Format::ObjZip => obj::produce_zip(job),
            Format::ThreeMf => threemf::produce(job),
            Format::Glb => glb::produce(job),
            Format::VertexColors => vertex_colors::produce(job),
            Format::Palette(n) => palette::produce(job, n),
        }
    }
}

/// A format's files with its preview encoded and named after them, and what
/// the summary says of them (`start`: when the format began).
fn stage(format: Format, produced: Produced, names: &mut Names, dir: &Path, start: Instant) -> Result<(Made, Vec<OutFile>)> {
    let Produced { files, preview, notes, swatches } = produced;
    let preview = preview.map(|img| -> Result<OutFile> {
        let stem = format!("preview_{}", format.to_string().replace(':', "").replace('-', "_"));
        Ok(OutFile { name: names.claim(&stem, "png"), bytes: img.png_bytes()? })
    });
    let preview = preview.transpose()?;
    let bytes = files.iter().map(|f| f.bytes.len() as u64).sum();
    let made = Made {
        format,
        seconds: start.elapsed().as_secs_f64(),
        bytes,
        files: files.iter().map(|f| dir.join(&f.name)).collect(),
        preview: preview.as_ref().map(|f| dir.join(&f.name)),
        notes,
        swatches,
    };
    Ok((made, files.into_iter().chain(preview).collect()))
}

/// "80.0 × 62.0 × 79.3 mm (x × y × z, z up)" of placed positions, and
/// where the size came from when the user did not give one.
fn size_note(p: &[Vec3], size_mm: Option<f32>) -> String {
    let (lo, hi) = p.iter().fold((Vec3::splat(f32::INFINITY), Vec3::splat(f32::NEG_INFINITY)), |(lo, hi), &q| (lo.min(q), hi.max(q)));
    let d = hi - lo;
    let source = if size_mm.is_some() { "" } else { ", the mesh's units read as mm: --print-size MM sets the size" };
    format!("{:.1} × {:.1} × {:.1} mm (x × y × z, z up{source})", d.x, d.y, d.z)
}

/// The files the `obj` export wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub obj: PathBuf,
    pub mtl: PathBuf,
    /// One per material, in material order.
    pub textures: Vec<PathBuf>,
}

/// Writes `dir/name.obj`, `dir/name.mtl` and `dir/name_MATERIAL.png` (one per
/// material, `textures[m]` for material `m`): the `obj` format alone.
pub fn export(mesh: &Mesh, textures: &[Image], dir: &Path, name: &str) -> Result<Exported> {
    let mut paths = write_files(dir, &obj::files(mesh, textures, name, &mut Names::default())?)?;
    let obj = paths.pop().expect("obj::files ends with the OBJ");
    let mtl = paths.pop().expect("then the MTL");
    Ok(Exported { obj, mtl, textures: paths })
}

#[cfg(test)]
pub(crate) mod test_mesh {
    use glam::{Vec2, Vec3};

    use crate::mesh::{Material, Mesh};

    /// One right triangle per material name, side by side along x, each
    /// with UVs covering the lower-left half of its texture.
    pub fn triangles(materials: &[&str]) -> Mesh {
        let mut m = Mesh {
            texcoords: vec![Vec2::new(0.0, 0.0), Vec2::new(1.0, 0.0), Vec2::new(0.0, 1.0)],
            uv_coverage: crate::mesh::UvCoverage::All,
            ..Mesh::empty(std::path::Path::new("test.obj"))
        };
        for (i, name) in materials.iter().enumerate() {
            let x = 2.0 * i as f32;
            let base = m.positions.len() as u32;
            m.positions.extend([Vec3::new(x, 0.0, 0.0), Vec3::new(x + 1.0, 0.0, 0.0), Vec3::new(x, 1.0, 0.0)]);
            m.triangles.push([base, base + 1, base + 2]);
            m.tri_texcoords.push([0, 1, 2]);
            m.tri_material.push(i as u32);
            m.tri_polygon.push(i as u32);
            m.materials.push(Material { name: name.to_string(), diffuse: [1.0; 3], texture_path: None, texture: None });
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("a b/c"), "a_b_c");
        assert_eq!(file_stem(""), "material");
    }

    #[test]
    fn formats_parse_and_bad_ones_say_what_works() {
        let parse = |s: &str| s.parse::<Format>();
        assert_eq!(parse("obj"), Ok(Format::Obj));
        assert_eq!(parse("3MF"), Ok(Format::ThreeMf));
        assert_eq!(parse("palette:4"), Ok(Format::Palette(4)));
        assert_eq!(parse("vertex-colors"), Ok(Format::VertexColors));
        for f in [Format::Obj, Format::ObjZip, Format::ThreeMf, Format::Glb, Format::VertexColors, Format::Palette(16)] {
            assert_eq!(parse(&f.to_string()), Ok(f));
        }
        assert!(parse("palette:1").unwrap_err().contains("from 2 to 16"));
        assert!(parse("palette:x").is_err() && parse("palette:17").is_err());
        assert!(parse("stl").unwrap_err().contains("use obj, obj-zip, 3mf"));
    }

    #[test]
    fn impossible_requests_fail_before_any_work() {
        let mesh = test_mesh::triangles(&["a", "b", "c"]);
        let req = |max_triangles, print_size_mm| Request { formats: vec![Format::Palette(4)], print_size_mm, max_triangles, close_holes: false };
        let e = Plan::new(&mesh, req(2, None), (64, 64)).unwrap_err();
        assert!(matches!(e, PlanError::TooManyTriangles { triangles: 3, max: 2, .. }), "{e:?}");
        assert_eq!(e.blame(), crate::error::Blame::Input);
        let e = e.to_string();
        assert!(e.contains("test.obj: the mesh has 3 triangles, more than the 2 an exported file may have"), "{e}");
        let zero = Request { formats: vec![Format::Palette(0)], print_size_mm: None, max_triangles: 100, close_holes: false };
        assert!(Plan::new(&mesh, zero, (64, 64)).unwrap_err().to_string().contains("from 2 to 16"));
        let plan = Plan::new(&mesh, req(100, Some(80.0)), (64, 64)).unwrap();
        assert!(plan.split.as_ref().unwrap().budget_bound);
        assert!(plan.notes()[2].contains("--max-triangles 100 binds"), "{:?}", plan.notes());
        let plan = Plan::new(&mesh, Request { formats: vec![Format::Obj, Format::Obj], print_size_mm: None, max_triangles: 3, close_holes: false }, (64, 64)).unwrap();
        assert!(plan.split.is_none() && plan.notes().is_empty());
        assert_eq!(plan.request.formats, [Format::Obj]);
    }

    #[test]
    fn print_positions_stand_the_mesh_up_at_its_size() {
        let mesh = test_mesh::triangles(&["a", "b"]); // 3 × 1 × 0, +Y up
        let p = print_positions(&mesh, Some(80.0));
        assert_eq!(p[2], Vec3::new(0.0, 0.0, 80.0 / 3.0), "+Y becomes +Z");
        assert_eq!(p[4], Vec3::new(80.0, 0.0, 0.0));
    }

    #[test]
    fn claimed_names_are_unique_without_case() {
        let mut n = Names::default();
        assert_eq!(n.claim("a", "png"), "a.png");
        assert_eq!(n.claim("A", "png"), "A_2.png");
        assert_eq!(n.claim("a", "obj"), "a.obj");
        assert_eq!(n.claim("a_2", "png"), "a_2_2.png");
    }
}
