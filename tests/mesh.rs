//! Loading meshes: the real assets load with their materials, and each kind
//! of bad input gets its own error (file, line where known), never a panic.

mod common;

use std::path::{Path, PathBuf};

use texstyle::mesh::{Mesh, MeshErrorKind, UvChoice, UvCoverage};

#[test]
fn assets_load_with_uvs_textures_and_shared_positions() {
    for (name, tris) in [("spot", 5856)] {
        let m = common::load(name);
        assert_eq!(m.triangles.len(), tris, "{name}");
        assert!(m.has_uvs(), "{name}");
        assert_eq!(m.materials.len(), 1, "{name}");
        let tex = m.materials[0].texture.as_ref().expect("texture loaded");
        assert!(tex.width >= 1024, "{name}");
        // Closed meshes: every position is used by several triangles.
        assert!(m.positions.len() < m.triangles.len(), "{name}: positions not shared");
    }
}

#[test]
fn mesh_without_uvs_is_accepted_and_keeps_every_vertex_in_order() {
    let m = common::load("bunny");
    assert!(!m.has_uvs());
    assert_eq!(m.triangles.len(), 69451);
    // All 35,947 vertices of the scan, the 1,113 unreferenced ones included.
    assert_eq!(m.positions.len(), 35947);
    assert_eq!(m.positions[0], glam::Vec3::new(-0.03783, 0.12794, 0.004475));
}

#[test]
fn normalization_fits_the_unit_cube_and_keeps_original_positions() {
    let m = common::load("spot");
    let (lo, hi) = m.bounds();
    let n = m.normalization();
    let (a, b) = (n.transform_point3(lo), n.transform_point3(hi));
    assert!((a.min_element() - -1.0).abs() < 1e-5 || (b.max_element() - 1.0).abs() < 1e-5);
    assert!(a.cmpge(glam::Vec3::splat(-1.0 - 1e-5)).all() && b.cmple(glam::Vec3::splat(1.0 + 1e-5)).all());
    // The centre of the box goes to the origin.
    assert!(n.transform_point3((lo + hi) / 2.0).length() < 1e-5);
}

/// Writes `files` into a fresh directory and loads `mesh.obj` from it.
fn load_files(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Result<Mesh, texstyle::mesh::MeshError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let r = Mesh::load(dir.path().join("mesh.obj"));
    (dir, r)
}

fn expect_error(files: &[(&str, &[u8])], kind: MeshErrorKind, line: Option<usize>, words: &str) {
    let (_dir, r) = load_files(files);
    let e = r.expect_err("bad input must be rejected");
    let text = e.to_string();
    assert_eq!(e.kind, kind, "{text}");
    assert_eq!(e.line, line, "{text}");
    assert!(text.contains("mesh.obj") || text.contains(".mtl") || text.contains(".png"), "names the file: {text}");
    assert!(text.contains(words), "'{text}' should mention '{words}'");
}

const QUAD_MTL: &[u8] = b"newmtl m\nKd 1 1 1\nmap_Kd tex.png\n";

fn quad_obj(extra: &str) -> Vec<u8> {
    format!("mtllib mesh.mtl\nusemtl m\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nf 1/1 2/2 3/3 4/4\n{extra}")
        .into_bytes()
}

fn png_bytes() -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[test]
fn a_good_quad_loads_as_two_triangles_with_its_texture() {
    let (_d, r) = load_files(&[("mesh.obj", &quad_obj("")), ("mesh.mtl", QUAD_MTL), ("tex.png", &png_bytes())]);
    let m = r.unwrap();
    assert_eq!(m.triangles.len(), 2);
    assert_eq!(m.materials[0].texture.as_ref().unwrap().pixel(0, 0), [200.0 / 255.0, 10.0 / 255.0, 10.0 / 255.0]);
}

#[test]
fn missing_file() {
    let e = Mesh::load(Path::new("/nonexistent/dir/mesh.obj")).unwrap_err();
    assert_eq!(e.kind, MeshErrorKind::Io);
    assert!(e.to_string().contains("/nonexistent/dir/mesh.obj"));
}

#[test]
fn binary_file_is_not_an_obj() {
    expect_error(&[("mesh.obj", &png_bytes())], MeshErrorKind::NotObj, None, "binary");
}

#[test]
fn text_without_obj_statements_is_not_an_obj() {
    expect_error(&[("mesh.obj", b"hello world\nthis is a letter\n")], MeshErrorKind::NotObj, None, "no v/vt/f");
}

#[test]
fn vertices_without_faces() {
    expect_error(&[("mesh.obj", b"v 0 0 0\nv 1 0 0\n")], MeshErrorKind::NoFaces, None, "no faces");
}

#[test]
fn face_index_out_of_range_names_the_line() {
    expect_error(&[("mesh.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n")], MeshErrorKind::IndexOutOfRange, Some(4), "7");
    expect_error(&[("mesh.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 -5\n")], MeshErrorKind::IndexOutOfRange, Some(4), "-5");
    expect_error(
        &[("mesh.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/2\n")],
        MeshErrorKind::IndexOutOfRange,
        Some(5),
        "texture coordinate",
    );
}

#[test]
fn nan_and_infinite_coordinates_name_the_line() {
    expect_error(&[("mesh.obj", b"v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")], MeshErrorKind::NonFinite, Some(2), "nan");
    expect_error(&[("mesh.obj", b"v 0 0 0\nv 1 0 0\nv 0 inf 0\nf 1 2 3\n")], MeshErrorKind::NonFinite, Some(3), "inf");
    expect_error(&[("mesh.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvt NaN 0\nf 1/1 2/1 3/1\n")], MeshErrorKind::NonFinite, Some(4), "NaN");
}

#[test]
fn unparsable_coordinate_names_the_line() {
    expect_error(&[("mesh.obj", b"v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n")], MeshErrorKind::Parse, Some(2), "zero");
}

#[test]
fn faces_mixing_uvs_and_none_need_a_choice() {
    let obj = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf 2 4 3\n";
    let (_d, r) = load_files(&[("mesh.obj", obj)]);
    let mut m = r.unwrap();
    assert_eq!(m.uv_coverage, UvCoverage::Partial("line 6 has UVs, line 7 has none".into()));
    for keep in [None, Some(UvChoice::Keep)] {
        let e = m.clone().prepare_uvs(keep, 64).unwrap_err();
        assert_eq!(e.kind, MeshErrorKind::MixedUvs);
        let text = e.to_string();
        assert!(text.contains("mesh.obj") && text.contains("line 6 has UVs") && text.contains("--uv auto") && text.contains("--uv keep"), "{text}");
    }
    let report = m.prepare_uvs(Some(UvChoice::Auto), 64).unwrap().expect("unwrapped");
    assert!(m.has_uvs() && report.charts >= 1);
    let within = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2 3/1\n";
    expect_error(&[("mesh.obj", within)], MeshErrorKind::MixedUvs, Some(5), "some corners");
}

#[test]
fn missing_material_library() {
    expect_error(&[("mesh.obj", &quad_obj(""))], MeshErrorKind::Material, None, "not found");
}

#[test]
fn missing_texture() {
    expect_error(&[("mesh.obj", &quad_obj("")), ("mesh.mtl", QUAD_MTL)], MeshErrorKind::Texture, None, "tex.png");
}

#[test]
fn corrupt_texture() {
    let mut bad = png_bytes();
    bad.truncate(30);
    expect_error(
        &[("mesh.obj", &quad_obj("")), ("mesh.mtl", QUAD_MTL), ("tex.png", &bad)],
        MeshErrorKind::Texture,
        None,
        "cannot be decoded",
    );
}

#[test]
fn all_vertices_at_one_point() {
    expect_error(&[("mesh.obj", b"v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n")], MeshErrorKind::Degenerate, None, "same point");
}

#[test]
fn several_materials_each_keep_their_texture() {
    let obj = b"mtllib mesh.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl a\nf 1/1 2/2 3/3\nusemtl b\nf 2/2 4/1 3/3\n";
    let mtl = b"newmtl a\nmap_Kd a.png\nnewmtl b\nKd 0 0 1\nmap_Kd b.png\n";
    let other = {
        let mut png = Vec::new();
        image::RgbImage::from_pixel(2, 2, image::Rgb([0, 255, 0]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    };
    let (_d, r) = load_files(&[("mesh.obj", obj), ("mesh.mtl", mtl), ("a.png", &png_bytes()), ("b.png", &other)]);
    let m = r.unwrap();
    assert_eq!(m.materials.len(), 2);
    let name_of = |t: usize| m.materials[m.tri_material[t] as usize].name.clone();
    assert_eq!((name_of(0), name_of(1)), ("a".to_string(), "b".to_string()));
    let b = &m.materials[m.tri_material[1] as usize];
    assert_eq!(b.texture.as_ref().unwrap().pixel(0, 0), [0.0, 1.0, 0.0]);
    assert_eq!(b.texture_path.as_ref().unwrap().file_name().unwrap(), PathBuf::from("b.png").as_os_str());
    // Positions are shared across the two groups.
    assert_eq!(m.positions.len(), 4);
}

// Wavefront details that real exporters write, and hostile ones.

#[test]
fn a_byte_order_mark_does_not_hide_mtllib() {
    let mut obj = b"\xef\xbb\xbf".to_vec();
    obj.extend(quad_obj(""));
    let (_d, r) = load_files(&[("mesh.obj", &obj), ("mesh.mtl", QUAD_MTL), ("tex.png", &png_bytes())]);
    let m = r.unwrap();
    assert!(m.materials[0].texture.is_some(), "the texture behind the BOM'd mtllib line is loaded");
}

#[test]
fn map_kd_file_names_with_spaces_as_blender_writes_them() {
    let mtl = b"newmtl m\nKd 1 1 1\nmap_Kd my  painted tex.png\n";
    let (_d, r) = load_files(&[("mesh.obj", &quad_obj("")), ("mesh.mtl", mtl), ("my  painted tex.png", &png_bytes())]);
    let m = r.unwrap();
    assert!(m.materials[0].texture_path.as_ref().unwrap().ends_with("my  painted tex.png"));
    assert!(m.materials[0].texture.is_some());
}

#[test]
fn map_kd_options_are_skipped() {
    for line in ["map_Kd -s 2 2 1 tex.png", "map_Kd -o 0.5 0.5 -bm 0.2 tex.png", "map_Kd -clamp on -s 1 tex.png"] {
        let mtl = format!("newmtl m\nKd 1 1 1\n{line}\n");
        let (_d, r) = load_files(&[("mesh.obj", &quad_obj("")), ("mesh.mtl", mtl.as_bytes()), ("tex.png", &png_bytes())]);
        let m = r.unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(m.materials[0].texture_path.as_ref().unwrap().ends_with("tex.png"), "{line}");
        // -s and -o move the texture, which texstyle does not do: said, not silent.
        assert_eq!(m.warnings.len(), 1, "{line}: {:?}", m.warnings);
        assert!(m.warnings[0].contains("mesh.mtl:3") && m.warnings[0].contains("ignored"), "{:?}", m.warnings);
    }
}

#[test]
fn windows_backslashes_in_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mat/tex")).unwrap();
    let obj = quad_obj("").iter().map(|&b| b as char).collect::<String>().replace("mtllib mesh.mtl", "mtllib mat\\mesh.mtl");
    std::fs::write(dir.path().join("mesh.obj"), obj).unwrap();
    std::fs::write(dir.path().join("mat/mesh.mtl"), "newmtl m\nmap_Kd tex\\wood.png\n").unwrap();
    std::fs::write(dir.path().join("mat/tex/wood.png"), png_bytes()).unwrap();
    let m = Mesh::load(dir.path().join("mesh.obj")).unwrap();
    assert!(m.materials[0].texture.is_some());
}

#[test]
fn usemtl_naming_an_undefined_material_is_a_warning_naming_it() {
    let (_d, r) = load_files(&[("mesh.obj", &quad_obj("").iter().map(|&b| b as char).collect::<String>().replace("usemtl m", "usemtl ghost").into_bytes()), ("mesh.mtl", QUAD_MTL), ("tex.png", &png_bytes())]);
    let m = r.unwrap();
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("'ghost'") && m.warnings[0].contains("mesh.obj:2"), "{}", m.warnings[0]);
}

#[test]
fn concave_polygons_are_ear_clipped_and_remember_their_face() {
    // An arrow-head quad, then a triangle: a fan from corner 1 would cover
    // the notch (outside the face) and fold back over the face.
    let obj = b"v 0 0 0\nv 2 1 0\nv 0 2 0\nv 0.5 1 0\nv 3 0 0\nf 1 2 3 4\nf 2 1 5\n";
    let (_d, r) = load_files(&[("mesh.obj", obj)]);
    let m = r.unwrap();
    assert_eq!(m.triangles.len(), 3);
    assert_eq!(m.tri_polygon, [0, 0, 1]);
    let p = |i: u32| m.positions[i as usize];
    for t in &m.triangles[..2] {
        // Same winding as the face (counter-clockwise, +z) and the reflex corner 4 in both.
        let n = (p(t[1]) - p(t[0])).cross(p(t[2]) - p(t[0]));
        assert!(n.z > 0.0, "{t:?}");
        assert!(t.contains(&3), "{t:?}");
    }
}

#[test]
fn obj_vertex_colours_are_read() {
    let (_d, r) = load_files(&[("mesh.obj", b"v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nf 1 2 3\n")]);
    let m = r.unwrap();
    assert_eq!(m.vertex_colors, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
}

#[test]
fn obj_backslash_line_continuations_join_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cont.obj");
    std::fs::write(&p, "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 \\\n  3\nf 2 4 3\nf 1 2 9\n").unwrap();
    let e = Mesh::load(&p).unwrap_err();
    // The bad face is on line 8, after a two-line statement (lines 5-6).
    assert_eq!(e.line, Some(8), "{e}");
    std::fs::write(&p, "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 \\\n  3\nf 2 4 3\n").unwrap();
    let m = Mesh::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.triangles.len(), 2);
}

#[test]
fn an_obj_without_extension_is_recognized_from_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model");
    std::fs::write(&p, "# a triangle\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n").unwrap();
    let m = Mesh::load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.triangles.len(), 1);
    assert!(m.warnings.iter().any(|w| w.contains("OBJ")), "says what it assumed: {:?}", m.warnings);
    let stl = dir.path().join("part.bin");
    std::fs::write(&stl, common::stl_binary(&[[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])).unwrap();
    let m = Mesh::load(&stl).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.triangles.len(), 1);
}

#[test]
fn all_zero_uvs_are_loaded_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("flat_uv.obj");
    std::fs::write(&p, "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\n").unwrap();
    let m = Mesh::load(&p).unwrap();
    assert!(m.warnings.iter().any(|w| w.contains("--uv auto")), "{:?}", m.warnings);
}

#[test]
fn a_path_with_a_newline_keeps_the_error_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad\nname.obj");
    std::fs::write(&p, "v 0 0 0\nf 1 2 3\n").unwrap();
    let e = Mesh::load(&p).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
    assert!(e.contains("bad\\nname.obj"), "{e}");
}

#[test]
fn empty_or_corrupt_paintings_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    for p in [empty, corrupt] {
        let e = texstyle::image_io::Image::load(&p).unwrap_err().to_string();
        assert!(e.trim_end().ends_with(')'), "{}: {e}", p.display());
    }
}
