//! The last step of the data path: the learned textures and the mesh's
//! ORIGINAL geometry and UVs as `NAME.obj` + `NAME.mtl` + one PNG per
//! material, with relative paths, for Blender and colour 3D printing.
//!
//! Every file is written atomically (temporary file + rename), textures
//! first, then the MTL, then the OBJ: an interrupted export never leaves an
//! OBJ that points at missing or half-written files.
//!
//! Before writing, [`fill_unseen`] gives every texel no view ever saw the
//! colour of the nearest seen texel. That fills holes inside UV islands and
//! pads every island outwards, so bilinear and mip-mapped sampling at UV
//! seams never picks up background.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use crate::image_io::{write_atomic, Image};
use crate::mesh::Mesh;

/// The files an export wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub obj: PathBuf,
    pub mtl: PathBuf,
    /// One per material, in material order.
    pub textures: Vec<PathBuf>,
}

/// Replaces every texel whose `seen` flag is false with the colour of the
/// nearest seen texel (breadth-first, 4-neighbour distance). Leaves the image
/// unchanged when nothing was seen.
pub fn fill_unseen(img: &mut Image, seen: &[bool]) {
    let (w, h) = (img.width as usize, img.height as usize);
    assert_eq!(seen.len(), w * h, "one seen flag per texel");
    let mut source: Vec<u32> = vec![u32::MAX; w * h];
    let mut queue = VecDeque::new();
    for (i, &s) in seen.iter().enumerate() {
        if s {
            source[i] = i as u32;
            queue.push_back(i);
        }
    }
    while let Some(i) = queue.pop_front() {
        let (x, y) = (i % w, i / w);
        let neighbours = [
            (x > 0).then(|| i - 1),
            (x + 1 < w).then(|| i + 1),
            (y > 0).then(|| i - w),
            (y + 1 < h).then(|| i + w),
        ];
        for n in neighbours.into_iter().flatten() {
            if source[n] == u32::MAX {
                source[n] = source[i];
                queue.push_back(n);
            }
        }
    }
    for (i, &s) in source.iter().enumerate() {
        if s != u32::MAX && s as usize != i {
            let (sx, sy) = (s as usize % w, s as usize / w);
            let rgb = img.pixel(sx as u32, sy as u32);
            img.set_pixel((i % w) as u32, (i / w) as u32, rgb);
        }
    }
}

/// A file-name-safe version of a material name.
fn file_stem(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if s.is_empty() { "material".into() } else { s }
}

/// Writes `dir/name.obj`, `dir/name.mtl` and `dir/name_MATERIAL.png` (one per
/// material, `textures[m]` for material `m`). `dir` is created if missing.
pub fn export(mesh: &Mesh, textures: &[Image], dir: &Path, name: &str) -> Result<Exported> {
    ensure!(mesh.has_uvs(), "{}: the mesh has no texture coordinates to export a texture with", mesh.path.display());
    ensure!(
        textures.len() == mesh.materials.len(),
        "export: {} textures for {} materials",
        textures.len(),
        mesh.materials.len()
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating the output directory {}", dir.display()))?;

    // Unique PNG names even when sanitized material names collide.
    let mut png_names: Vec<String> = Vec::new();
    for m in &mesh.materials {
        let mut n = format!("{name}_{}.png", file_stem(&m.name));
        let mut k = 2;
        while png_names.contains(&n) {
            n = format!("{name}_{}_{k}.png", file_stem(&m.name));
            k += 1;
        }
        png_names.push(n);
    }
    let mut written = Vec::new();
    for (tex, png) in textures.iter().zip(&png_names) {
        let path = dir.join(png);
        tex.save_png(&path)?;
        written.push(path);
    }

    let mut mtl = String::from("# texstyle: one material per texture\n");
    for (m, png) in mesh.materials.iter().zip(&png_names) {
        // Kd 1 1 1: the texture carries the colour (viewers multiply Kd by it).
        writeln!(mtl, "\nnewmtl {}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {png}", m.name).unwrap();
    }
    let mtl_path = dir.join(format!("{name}.mtl"));
    write_atomic(&mtl_path, mtl.as_bytes())?;

    let mut obj = String::with_capacity(64 * (mesh.positions.len() + mesh.texcoords.len() + mesh.triangles.len()));
    writeln!(obj, "# texstyle: {} triangles\nmtllib {name}.mtl", mesh.triangles.len()).unwrap();
    for p in &mesh.positions {
        writeln!(obj, "v {} {} {}", p.x, p.y, p.z).unwrap();
    }
    for t in &mesh.texcoords {
        writeln!(obj, "vt {} {}", t.x, t.y).unwrap();
    }
    for (mi, m) in mesh.materials.iter().enumerate() {
        writeln!(obj, "usemtl {}", m.name).unwrap();
        for (t, tri) in mesh.triangles.iter().enumerate() {
            if mesh.tri_material[t] as usize != mi {
                continue;
            }
            let uv = mesh.tri_texcoords[t];
            writeln!(obj, "f {}/{} {}/{} {}/{}", tri[0] + 1, uv[0] + 1, tri[1] + 1, uv[1] + 1, tri[2] + 1, uv[2] + 1).unwrap();
        }
    }
    let obj_path = dir.join(format!("{name}.obj"));
    write_atomic(&obj_path, obj.as_bytes())?;
    Ok(Exported { obj: obj_path, mtl: mtl_path, textures: written })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_texels_take_the_nearest_seen_colour() {
        let mut img = Image::filled(6, 1, [0.0; 3]);
        img.set_pixel(1, 0, [1.0, 0.0, 0.0]);
        img.set_pixel(4, 0, [0.0, 0.0, 1.0]);
        let seen = [false, true, false, false, true, false];
        fill_unseen(&mut img, &seen);
        let row: Vec<[f32; 3]> = (0..6).map(|x| img.pixel(x, 0)).collect();
        let (r, b) = ([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]);
        assert_eq!(row, [r, r, r, b, b, b]);
    }

    #[test]
    fn nothing_seen_leaves_the_image_alone() {
        let mut img = Image::filled(2, 2, [0.3; 3]);
        fill_unseen(&mut img, &[false; 4]);
        assert_eq!(img, Image::filled(2, 2, [0.3; 3]));
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("a b/c"), "a_b_c");
        assert_eq!(file_stem(""), "material");
    }
}
