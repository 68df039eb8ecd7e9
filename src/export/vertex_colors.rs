//! `vertex-colors`: an OBJ with one colour per vertex (`v x y z r g b`,
//! floats in 0–1), the colour form Bambu Studio and OrcaSlicer import and
//! map to the loaded filaments. Written from the subdivided mesh
//! ([`super::subdivide`]) so the texture's strokes survive.

use std::fmt::Write as _;

use glam::Vec3;

use anyhow::Result;

use super::{preview, Job, OutFile, Produced};
use crate::image_io::Image;
use crate::lookup::sample_bilinear;
use crate::mesh::Mesh;

/// The `vertex-colors` format: the split mesh with its colours, and their preview.
pub(super) fn produce(job: &mut Job) -> Result<Produced> {
    let split = job.split();
    let (p, size) = job.placed(split);
    let textures = job.textures;
    let raster = job.split_raster()?;
    let colors = colors(split, textures);
    let preview = preview::vertex_colors(raster, split, &colors)?;
    let file = files(split, &p, &colors, job.names.claim(&format!("{}_vertex_colors", job.name), "obj"));
    Ok(Produced { files: vec![file], preview: Some(preview), notes: vec![size], swatches: Vec::new() })
}

/// One colour per position of `mesh`: the texture of each triangle's
/// material at that corner's UV, averaged over the triangles around the
/// vertex weighted by their area. Away from UV seams every corner has the
/// same UV, so this is exactly the texture at the vertex's UV.
pub fn colors(mesh: &Mesh, textures: &[Image]) -> Vec<[f32; 3]> {
    let mut sum = vec![[0.0f64; 4]; mesh.positions.len()];
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let [a, b, c] = tri.map(|i| mesh.positions[i as usize]);
        // A zero-area triangle still counts a little, so a vertex that
        // only degenerate triangles touch gets a colour.
        let w = (0.5 * (b - a).cross(c - a).length()).max(f32::MIN_POSITIVE) as f64;
        let tex = &textures[mesh.tri_material[t] as usize];
        for (k, uv) in mesh.triangle_uvs(t).into_iter().enumerate() {
            let rgb = sample_bilinear(tex, uv);
            let s = &mut sum[tri[k] as usize];
            for ch in 0..3 {
                s[ch] += w * rgb[ch] as f64;
            }
            s[3] += w;
        }
    }
    sum.iter().map(|s| if s[3] > 0.0 { [0, 1, 2].map(|c| (s[c] / s[3]) as f32) } else { [0.5; 3] }).collect()
}

/// `NAME_vertex_colors.obj`: `positions` (already placed for printing) with
/// `colors`, and the faces of `mesh`.
pub fn files(mesh: &Mesh, positions: &[Vec3], colors: &[[f32; 3]], file_name: String) -> OutFile {
    let mut obj = String::with_capacity(48 * positions.len() + 32 * mesh.triangles.len());
    writeln!(obj, "# texstyle: vertex colours (r g b in 0-1 after x y z), {} triangles", mesh.triangles.len()).unwrap();
    for (p, c) in positions.iter().zip(colors) {
        writeln!(obj, "v {} {} {} {:.4} {:.4} {:.4}", p.x, p.y, p.z, c[0], c[1], c[2]).unwrap();
    }
    for t in &mesh.triangles {
        writeln!(obj, "f {} {} {}", t[0] + 1, t[1] + 1, t[2] + 1).unwrap();
    }
    OutFile { name: file_name, bytes: obj.into_bytes() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::test_mesh;

    #[test]
    fn seam_vertices_average_their_sides_by_area() {
        // Two triangles of areas 0.5 and 2 share position 0 but read
        // different UVs there: a red and a blue texel.
        let mut mesh = test_mesh::triangles(&["a"]);
        mesh.positions.extend([Vec3::new(0.0, -2.0, 0.0), Vec3::new(2.0, 0.0, 0.0)]);
        mesh.triangles.push([0, 3, 4]);
        mesh.texcoords.push(glam::Vec2::new(0.75, 0.25));
        mesh.tri_texcoords.push([3, 1, 2]);
        mesh.tri_material.push(0);
        let mut tex = Image::filled(2, 2, [0.0; 3]);
        tex.set_pixel(0, 1, [1.0, 0.0, 0.0]); // uv (0.25, 0.25)
        tex.set_pixel(1, 1, [0.0, 0.0, 1.0]); // uv (0.75, 0.25)
        mesh.texcoords[0] = glam::Vec2::new(0.25, 0.25);
        let c = colors(&mesh, &[tex]);
        let expect = [0.5 / 2.5, 0.0, 2.0 / 2.5];
        assert!((0..3).all(|k| (c[0][k] - expect[k]).abs() < 1e-6), "{:?}", c[0]);
    }
}
