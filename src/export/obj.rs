//! `obj`: the learned textures and the mesh's ORIGINAL geometry and UVs as
//! `NAME.obj` + `NAME.mtl` + one PNG per material, with relative paths, for
//! Blender and full-colour printers.
//!
//! Every file is written atomically (temporary file + rename), textures
//! first, then the MTL, then the OBJ: an interrupted export never leaves an
//! OBJ that points at missing or half-written files.

use std::fmt::Write as _;

use anyhow::{ensure, Result};

use super::{file_stem, Names, OutFile};
use crate::image_io::Image;
use crate::mesh::Mesh;

/// The OBJ, MTL and PNGs of `mesh` with `textures[m]` for material `m`, in
/// write order (textures, MTL, OBJ), with names claimed from `names`.
pub fn files(mesh: &Mesh, textures: &[Image], name: &str, names: &mut Names) -> Result<Vec<OutFile>> {
    ensure!(mesh.has_uvs(), "{}: the mesh has no texture coordinates to export a texture with", mesh.path.display());
    ensure!(
        textures.len() == mesh.materials.len(),
        "export: {} textures for {} materials",
        textures.len(),
        mesh.materials.len()
    );
    let obj_name = names.claim(name, "obj");
    let mtl_name = names.claim(name, "mtl");
    // Unique PNG names even when sanitized material names collide.
    let png_names: Vec<String> = mesh.materials.iter().map(|m| names.claim(&format!("{name}_{}", file_stem(&m.name)), "png")).collect();
    let mut files = Vec::new();
    for (tex, png) in textures.iter().zip(&png_names) {
        files.push(OutFile { name: png.clone(), bytes: tex.png_bytes()? });
    }

    let mut mtl = String::from("# texstyle: one material per texture\n");
    for (m, png) in mesh.materials.iter().zip(&png_names) {
        // Kd 1 1 1: the texture carries the colour (viewers multiply Kd by it).
        writeln!(mtl, "\nnewmtl {}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {png}", m.name).unwrap();
    }
    files.push(OutFile { name: mtl_name.clone(), bytes: mtl.into_bytes() });

    let mut obj = String::with_capacity(64 * (mesh.positions.len() + mesh.texcoords.len() + mesh.triangles.len()));
    writeln!(obj, "# texstyle: {} triangles\nmtllib {mtl_name}", mesh.triangles.len()).unwrap();
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
    files.push(OutFile { name: obj_name, bytes: obj.into_bytes() });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_material_names_get_unique_files() {
        let mesh = super::super::test_mesh::triangles(&["red paint", "red_paint", "Red_Paint"]);
        let texs = vec![Image::filled(2, 2, [0.5; 3]); 3];
        let files = files(&mesh, &texs, "m", &mut Names::default()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        // Case-insensitive: macOS and Windows file systems would merge the third.
        assert_eq!(names, ["m_red_paint.png", "m_red_paint_2.png", "m_Red_Paint_3.png", "m.mtl", "m.obj"]);
        let mtl = String::from_utf8(files[3].bytes.clone()).unwrap();
        assert!(mtl.contains("newmtl red_paint\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd m_red_paint_2.png"), "{mtl}");
    }
}
