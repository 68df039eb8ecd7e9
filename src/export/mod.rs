//! The last step of the data path: the learned textures and the mesh as
//! files other programs read. One seam, [`Format`]: each format is one file
//! in this folder and one variant, and produces its files in memory
//! ([`OutFile`]) in the order they must be written, so the whole output set
//! is staged before anything touches the disk.
//!
//! - [`obj`]: textured OBJ + MTL + PNG (Blender, full-colour printers).

pub mod obj;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::image_io::{write_atomic, Image};
use crate::mesh::Mesh;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Textured OBJ + MTL + PNG.
    Obj,
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
            path: "test.obj".into(),
            positions: vec![],
            texcoords: vec![Vec2::new(0.0, 0.0), Vec2::new(1.0, 0.0), Vec2::new(0.0, 1.0)],
            triangles: vec![],
            tri_texcoords: vec![],
            tri_material: vec![],
            materials: vec![],
        };
        for (i, name) in materials.iter().enumerate() {
            let x = 2.0 * i as f32;
            let base = m.positions.len() as u32;
            m.positions.extend([Vec3::new(x, 0.0, 0.0), Vec3::new(x + 1.0, 0.0, 0.0), Vec3::new(x, 1.0, 0.0)]);
            m.triangles.push([base, base + 1, base + 2]);
            m.tri_texcoords.push([0, 1, 2]);
            m.tri_material.push(i as u32);
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
    fn claimed_names_are_unique_without_case() {
        let mut n = Names::default();
        assert_eq!(n.claim("a", "png"), "a.png");
        assert_eq!(n.claim("A", "png"), "A_2.png");
        assert_eq!(n.claim("a", "obj"), "a.obj");
        assert_eq!(n.claim("a_2", "png"), "a_2_2.png");
    }
}
