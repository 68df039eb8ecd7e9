//! The meshes users have: STL, PLY and glTF/GLB read with their
//! geometry, UVs, colours and textures; every malformed file refused with
//! one clear error; meshes without UVs unwrapped into a valid atlas that
//! survives the export round trip. Fixtures are generated here from the
//! in-repo bunny and spot.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use texstyle::image_io::Image;
use texstyle::mesh::{Mesh, MeshErrorKind, UvChoice, UvCoverage};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn png_of(img: &image::RgbImage) -> Vec<u8> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png
}

/// Distinct positions the triangles use (what welding must give).
fn distinct_used_positions(m: &Mesh) -> usize {
    m.triangles.iter().flatten().map(|&i| m.positions[i as usize].to_array().map(f32::to_bits)).collect::<HashSet<_>>().len()
}

#[test]
fn binary_stl_bunny_is_welded_into_shared_vertices() {
    let dir = tempfile::tempdir().unwrap();
    let bunny = common::load("bunny");
    let stl = write(dir.path(), "bunny.stl", &common::stl_binary(&common::soup(&bunny)));
    let m = Mesh::load(&stl).unwrap();
    assert_eq!(m.triangles.len(), 69451);
    assert_eq!(m.positions.len(), distinct_used_positions(&bunny));
    assert_eq!(m.uv_coverage, UvCoverage::None);
    // Same triangles, same corner order, same coordinates (an STL in millimetres stays so).
    for (a, b) in m.triangles.iter().zip(&bunny.triangles) {
        for k in 0..3 {
            assert_eq!(m.positions[a[k] as usize], bunny.positions[b[k] as usize]);
        }
    }
}

#[test]
fn ascii_stl_spot_is_welded() {
    let dir = tempfile::tempdir().unwrap();
    let spot = common::load("spot");
    let stl = write(dir.path(), "spot.stl", common::stl_ascii(&common::soup(&spot)).as_bytes());
    let m = Mesh::load(&stl).unwrap();
    assert_eq!(m.triangles.len(), 5856);
    assert_eq!(m.positions.len(), 2930);
    // A bare "solid" line (no name) is valid STL too.
    let bare = write(dir.path(), "bare.stl", common::stl_ascii(&common::soup(&spot)).replacen("solid test", "solid", 1).as_bytes());
    assert_eq!(Mesh::load(&bare).unwrap().triangles.len(), 5856);
}

#[test]
fn ply_with_uvs_and_a_texture_file_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tex.png", &png_of(&image::RgbImage::from_pixel(2, 2, image::Rgb([9, 99, 199]))));
    let ply = "ply\nformat ascii 1.0\ncomment TextureFile tex.png\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n\
property float s\nproperty float t\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n\
0 0 0 0 0\n1 0 0 1 0\n1 1 0 1 1\n0 1 0 0 1\n4 0 1 2 3\n";
    let m = Mesh::load(write(dir.path(), "quad.ply", ply.as_bytes())).unwrap();
    assert_eq!(m.uv_coverage, UvCoverage::All);
    assert_eq!((m.triangles.len(), m.tri_polygon.clone()), (2, vec![0, 0]));
    // Here each vertex's (s, t) equals its (x, y).
    for t in 0..2 {
        for (k, uv) in m.triangle_uvs(t).iter().enumerate() {
            assert_eq!(*uv, m.positions[m.triangles[t][k] as usize].truncate());
        }
    }
    assert_eq!(m.materials[0].texture.as_ref().unwrap().pixel(0, 0), [9.0 / 255.0, 99.0 / 255.0, 199.0 / 255.0]);
}

/// Spot's vertex colours: its texture sampled at each position's first UV.
fn spot_colors(spot: &Mesh) -> Vec<[u8; 3]> {
    let tex = spot.materials[0].texture.as_ref().unwrap();
    let mut colors = vec![[0u8; 3]; spot.positions.len()];
    for (t, tri) in spot.triangles.iter().enumerate() {
        for k in 0..3 {
            let uv = spot.texcoords[spot.tri_texcoords[t][k] as usize];
            let x = ((uv.x * tex.width as f32) as u32).min(tex.width - 1);
            let y = (((1.0 - uv.y) * tex.height as f32) as u32).min(tex.height - 1);
            colors[tri[k] as usize] = tex.pixel(x, y).map(|c| (c * 255.0).round() as u8);
        }
    }
    colors
}

fn spot_ply(binary: bool) -> Vec<u8> {
    let spot = common::load("spot");
    let pos: Vec<[f32; 3]> = spot.positions.iter().map(|p| p.to_array()).collect();
    let faces: Vec<Vec<u32>> = spot.triangles.iter().map(|t| t.to_vec()).collect();
    common::ply(binary, &pos, Some(&spot_colors(&spot)), &faces)
}

#[test]
fn ply_ascii_and_binary_with_vertex_colours_bake_them_into_the_atlas() {
    let dir = tempfile::tempdir().unwrap();
    let spot = common::load("spot");
    let colors = spot_colors(&spot);
    for binary in [false, true] {
        let path = write(dir.path(), "spot.ply", &spot_ply(binary));
        let mut m = Mesh::load(&path).unwrap();
        assert_eq!((m.triangles.len(), m.positions.len()), (5856, 2930));
        assert_eq!(m.vertex_colors.len(), 2930);
        assert_eq!(m.vertex_colors[7], colors[7].map(|c| c as f32 / 255.0));
        let report = m.prepare_uvs(None, 256).unwrap().expect("no UVs: unwrapped");
        assert!(report.baked_colors);
        // Each corner's UV reads (nearly) its vertex colour from the baked texture.
        let tex = m.materials[0].texture.as_ref().unwrap();
        let mut err = 0.0f32;
        for t in 0..m.triangles.len() {
            let uv = m.triangle_uvs(t);
            let centre = (uv[0] + uv[1] + uv[2]) / 3.0;
            for k in 0..3 {
                // A little inside the triangle: the corner texel itself may be shared with a neighbour chart's padding.
                let p = uv[k] + (centre - uv[k]) * 0.2;
                let (x, y) = ((p.x * 256.0) as u32, ((1.0 - p.y) * 256.0) as u32);
                let got = tex.pixel(x.min(255), y.min(255));
                let want = m.vertex_colors[m.triangles[t][k] as usize];
                err += (0..3).map(|c| (got[c] - want[c]).abs()).sum::<f32>() / 3.0;
            }
        }
        let mean = err / (3 * m.triangles.len()) as f32;
        assert!(mean < 0.06, "binary {binary}: mean colour error {mean}");
    }
}

#[test]
fn glb_and_gltf_with_external_files_load_spot_with_its_texture() {
    let dir = tempfile::tempdir().unwrap();
    let spot = common::load("spot");
    let png = std::fs::read(common::repo("meshes/spot/spot_texture.png")).unwrap();
    let (pos, uv, idx) = common::spot_unindexed_by_corner();
    let glb = write(dir.path(), "spot.glb", &common::glb(&common::gltf_parts(&pos, &uv, &idx, &png, None, None)));
    let ext = common::gltf_parts(&pos, &uv, &idx, &png, Some("spot%20data.bin"), Some("spot texture.png"));
    write(dir.path(), "spot data.bin", &ext.bin);
    write(dir.path(), "spot texture.png", &png);
    let gltf = write(dir.path(), "spot.gltf", ext.json.as_bytes());
    for path in [glb, gltf] {
        let m = Mesh::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.triangles.len(), 5856);
        assert_eq!(m.uv_coverage, UvCoverage::All);
        assert_eq!(m.materials[0].name, "skin");
        assert_eq!(m.materials[0].texture, spot.materials[0].texture, "{}", path.display());
        // Corner UVs come back in the OBJ convention (flipped from glTF's).
        for t in [0, 100, 5855] {
            let (a, b) = (m.triangle_uvs(t), spot.triangle_uvs(t));
            assert!((0..3).all(|k| a[k].abs_diff_eq(b[k], 1e-6)), "triangle {t}: {a:?} vs {b:?}");
        }
    }
}

/// (file name, bytes, extra files, expected kind, words the message must hold).
type Case = (&'static str, Vec<u8>, Vec<(&'static str, Vec<u8>)>, MeshErrorKind, &'static str);

fn malformed_cases() -> Vec<Case> {
    let tri = [[[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]];
    let mut truncated_stl = common::stl_binary(&[tri[0], tri[0]]);
    truncated_stl.truncate(84 + 70);
    let mut lying_stl = common::stl_binary(&tri);
    lying_stl[80..84].copy_from_slice(&7u32.to_le_bytes());
    let nan_stl = common::stl_binary(&[[[f32::NAN, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]);
    let ascii = common::stl_ascii(&tri);
    let pos = [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let face = vec![vec![0u32, 1, 2]];
    let mut truncated_ply = common::ply(true, &pos, None, &face);
    truncated_ply.truncate(truncated_ply.len() - 6);
    let lying_ply = String::from_utf8(common::ply(false, &pos, None, &face)).unwrap().replace("element vertex 3", "element vertex 5");
    let png = png_of(&image::RgbImage::new(2, 2));
    let uv = [[0.0f32, 0.0], [1.0, 0.0], [0.0, 1.0]];
    let gl = |p: &[[f32; 3]], i: &[u32]| common::glb(&common::gltf_parts(p, &uv, i, &png, None, None));
    let mut truncated_glb = gl(&pos, &[0, 1, 2]);
    truncated_glb.truncate(truncated_glb.len() - 20);
    let mut lying_glb = gl(&pos, &[0, 1, 2]);
    let claimed = (lying_glb.len() as u32 + 400).to_le_bytes();
    lying_glb[8..12].copy_from_slice(&claimed);
    let external = common::gltf_parts(&pos, &uv, &[0, 1, 2], &png, Some("gone.bin"), None);
    let short_bin = common::gltf_parts(&pos, &uv, &[0, 1, 2], &png, Some("short.bin"), None);
    vec![
        ("a.stl", truncated_stl, vec![], MeshErrorKind::Truncated, "header says 2 triangles"),
        ("a.stl", lying_stl, vec![], MeshErrorKind::Truncated, "header says 7 triangles"),
        ("a.stl", nan_stl, vec![], MeshErrorKind::NonFinite, "not finite"),
        ("a.stl", common::stl_binary(&[]), vec![], MeshErrorKind::NoFaces, "no triangles"),
        ("a.stl", ascii.as_bytes()[..ascii.len() / 2].to_vec(), vec![], MeshErrorKind::Truncated, "endsolid"),
        ("a.stl", ascii.replace("vertex 1 0 0", "vertex nan 0 0").into_bytes(), vec![], MeshErrorKind::NonFinite, "not finite"),
        ("a.stl", b"hi".to_vec(), vec![], MeshErrorKind::Truncated, "too short"),
        ("a.ply", truncated_ply, vec![], MeshErrorKind::Truncated, "ends before"),
        ("a.ply", lying_ply.into_bytes(), vec![], MeshErrorKind::Truncated, "header"),
        ("a.ply", common::ply(false, &pos, None, &[vec![0, 1, 9]]), vec![], MeshErrorKind::IndexOutOfRange, "vertex 9"),
        ("a.ply", common::ply(false, &[[f32::NAN, 0.0, 0.0], pos[1], pos[2]], None, &face), vec![], MeshErrorKind::NonFinite, "not finite"),
        ("a.ply", common::ply(true, &pos, None, &[]), vec![], MeshErrorKind::NoFaces, "no triangles"),
        ("a.ply", b"not a ply\n".to_vec(), vec![], MeshErrorKind::NotObj, "not a PLY"),
        ("a.glb", truncated_glb, vec![], MeshErrorKind::Truncated, "malformed glTF"),
        ("a.glb", lying_glb, vec![], MeshErrorKind::Truncated, "malformed glTF"),
        ("a.glb", gl(&pos, &[0, 1, 3]), vec![], MeshErrorKind::IndexOutOfRange, "vertex 3"),
        ("a.glb", gl(&[[f32::NAN, 0.0, 0.0], pos[1], pos[2]], &[0, 1, 2]), vec![], MeshErrorKind::NonFinite, "not finite"),
        ("a.glb", gl(&pos, &[]), vec![], MeshErrorKind::Buffer, "no elements"),
        ("a.gltf", external.json.into_bytes(), vec![], MeshErrorKind::Buffer, "gone.bin"),
        ("a.gltf", short_bin.json.into_bytes(), vec![("short.bin", short_bin.bin[..10].to_vec())], MeshErrorKind::Buffer, "buffer"),
        ("a.gltf", b"{ \"asset\": ".to_vec(), vec![], MeshErrorKind::Parse, "malformed glTF"),
        ("a.gltf", br#"{"asset":{"version":"2.0"},"scene":0,"scenes":[{"nodes":[]}]}"#.to_vec(), vec![], MeshErrorKind::NoFaces, "no triangles"),
        ("a.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n".to_vec(), vec![], MeshErrorKind::IndexOutOfRange, "out of range"),
        ("a.dae", b"<COLLADA/>".to_vec(), vec![], MeshErrorKind::NotObj, ".obj, .stl, .ply, .gltf and .glb"),
    ]
}

#[test]
fn every_malformed_file_gets_one_clear_error() {
    for (i, (name, bytes, extra, kind, words)) in malformed_cases().into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        for (n, b) in &extra {
            write(dir.path(), n, b);
        }
        let path = write(dir.path(), name, &bytes);
        let e = Mesh::load(&path).err().unwrap_or_else(|| panic!("case {i} ({name}) loaded"));
        let text = e.to_string();
        assert_eq!(e.kind, kind, "case {i}: {text}");
        assert!(text.contains(name) && text.contains(words), "case {i}: '{text}' should name the file and say '{words}'");
        assert!(text.contains('(') && !text.contains('\n'), "case {i}: one line with advice: {text}");
    }
}

#[test]
fn the_command_refuses_malformed_files_with_exit_2_and_writes_nothing() {
    let style = common::style_path();
    for (i, (name, bytes, extra, _, _)) in malformed_cases().into_iter().enumerate().step_by(3) {
        let dir = tempfile::tempdir().unwrap();
        for (n, b) in &extra {
            write(dir.path(), n, b);
        }
        let path = write(dir.path(), name, &bytes);
        let out = dir.path().join("out");
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_texstyle"))
            .args([path.to_str().unwrap(), "--style", style.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(err.starts_with("texstyle: error: ") && err.lines().count() == 1 && err.contains(name), "case {i}: {err}");
        assert!(!out.exists(), "case {i}: nothing written");
    }
}

/// Charts of a mesh with UVs: triangles connected through shared texture coordinates.
fn charts(m: &Mesh) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..m.texcoords.len()).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for t in &m.tri_texcoords {
        let a = find(&mut parent, t[0] as usize);
        for &k in &t[1..] {
            let b = find(&mut parent, k as usize);
            parent[b] = a;
        }
    }
    let mut ids = HashMap::new();
    m.tri_texcoords.iter().map(|t| {
        let root = find(&mut parent, t[0] as usize);
        let n = ids.len();
        *ids.entry(root).or_insert(n)
    }).collect()
}

/// Per texel of a `size²` atlas, the charts whose triangles cover its centre.
fn chart_map(m: &Mesh, chart: &[usize], size: u32) -> Vec<Vec<usize>> {
    let mut map = vec![Vec::new(); (size * size) as usize];
    let s = size as f32;
    for t in 0..m.triangles.len() {
        let uv = m.triangle_uvs(t).map(|p| glam::Vec2::new(p.x * s, (1.0 - p.y) * s));
        let area = (uv[1] - uv[0]).perp_dot(uv[2] - uv[0]);
        let lo = uv[0].min(uv[1]).min(uv[2]).floor().max(glam::Vec2::ZERO);
        let hi = uv[0].max(uv[1]).max(uv[2]).ceil().min(glam::Vec2::splat(s));
        for y in lo.y as u32..hi.y as u32 {
            for x in lo.x as u32..hi.x as u32 {
                let p = glam::Vec2::new(x as f32 + 0.5, y as f32 + 0.5);
                let w1 = (p - uv[0]).perp_dot(uv[2] - uv[0]) / area;
                let w2 = (uv[1] - uv[0]).perp_dot(p - uv[0]) / area;
                if w1 >= 0.0 && w2 >= 0.0 && w1 + w2 <= 1.0 {
                    let cell = &mut map[(y * size + x) as usize];
                    if !cell.contains(&chart[t]) {
                        cell.push(chart[t]);
                    }
                }
            }
        }
    }
    map
}

#[test]
fn bunny_atlas_has_padded_non_overlapping_charts_that_survive_the_export() {
    let size = 512;
    let mut bunny = common::load("bunny");
    let report = bunny.prepare_uvs(None, size).unwrap().expect("unwrapped");
    eprintln!("bunny atlas: {report}");
    assert!(report.coverage > 0.5, "{report}");
    assert!(report.density_spread < 1.5, "{report}");
    assert!(bunny.texcoords.iter().all(|t| (0.0..=1.0).contains(&t.x) && (0.0..=1.0).contains(&t.y)));
    let chart = charts(&bunny);
    let n_charts = chart.iter().max().unwrap() + 1;
    assert_eq!(n_charts as u32, report.charts);
    let map = chart_map(&bunny, &chart, size);
    // No texel centre in two charts, and no chart within 2 texels of another (padding).
    let mut overlaps = 0;
    let mut close = 0;
    for y in 0..size as i32 {
        for x in 0..size as i32 {
            let here = &map[(y * size as i32 + x) as usize];
            overlaps += (here.len() > 1) as usize;
            let Some(&c) = here.first() else { continue };
            for (dx, dy) in (-2..=2).flat_map(|dx| (-2..=2).map(move |dy| (dx, dy))) {
                let (nx, ny) = (x + dx, y + dy);
                if (0..size as i32).contains(&nx) && (0..size as i32).contains(&ny) {
                    close += map[(ny * size as i32 + nx) as usize].iter().any(|&o| o != c) as usize;
                }
            }
        }
    }
    assert_eq!(overlaps, 0, "texels covered by two charts");
    assert_eq!(close, 0, "charts closer than 2 texels");

    // Export a texture that names each chart by colour (padded like a
    // learned texture), read it back with tobj and the image crate.
    let mut img = Image::filled(size, size, [0.0; 3]);
    let mut seen = vec![false; (size * size) as usize];
    let colour = |c: usize| [((c + 1) & 255) as f32 / 255.0, ((c + 1) >> 8) as f32 / 255.0, 0.5];
    for (i, cell) in map.iter().enumerate() {
        if let Some(&c) = cell.first() {
            img.set_pixel(i as u32 % size, i as u32 / size, colour(c));
            seen[i] = true;
        }
    }
    texstyle::fill::fill_unseen(&mut img, &seen);
    let dir = tempfile::tempdir().unwrap();
    let files = texstyle::export::export(&bunny, std::slice::from_ref(&img), dir.path(), "bunny").unwrap();
    let (models, _) = tobj::load_obj(&files.obj, &tobj::LoadOptions { triangulate: false, ..Default::default() }).unwrap();
    let back = &models[0].mesh;
    assert_eq!(back.indices.len(), 3 * 69451);
    // Original positions exactly, in order, the unreferenced ones included
    // (tobj drops those, so the text is read for this), and the same faces.
    let text = std::fs::read_to_string(&files.obj).unwrap();
    let v: Vec<glam::Vec3> = text.lines().filter_map(|l| l.strip_prefix("v ")).map(|l| {
        let c: Vec<f32> = l.split_whitespace().map(|w| w.parse().unwrap()).collect();
        glam::Vec3::new(c[0], c[1], c[2])
    }).collect();
    assert_eq!(v, bunny.positions);
    let f: Vec<[u32; 3]> = text.lines().filter_map(|l| l.strip_prefix("f ")).map(|l| {
        let c: Vec<u32> = l.split_whitespace().map(|w| w.split('/').next().unwrap().parse::<u32>().unwrap() - 1).collect();
        [c[0], c[1], c[2]]
    }).collect();
    assert_eq!(f, bunny.triangles);
    let png = image::open(&files.textures[0]).unwrap().to_rgb8();
    let mut chart_area = vec![0.0f32; n_charts];
    for t in 0..bunny.triangles.len() {
        let uv = bunny.triangle_uvs(t);
        chart_area[chart[t]] += (uv[1] - uv[0]).perp_dot(uv[2] - uv[0]).abs() * 0.5 * (size * size) as f32;
    }
    let tiny = chart_area.iter().filter(|&&a| a < 1.0).count();
    eprintln!("{tiny} of {n_charts} charts are smaller than one texel");
    assert!(tiny * 10 <= n_charts, "{tiny} of {n_charts} charts smaller than a texel");
    let mut misses = 0;
    for t in 0..69451 {
        let uv: Vec<glam::Vec2> = (0..3).map(|k| {
            let i = back.texcoord_indices[3 * t + k] as usize;
            glam::Vec2::new(back.texcoords[2 * i], back.texcoords[2 * i + 1])
        }).collect();
        let centre = (uv[0] + uv[1] + uv[2]) / 3.0;
        for k in 0..3 {
            // Half a texel towards the triangle's centre from the corner.
            let p = uv[k] + (centre - uv[k]).normalize_or_zero() * (0.5 / size as f32);
            let (x, y) = ((p.x * size as f32) as u32, ((1.0 - p.y) * size as f32) as u32);
            let px = png.get_pixel(x.min(size - 1), y.min(size - 1));
            let got = px[0] as usize + ((px[1] as usize) << 8);
            // A chart smaller than a texel covers no texel centre, so no
            // texel can be its own; those are counted (and few), not checked.
            if got != chart[t] + 1 && chart_area[chart[t]] >= 1.0 {
                misses += 1;
                eprintln!("miss: triangle {t} corner {k} chart {} got {got} at ({x},{y})", chart[t] + 1);
            }
        }
    }
    assert_eq!(misses, 0, "face corners whose UV lands outside their chart in the PNG");
}

#[test]
fn uv_keep_keeps_and_auto_replaces_existing_uvs() {
    let mut spot = common::load("spot");
    let before = spot.texcoords.clone();
    assert!(spot.clone().prepare_uvs(None, 256).unwrap().is_none());
    assert!(spot.clone().prepare_uvs(Some(UvChoice::Keep), 256).unwrap().is_none());
    let r = spot.prepare_uvs(Some(UvChoice::Auto), 256).unwrap().unwrap();
    assert!(r.charts > 1 && spot.texcoords != before);
    assert!(!r.baked_colors && r.moved_textures, "{r}");
    // The content texture moved with the UVs: each triangle's centre reads
    // (nearly) the same colour through the new atlas as through the old UVs.
    let old = common::load("spot");
    let sample = |m: &Mesh, t: usize| {
        let tex = m.materials[0].texture.as_ref().unwrap();
        let uv = m.triangle_uvs(t);
        let c = (uv[0] + uv[1] + uv[2]) / 3.0;
        tex.pixel(((c.x * tex.width as f32) as u32).min(tex.width - 1), (((1.0 - c.y) * tex.height as f32) as u32).min(tex.height - 1))
    };
    let err: f32 = (0..old.triangles.len()).map(|t| {
        let (a, b) = (sample(&old, t), sample(&spot, t));
        (0..3).map(|c| (a[c] - b[c]).abs()).sum::<f32>() / 3.0
    }).sum::<f32>() / old.triangles.len() as f32;
    assert!(err < 0.03, "mean colour difference {err}");
}

/// Runs the style transfer on `file` (written with `extra` files into a
/// fresh folder) at test sizes; returns the output folder and stderr.
/// `TEXSTYLE_KEEP_TEST_OUT=DIR` keeps the outputs there, to look at them.
fn style_end_to_end(name: &str, bytes: &[u8], extra: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    for (n, b) in extra {
        write(dir.path(), n, b);
    }
    let input = write(dir.path(), name, bytes);
    let out = match std::env::var_os("TEXSTYLE_KEEP_TEST_OUT") {
        Some(keep) => Path::new(&keep).join(name.replace('.', "_")),
        None => dir.path().join("out"),
    };
    let style = common::style_path();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([input.to_str().unwrap(), "--style", style.to_str().unwrap(), "--steps", "8", "--texture-size", "128"])
        .args(["--render-size", "64", "--style-size", "128", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{name}: {err}");
    // Output named after the input, geometry unchanged.
    let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
    let obj = out.join(format!("{stem}.obj"));
    let (a, b) = (Mesh::load(&input).unwrap(), Mesh::load(&obj).unwrap());
    assert_eq!(a.positions, b.positions, "{name}: positions unchanged");
    assert_eq!(a.triangles, b.triangles, "{name}: triangles unchanged");
    assert!(b.has_uvs() && b.materials.iter().all(|m| m.texture.is_some()), "{name}");
    assert!(out.join("preview_before_after.png").is_file());
    (dir, out, err)
}

#[test]
fn plain_bunny_as_binary_stl_is_styled_end_to_end() {
    let stl = common::stl_binary(&common::soup(&common::load("bunny")));
    let (_d, out, err) = style_end_to_end("bunny.stl", &stl, &[]);
    assert!(err.contains("automatic UV atlas") && err.contains("no content loss"), "{err}");
    assert!(out.join("bunny_default.png").is_file());
}

#[test]
fn spot_as_ascii_stl_is_styled_end_to_end() {
    let stl = common::stl_ascii(&common::soup(&common::load("spot")));
    let (_d, _out, err) = style_end_to_end("spot.stl", stl.as_bytes(), &[]);
    assert!(err.contains("automatic UV atlas"), "{err}");
}

#[test]
fn spot_as_ply_with_vertex_colours_is_styled_with_them_as_content() {
    let (_d, _out, err) = style_end_to_end("spot.ply", &spot_ply(true), &[]);
    assert!(err.contains("vertex colours baked") && !err.contains("no content loss"), "{err}");
}

#[test]
fn spot_as_glb_with_its_texture_is_styled_end_to_end() {
    let png = std::fs::read(common::repo("meshes/spot/spot_texture.png")).unwrap();
    let (pos, uv, idx) = common::spot_unindexed_by_corner();
    let glb = common::glb(&common::gltf_parts(&pos, &uv, &idx, &png, None, None));
    let (_d, out, err) = style_end_to_end("spot.glb", &glb, &[]);
    assert!(!err.contains("automatic UV atlas") && !err.contains("no content loss"), "{err}");
    assert!(out.join("spot_skin.png").is_file());
}

#[test]
fn each_material_gets_its_own_atlas_and_quads_stay_in_one_chart() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mesh::load(common::write_two_material_cube(dir.path(), false)).unwrap();
    assert_eq!((m.materials.len(), m.triangles.len()), (2, 12));
    let r = m.prepare_uvs(None, 64).unwrap().unwrap();
    assert!(r.charts >= 2, "{r}");
    let chart = charts(&m);
    for t in 0..12 {
        assert!(m.triangle_uvs(t).iter().all(|uv| (0.0..=1.0).contains(&uv.x) && (0.0..=1.0).contains(&uv.y)));
        // The two triangles of each quad share a chart (one UV per polygon corner).
        if t % 2 == 1 {
            assert_eq!(chart[t], chart[t - 1], "quad {}", t / 2);
        }
    }
    // No chart spans both materials: they live on separate pages.
    for t in 0..12 {
        for u in 0..12 {
            if m.tri_material[t] != m.tri_material[u] {
                assert_ne!(chart[t], chart[u]);
            }
        }
    }
}
