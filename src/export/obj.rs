//! `obj`: the learned textures and the mesh's ORIGINAL geometry and UVs as
//! `NAME.obj` + `NAME.mtl` + one PNG per material, with relative paths, for
//! Blender and full-colour printers.
//!
//! Every file is written atomically (temporary file + rename), textures
//! first, then the MTL, then the OBJ: an interrupted export never leaves an
//! OBJ that points at missing or half-written files.

use std::fmt::Write as _;

use anyhow::{ensure, Result};

use super::{file_stem, zip, Job, Names, OutFile, Produced};
use crate::image_io::Image;
use crate::mesh::{Mesh, ObjLayout};

/// The `obj` format: [`files`] into the output folder.
pub(super) fn produce(job: &mut Job) -> Result<Produced> {
    Ok(Produced::files(files(job.mesh, job.textures, job.name, &mut job.names)?))
}

/// The `obj-zip` format: the same files (named apart from the folder's
/// others) zipped into `NAME.zip`, for upload.
pub(super) fn produce_zip(job: &mut Job) -> Result<Produced> {
    let inner = files(job.mesh, job.textures, job.name, &mut Names::default())?;
    let parts: Vec<(String, Vec<u8>)> = inner.into_iter().map(|f| (f.name, f.bytes)).collect();
    Ok(Produced::files(vec![OutFile { name: job.names.claim(job.name, "zip"), bytes: zip(&parts)? }]))
}

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
    if let Some(layout) = mesh.obj_layout.as_ref().filter(|l| !l.faces.is_empty()) {
        write_faces_as_read(&mut obj, mesh, layout);
        files.push(OutFile { name: obj_name, bytes: obj.into_bytes() });
        return Ok(files);
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

/// The faces of an OBJ as the file had them: quads and n-gons whole, with
/// their normals, and the `o`/`g`/`s`/`usemtl` statements where they
/// changed, in file order, so Blender reopens the same objects and shading.
/// Each corner takes the UV its triangles have now; a face whose corners got
/// two different UVs (split by a new atlas) is written as its triangles.
fn write_faces_as_read(obj: &mut String, mesh: &Mesh, layout: &ObjLayout) {
    for n in &layout.normals {
        writeln!(obj, "vn {} {} {}", n.x, n.y, n.z).unwrap();
    }
    let mut tris_of: Vec<Vec<usize>> = vec![Vec::new(); layout.faces.len()];
    for (t, &f) in mesh.tri_polygon.iter().enumerate() {
        if let Some(list) = tris_of.get_mut(f as usize) {
            list.push(t);
        }
    }
    let (mut object, mut group, mut smoothing, mut material) = (None, None, None, None);
    for (face, tris) in layout.faces.iter().zip(&tris_of) {
        let Some(&first) = tris.first() else { continue };
        for (now, was) in [(face.object, &mut object), (face.group, &mut group), (face.smoothing, &mut smoothing)] {
            if let (Some(i), true) = (now, now != *was) {
                writeln!(obj, "{}", layout.statements[i as usize]).unwrap();
            }
            *was = now;
        }
        let m = mesh.tri_material[first];
        if material != Some(m) {
            writeln!(obj, "usemtl {}", mesh.materials[m as usize].name).unwrap();
            material = Some(m);
        }
        let normal_of = |p: u32| face.positions.iter().position(|&q| q == p).and_then(|k| face.normals.get(k).copied());
        let corner = |p: u32, uv: u32| match normal_of(p) {
            Some(n) => format!("{}/{}/{}", p + 1, uv + 1, n + 1),
            None => format!("{}/{}", p + 1, uv + 1),
        };
        // The UV of each of the face's positions, from its triangles.
        let mut uv_of: Vec<(u32, u32)> = Vec::with_capacity(face.positions.len());
        let mut whole = true;
        for &t in tris {
            for k in 0..3 {
                let (p, uv) = (mesh.triangles[t][k], mesh.tri_texcoords[t][k]);
                match uv_of.iter().find(|(q, _)| *q == p) {
                    Some(&(_, seen)) if seen != uv => whole = false,
                    Some(_) => {}
                    None => uv_of.push((p, uv)),
                }
            }
        }
        let uv_at = |p: u32| uv_of.iter().find(|(q, _)| *q == p).map(|&(_, uv)| uv);
        if whole && face.positions.iter().all(|&p| uv_at(p).is_some()) {
            let corners: Vec<String> = face.positions.iter().map(|&p| corner(p, uv_at(p).unwrap_or(0))).collect();
            writeln!(obj, "f {}", corners.join(" ")).unwrap();
        } else {
            for &t in tris {
                let c: Vec<String> = (0..3).map(|k| corner(mesh.triangles[t][k], mesh.tri_texcoords[t][k])).collect();
                writeln!(obj, "f {}", c.join(" ")).unwrap();
            }
        }
    }
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
