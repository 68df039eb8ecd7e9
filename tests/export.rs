//! Export as a round trip: what texstyle writes, readers that are not
//! texstyle's read back with the same geometry, UVs, materials and textures:
//! tobj (OBJ, MTL), the image crate (PNG), the zip crate, the gltf crate (GLB)
//! and a 3MF checker written here from the specifications.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::process::Command;

use texstyle::export::{export, write_all, Format, Made, Plan, Request};
use texstyle::image_io::Image;
use texstyle::mesh::Mesh;
use texstyle::raster::Raster;

/// A triangle's three corners as (position, UV), as a file holds them.
type Corners = [([f32; 3], [f32; 2]); 3];

/// Triangles by material, each turned to start at its least corner (winding
/// kept), in order: polygons split along the same diagonals compare equal
/// whichever corner each splitter starts from.
fn canonical(mut by_material: BTreeMap<String, Vec<Corners>>) -> BTreeMap<String, Vec<Corners>> {
    for tris in by_material.values_mut() {
        for t in tris.iter_mut() {
            let first = (0..3).min_by(|&a, &b| t[a].partial_cmp(&t[b]).unwrap()).unwrap();
            t.rotate_left(first);
        }
        tris.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    by_material
}

/// The OBJ's triangles by material name as tobj reads them (UVs as written:
/// tobj does not flip v), [`canonical`], and its materials.
fn obj_triangles(path: &Path) -> (BTreeMap<String, Vec<Corners>>, Vec<tobj::Material>) {
    let (models, mats) = load_obj(path);
    let mut by_material: BTreeMap<String, Vec<Corners>> = BTreeMap::new();
    for model in &models {
        let m = &model.mesh;
        let name = mats[m.material_id.expect("every face has a material")].name.clone();
        let (p, t) = (&m.positions, &m.texcoords);
        let corners = m.indices.chunks(3).zip(m.texcoord_indices.chunks(3)).map(|(f, tf)| {
            [0, 1, 2].map(|k| {
                let (i, j) = (f[k] as usize, tf[k] as usize);
                ([p[3 * i], p[3 * i + 1], p[3 * i + 2]], [t[2 * j], t[2 * j + 1]])
            })
        });
        by_material.entry(name).or_default().extend(corners);
    }
    (canonical(by_material), mats)
}

/// The mesh's triangles by material name, [`canonical`].
fn mesh_triangles(mesh: &Mesh) -> BTreeMap<String, Vec<Corners>> {
    let mut by_material: BTreeMap<String, Vec<Corners>> = BTreeMap::new();
    for (t, tri) in mesh.triangles.iter().enumerate() {
        let uvs = mesh.triangle_uvs(t);
        let corners = [0, 1, 2].map(|k| (mesh.positions[tri[k] as usize].to_array(), uvs[k].to_array()));
        by_material.entry(mesh.materials[mesh.tri_material[t] as usize].name.clone()).or_default().push(corners);
    }
    canonical(by_material)
}

/// The PNG a material of the OBJ at `obj` names, read by the image crate.
fn material_png(obj: &Path, mat: &tobj::Material) -> image::RgbImage {
    let name = mat.diffuse_texture.as_deref().unwrap_or_else(|| panic!("{} has no map_Kd", mat.name));
    image::open(obj.parent().unwrap().join(name)).unwrap().to_rgb8()
}

#[test]
fn spot_round_trips_through_obj_mtl_png() {
    let mesh = common::load("spot");
    let mut tex = Image::filled(64, 32, [0.25, 0.5, 0.75]);
    tex.set_pixel(3, 5, [1.0, 0.0, 0.0]);
    let dir = tempfile::tempdir().unwrap();
    let out = export(&mesh, std::slice::from_ref(&tex), dir.path(), "spot_styled").unwrap();
    assert_eq!(out.obj, dir.path().join("spot_styled.obj"));
    // Relative paths only, so the folder can be moved (or zipped for a slicer).
    let obj_text = std::fs::read_to_string(&out.obj).unwrap();
    assert!(obj_text.contains("\nmtllib spot_styled.mtl\n"));
    let mtl_text = std::fs::read_to_string(&out.mtl).unwrap();
    assert!(mtl_text.contains("map_Kd spot_styled_spot.png"), "{mtl_text}");

    // Every triangle, corner by corner: same positions, same UVs (v not flipped).
    let (back, mats) = obj_triangles(&out.obj);
    assert_eq!(mats.len(), 1);
    assert_eq!(back, mesh_triangles(&mesh));
    let png = material_png(&out.obj, &mats[0]);
    assert_eq!(png, tex.to_rgb8());
    assert_eq!((png.width(), png.height()), (64, 32));
    assert_eq!((png.get_pixel(3, 5).0, png.get_pixel(0, 0).0), ([255, 0, 0], [64, 128, 191]));
    // Nothing but the three files (no temporaries left behind).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn every_material_gets_its_own_texture() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("mesh.obj"),
        "mtllib mesh.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl red paint\nf 1/1 2/2 3/3\nusemtl blue\nf 2/2 4/1 3/3\n",
    )
    .unwrap();
    std::fs::write(src.join("mesh.mtl"), "newmtl red paint\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n").unwrap();
    let mesh = Mesh::load(src.join("mesh.obj")).unwrap();
    let texs = [Image::filled(4, 4, [1.0, 0.0, 0.0]), Image::filled(4, 4, [0.0, 0.0, 1.0])];
    let out = export(&mesh, &texs, &dir.path().join("out"), "styled").unwrap();
    assert_eq!(out.textures.len(), 2);
    let (back, mats) = obj_triangles(&out.obj);
    assert_eq!(back, mesh_triangles(&mesh));
    let by_name = |n: &str| material_png(&out.obj, mats.iter().find(|m| m.name == n).unwrap()).get_pixel(0, 0).0;
    assert_eq!(by_name("red paint"), [255, 0, 0]);
    assert_eq!(by_name("blue"), [0, 0, 255]);
}

// ---------------------------------------------------------------------------
// Every export format, each read back by a reader that is not texstyle's:
// tobj (OBJ), the zip crate, the gltf crate (GLB), and a 3MF checker written
// here from the 3MF Core and Materials specifications. The mesh is built in
// code (a 2 × 1 × 0.5 box, one UV chart per face), so nothing outside the
// repository is read.

/// A box with one UV chart per face (3 × 2 atlas), its MTL and a 48 × 32
/// texture with a gradient and a checker, written into `dir`.
fn write_box(dir: &Path) -> std::path::PathBuf {
    let mut obj = String::from("mtllib box.mtl\n");
    for (x, y, z) in [(0, 0, 0), (2, 0, 0), (2, 1, 0), (0, 1, 0)].iter().chain(&[(0, 0, 1), (2, 0, 1), (2, 1, 1), (0, 1, 1)]) {
        obj += &format!("v {x} {y} {}\n", *z as f32 * 0.5);
    }
    let faces = [[1, 4, 3, 2], [5, 6, 7, 8], [1, 2, 6, 5], [4, 8, 7, 3], [1, 5, 8, 4], [2, 3, 7, 6]];
    for i in 0..6 {
        let (c, r) = ((i % 3) as f32, (i / 3) as f32);
        let (u0, u1, v0, v1) = (c / 3.0 + 0.02, (c + 1.0) / 3.0 - 0.02, r / 2.0 + 0.02, (r + 1.0) / 2.0 - 0.02);
        obj += &format!("vt {u0} {v0}\nvt {u1} {v0}\nvt {u1} {v1}\nvt {u0} {v1}\n");
    }
    obj += "usemtl paint\n";
    for (i, f) in faces.iter().enumerate() {
        let t = 4 * i + 1;
        obj += &format!("f {}/{} {}/{} {}/{} {}/{}\n", f[0], t, f[1], t + 1, f[2], t + 2, f[3], t + 3);
    }
    std::fs::write(dir.join("box.obj"), obj).unwrap();
    std::fs::write(dir.join("box.mtl"), "newmtl paint\nKd 1 1 1\nmap_Kd box.png\n").unwrap();
    let mut tex = Image::filled(48, 32, [0.0; 3]);
    for y in 0..32 {
        for x in 0..48 {
            let checker = ((x / 4 + y / 4) % 2) as f32;
            tex.set_pixel(x, y, [x as f32 / 47.0, y as f32 / 31.0, 0.2 + 0.6 * checker]);
        }
    }
    tex.save_png(&dir.join("box.png")).unwrap();
    dir.join("box.obj")
}

/// The box and its texture (8-bit, as the file holds it), loaded.
fn box_mesh(dir: &Path) -> (Mesh, Image) {
    let mesh = Mesh::load(write_box(dir)).unwrap();
    let tex = mesh.materials[0].texture.clone().unwrap();
    (mesh, tex)
}

fn export_box(formats: &[Format], print_size_mm: Option<f32>, max_triangles: usize) -> (tempfile::TempDir, Mesh, Image, Vec<Made>) {
    let dir = tempfile::tempdir().unwrap();
    let (mesh, tex) = box_mesh(dir.path());
    let plan = Plan::new(&mesh, Request { formats: formats.to_vec(), print_size_mm, max_triangles, close_holes: false }, (48, 32)).unwrap();
    let out = dir.path().join("out");
    // The CPU reference rasterizer: the previews need no adapter here.
    let made = write_all(&plan, &mesh, std::slice::from_ref(&tex), &out, "box", &[], &mut |m| Ok(Raster::new(None, m)?)).unwrap();
    (dir, mesh, tex, made)
}

/// Bilinear lookup written from `conventions` (texel centres at +0.5, row
/// = (1 − v)·H, wrap), independently of texstyle's lookup.
fn sample(tex: &Image, u: f32, v: f32) -> [f32; 3] {
    let (w, h) = (tex.width as i64, tex.height as i64);
    let (x, y) = (u * w as f32 - 0.5, (1.0 - v) * h as f32 - 0.5);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |dx: i64, dy: i64| tex.pixel((x0 as i64 + dx).rem_euclid(w) as u32, (y0 as i64 + dy).rem_euclid(h) as u32);
    let (a, b, c, d) = (at(0, 0), at(1, 0), at(0, 1), at(1, 1));
    [0, 1, 2].map(|k| (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy)
}

fn longest_side(points: impl Iterator<Item = [f32; 3]>) -> f32 {
    let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in points {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    (0..3).map(|k| hi[k] - lo[k]).fold(0.0, f32::max)
}

fn load_obj(path: &Path) -> (Vec<tobj::Model>, Vec<tobj::Material>) {
    let (models, mats) = tobj::load_obj(path, &tobj::LoadOptions { triangulate: true, ..Default::default() }).unwrap();
    (models, mats.unwrap_or_default())
}

#[test]
fn vertex_colors_are_the_texture_at_each_vertex_uv_within_the_budget() {
    let (_dir, mesh, tex, made) = export_box(&[Format::VertexColors], Some(80.0), 1_000_000);
    let (models, _) = load_obj(&made[0].files[0]);
    let m = &models[0].mesh;
    let tris = m.indices.len() / 3;
    assert!(tris > 100 * mesh.triangles.len() && tris <= 1_000_000, "{tris} triangles");
    assert_eq!(m.vertex_color.len(), m.positions.len(), "one colour per vertex");
    // The split mesh keeps the box (z up after placement): 80 × 20 × 40 mm.
    let pos: Vec<[f32; 3]> = m.positions.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
    assert!((longest_side(pos.iter().copied()) - 80.0).abs() < 1e-3);
    // Each vertex on a face's interior (not on a box edge, where UV charts
    // meet) carries the texture at its UV: recover the UV from the position
    // on its face's chart.
    let mut checked = 0;
    for (i, p) in pos.iter().enumerate() {
        // Back to box units: x' = x, y' = −z, z' = y, scale 40 per unit.
        let (x, y, z) = (p[0] / 40.0, p[2] / 40.0, -p[1] / 40.0);
        let inner = |a: f32, hi: f32| a > 1e-3 && a < hi - 1e-3;
        // Face +z (chart 1: u from x/2, v from y) only.
        if (z - 0.5).abs() < 1e-4 && inner(x, 2.0) && inner(y, 1.0) {
            let (u0, u1, v0, v1) = (1.0 / 3.0 + 0.02, 2.0 / 3.0 - 0.02, 0.02, 0.5 - 0.02);
            let (u, v) = (u0 + (u1 - u0) * x / 2.0, v0 + (v1 - v0) * y);
            let want = sample(&tex, u, v);
            let got = &m.vertex_color[3 * i..3 * i + 3];
            assert!((0..3).all(|k| (got[k] - want[k]).abs() < 2e-4), "vertex {i}: {got:?} vs {want:?}");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} vertices checked");
    let preview = Image::load(made[0].preview.as_ref().unwrap()).unwrap();
    assert_eq!((preview.width, preview.height), (8 * 260 + 4, 264));
}

#[test]
fn palette_has_exactly_n_colours_and_every_face_one_of_them() {
    let n = 5;
    let (_dir, _mesh, _tex, made) = export_box(&[Format::Palette(n)], None, 1_000_000);
    let obj = made[0].files.iter().find(|f| f.extension().unwrap() == "obj").unwrap();
    let (models, mats) = load_obj(obj);
    assert_eq!(mats.len(), n as usize);
    let kd: BTreeSet<[u8; 3]> = mats.iter().map(|m| m.diffuse.unwrap().map(|c| (c * 255.0).round() as u8)).collect();
    assert_eq!(kd.len(), n as usize, "N distinct colours");
    // Material names carry the hex code the user is told; every listed code is a material.
    // Without --print-size the user is told the size it will print at, and how to change it.
    assert!(made[0].notes.iter().any(|l| l.starts_with("2.0 × 0.5 × 1.0 mm") && l.contains("--print-size MM")), "{:?}", made[0].notes);
    let listed = made[0].notes.iter().find(|l| l.contains("filaments")).unwrap();
    for m in &mats {
        let [r, g, b] = m.diffuse.unwrap().map(|c| (c * 255.0).round() as u8);
        let hex = format!("{r:02x}{g:02x}{b:02x}");
        assert!(m.name.ends_with(&hex) && listed.contains(&format!("#{hex}")), "{} / {listed}", m.name);
    }
    // tobj makes one model per usemtl group; every face has a palette material.
    let faces: usize = models.iter().map(|m| m.mesh.indices.len() / 3).sum();
    assert!(models.iter().all(|m| m.mesh.material_id.is_some_and(|id| id < n as usize)));
    assert!(faces > 1000);
    assert!(made[0].preview.as_ref().unwrap().exists());
}

#[test]
fn triangle_budget_binds_and_holds() {
    let (_dir, mesh, _tex, made) = export_box(&[Format::VertexColors, Format::Palette(2)], None, 500);
    for m in &made {
        let obj = m.files.iter().find(|f| f.extension().unwrap() == "obj").unwrap();
        let faces: usize = load_obj(obj).0.iter().map(|m| m.mesh.indices.len() / 3).sum();
        assert!(faces <= 500 && faces > mesh.triangles.len(), "{}: {faces}", m.format);
    }
}

#[test]
fn glb_reads_back_with_the_gltf_crate() {
    let (_dir, mesh, tex, made) = export_box(&[Format::Glb], None, 1_000_000);
    let bytes = std::fs::read(&made[0].files[0]).unwrap();
    let gltf = gltf::Gltf::from_slice(&bytes).expect("valid GLB (the gltf crate validates it)");
    let blob = gltf.blob.as_deref().unwrap();
    let prims: Vec<_> = gltf.meshes().flat_map(|m| m.primitives().collect::<Vec<_>>()).collect();
    assert_eq!(prims.len(), 1);
    let p = &prims[0];
    let mat = p.material();
    assert!(mat.unlit(), "viewers show the painted colours as they are");
    let info = mat.pbr_metallic_roughness().base_color_texture().unwrap();
    let gltf::image::Source::View { view, mime_type } = info.texture().source().source() else { panic!("embedded image") };
    assert_eq!(mime_type, "image/png");
    let png = image::load_from_memory(&blob[view.offset()..view.offset() + view.length()]).unwrap().to_rgb8();
    assert_eq!(png, tex.to_rgb8());
    let r = p.reader(|_| Some(blob));
    let pos: Vec<[f32; 3]> = r.read_positions().unwrap().collect();
    let uv: Vec<[f32; 2]> = r.read_tex_coords(0).unwrap().into_f32().collect();
    let idx: Vec<u32> = r.read_indices().unwrap().into_u32().collect();
    // Same triangles, corner by corner; glTF's v runs top-down.
    let key = |p: [f32; 3], uv: [f32; 2]| format!("{:?}{:?}", p, [uv[0], uv[1]]);
    let got: Vec<String> = idx.chunks(3).map(|t| t.iter().map(|&i| key(pos[i as usize], uv[i as usize])).collect()).collect();
    let want: Vec<String> = (0..mesh.triangles.len())
        .map(|t| {
            let uvs = mesh.triangle_uvs(t);
            (0..3).map(|k| key(mesh.positions[mesh.triangles[t][k] as usize].to_array(), [uvs[k].x, 1.0 - uvs[k].y])).collect()
        })
        .collect();
    assert_eq!(got, want);
}

/// The embedded PNG of a material's base colour texture, decoded.
fn base_color_png(mat: &gltf::Material, blob: &[u8]) -> Option<image::RgbImage> {
    let info = mat.pbr_metallic_roughness().base_color_texture()?;
    let gltf::image::Source::View { view, .. } = info.texture().source().source() else { panic!("embedded image") };
    Some(image::load_from_memory(&blob[view.offset()..view.offset() + view.length()]).unwrap().to_rgb8())
}

#[test]
fn glb_variants_flip_each_primitive_between_the_styled_and_the_original_texture() {
    let dir = tempfile::tempdir().unwrap();
    let (mesh, own) = box_mesh(dir.path());
    let styled = Image::filled(48, 32, [0.9, 0.1, 0.3]);
    let file = texstyle::export::glb::file_with_variants(&mesh, &mesh.positions, std::slice::from_ref(&styled), "v.glb".into()).unwrap();
    let gltf = gltf::Gltf::from_slice(&file.bytes).expect("valid GLB (the gltf crate validates it)");
    let blob = gltf.blob.as_deref().unwrap();
    let prim = gltf.meshes().next().unwrap().primitives().next().unwrap();
    // Viewers without the extension show the styled material.
    assert_eq!(base_color_png(&prim.material(), blob).unwrap(), styled.to_rgb8());
    // The extension itself, read from the JSON chunk as any reader sees it.
    let glb = gltf::Glb::from_slice(&file.bytes).unwrap();
    let json: gltf::json::Value = gltf::json::deserialize::from_slice(&glb.json).unwrap();
    let used: Vec<&str> = json["extensionsUsed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(used.contains(&"KHR_materials_variants") && used.contains(&"KHR_materials_unlit"), "{used:?}");
    let names: Vec<&str> = json["extensions"]["KHR_materials_variants"]["variants"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["styled", "original"]);
    let mappings = json["meshes"][0]["primitives"][0]["extensions"]["KHR_materials_variants"]["mappings"].as_array().unwrap();
    assert_eq!(mappings.len(), 2);
    let material_of = |variant: u64| {
        let m = mappings.iter().find(|m| m["variants"].as_array().unwrap().iter().any(|v| v.as_u64() == Some(variant))).unwrap();
        gltf.materials().nth(m["material"].as_u64().unwrap() as usize).unwrap()
    };
    assert_eq!(material_of(0).index(), prim.material().index());
    assert_eq!(base_color_png(&material_of(0), blob).unwrap(), styled.to_rgb8());
    let original = material_of(1);
    assert!(original.unlit());
    assert_eq!(base_color_png(&original, blob).unwrap(), own.to_rgb8());
}

#[test]
fn glb_original_variant_of_an_untextured_material_is_its_flat_colour() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mesh, _) = box_mesh(dir.path());
    mesh.materials[0].texture = None;
    mesh.materials[0].diffuse = [0.25, 0.5, 0.75];
    let styled = Image::filled(8, 8, [0.9, 0.1, 0.3]);
    let file = texstyle::export::glb::file_with_variants(&mesh, &mesh.positions, &[styled], "v.glb".into()).unwrap();
    let gltf = gltf::Gltf::from_slice(&file.bytes).unwrap();
    let flat = gltf.materials().find(|m| m.pbr_metallic_roughness().base_color_texture().is_none()).expect("the original material");
    assert_eq!(flat.pbr_metallic_roughness().base_color_factor(), [0.25, 0.5, 0.75, 1.0]);
}

#[test]
fn obj_zip_unpacks_to_the_obj_files() {
    let (dir, mesh, tex, made) = export_box(&[Format::ObjZip], None, 1_000_000);
    assert_eq!(made[0].files, [dir.path().join("out/box.zip")]);
    let mut z = zip::ZipArchive::new(std::fs::File::open(&made[0].files[0]).unwrap()).unwrap();
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let mut names = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        let name = f.name().unwrap().to_string();
        std::fs::write(unpacked.join(&name), bytes).unwrap();
        names.push(name);
    }
    assert_eq!(names, ["box_paint.png", "box.mtl", "box.obj"]);
    let (back, mats) = obj_triangles(&unpacked.join("box.obj"));
    assert_eq!(back, mesh_triangles(&mesh));
    assert_eq!(mats[0].diffuse_texture.as_deref(), Some("box_paint.png"));
    assert_eq!(material_png(&unpacked.join("box.obj"), &mats[0]), tex.to_rgb8());
}

/// Checks a 3MF package against the rules of 3MF Core 1.3 (OPC parts,
/// content types, relationships, model XML) and the Materials extension
/// (texture2d, texture2dgroup), and returns its vertices (mm), triangles and
/// the PNG each triangle's texture group points at, with per-corner UVs.
struct ThreeMf {
    vertices: Vec<[f32; 3]>,
    /// `(v1, v2, v3)`, and the three corner UVs.
    triangles: Vec<([usize; 3], [[f32; 2]; 3])>,
    textures: Vec<Vec<u8>>,
}

fn check_3mf(path: &Path) -> ThreeMf {
    const CORE: &str = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02";
    const MAT: &str = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02";
    const RELS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut part = |name: &str| -> Vec<u8> {
        let mut f = z.by_name(name).unwrap_or_else(|_| panic!("part {name} missing"));
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        b
    };
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    // Content types: a Default for every extension used.
    let ct = text(part("[Content_Types].xml"));
    let ct = roxmltree::Document::parse(&ct).unwrap();
    let defaults: HashMap<String, String> = ct
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("Default"))
        .map(|n| (n.attribute("Extension").unwrap().to_lowercase(), n.attribute("ContentType").unwrap().to_string()))
        .collect();
    assert_eq!(defaults["rels"], "application/vnd.openxmlformats-package.relationships+xml");
    assert_eq!(defaults["model"], "application/vnd.ms-package.3dmanufacturing-3dmodel+xml");
    assert_eq!(defaults["png"], "image/png");
    // The package's start part is the model, through a 3dmodel relationship.
    let rels = text(part("_rels/.rels"));
    let rels = roxmltree::Document::parse(&rels).unwrap();
    assert_eq!(rels.root_element().tag_name().namespace(), Some(RELS));
    let start = rels
        .root_element()
        .children()
        .find(|n| n.attribute("Type") == Some("http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"))
        .expect("a 3dmodel relationship")
        .attribute("Target")
        .unwrap()
        .to_string();
    let model_name = start.trim_start_matches('/').to_string();
    let model_rels_name = format!("{}/_rels/{}.rels", model_name.rsplit_once('/').unwrap().0, model_name.rsplit_once('/').unwrap().1);
    let model = text(part(&model_name));
    let model_rels = text(part(&model_rels_name));
    let model_rels = roxmltree::Document::parse(&model_rels).unwrap();
    let texture_targets: BTreeSet<String> = model_rels
        .root_element()
        .children()
        .filter(|n| n.attribute("Type") == Some("http://schemas.microsoft.com/3dmanufacturing/2013/01/3dtexture"))
        .map(|n| n.attribute("Target").unwrap().to_string())
        .collect();
    let doc = roxmltree::Document::parse(&model).unwrap();
    let root = doc.root_element();
    assert!(root.has_tag_name((CORE, "model")));
    assert_eq!(root.attribute("unit"), Some("millimeter"));
    let resources = root.children().find(|n| n.has_tag_name((CORE, "resources"))).unwrap();
    // Resource ids are unique, and only refer back to earlier resources.
    let mut ids = HashMap::new();
    let mut texture_png: HashMap<String, Vec<u8>> = HashMap::new();
    let mut groups: HashMap<String, (String, Vec<[f32; 2]>)> = HashMap::new();
    let mut out = ThreeMf { vertices: vec![], triangles: vec![], textures: vec![] };
    let num = |n: roxmltree::Node, a: &str| -> f32 { n.attribute(a).unwrap_or_else(|| panic!("{a} missing")).parse().unwrap() };
    let mut object_ids = BTreeSet::new();
    for r in resources.children().filter(|n| n.is_element()) {
        let id = r.attribute("id").expect("every resource has an id").to_string();
        assert!(ids.insert(id.clone(), r.tag_name().name().to_string()).is_none(), "id {id} twice");
        match (r.tag_name().namespace(), r.tag_name().name()) {
            (Some(MAT), "texture2d") => {
                let p = r.attribute("path").unwrap();
                assert!(texture_targets.contains(p), "texture {p} has no 3dtexture relationship");
                assert_eq!(r.attribute("contenttype"), Some("image/png"));
                for a in ["tilestyleu", "tilestylev"] {
                    assert!(matches!(r.attribute(a), None | Some("wrap" | "mirror" | "clamp" | "none")));
                }
                assert!(matches!(r.attribute("filter"), None | Some("auto" | "linear" | "nearest")));
                texture_png.insert(id, part(p.trim_start_matches('/')));
            }
            (Some(MAT), "texture2dgroup") => {
                let tex = r.attribute("texid").unwrap().to_string();
                assert_eq!(ids.get(&tex).map(String::as_str), Some("texture2d"), "texid {tex}");
                let coords: Vec<[f32; 2]> =
                    r.children().filter(|n| n.has_tag_name((MAT, "tex2coord"))).map(|c| [num(c, "u"), num(c, "v")]).collect();
                assert!(!coords.is_empty(), "a texture2dgroup holds at least one tex2coord");
                groups.insert(id, (tex, coords));
            }
            (Some(CORE), "object") => {
                assert!(matches!(r.attribute("type"), None | Some("model")));
                let mesh = r.children().find(|n| n.has_tag_name((CORE, "mesh"))).unwrap();
                let verts = mesh.children().find(|n| n.has_tag_name((CORE, "vertices"))).unwrap();
                let base = out.vertices.len();
                out.vertices.extend(verts.children().filter(|n| n.is_element()).map(|v| [num(v, "x"), num(v, "y"), num(v, "z")]));
                let nv = out.vertices.len() - base;
                let default_pid = r.attribute("pid").map(str::to_string);
                if let Some(pid) = &default_pid {
                    let i: usize = r.attribute("pindex").unwrap().parse().unwrap();
                    assert!(i < groups[pid].1.len(), "object pindex out of range");
                }
                let tris = mesh.children().find(|n| n.has_tag_name((CORE, "triangles"))).unwrap();
                for t in tris.children().filter(|n| n.is_element()) {
                    let v: [usize; 3] = ["v1", "v2", "v3"].map(|a| t.attribute(a).unwrap().parse().unwrap());
                    assert!(v.iter().all(|&i| i < nv), "vertex index out of range");
                    assert!(v[0] != v[1] && v[1] != v[2] && v[0] != v[2], "3MF forbids repeated vertices in a triangle");
                    let pid = t.attribute("pid").map(str::to_string).or(default_pid.clone()).expect("a property group");
                    let (tex, coords) = &groups[&pid];
                    let p: [usize; 3] = ["p1", "p2", "p3"].map(|a| t.attribute(a).unwrap().parse().unwrap());
                    assert!(p.iter().all(|&i| i < coords.len()), "property index out of range");
                    out.triangles.push((v.map(|i| base + i), p.map(|i| coords[i])));
                    let _ = tex;
                }
                object_ids.insert(id);
            }
            other => panic!("unexpected resource {other:?}"),
        }
    }
    let build = root.children().find(|n| n.has_tag_name((CORE, "build"))).unwrap();
    let items: Vec<_> = build.children().filter(|n| n.has_tag_name((CORE, "item"))).collect();
    assert!(!items.is_empty() && items.iter().all(|i| object_ids.contains(i.attribute("objectid").unwrap())));
    out.textures = texture_png.into_values().collect();
    out
}

#[test]
fn three_mf_passes_the_spec_checks_at_80_mm_with_its_uvs_and_texture() {
    let (_dir, mesh, tex, made) = export_box(&[Format::ThreeMf], Some(80.0), 1_000_000);
    let m = check_3mf(&made[0].files[0]);
    assert!((longest_side(m.vertices.iter().copied()) - 80.0).abs() < 1e-3);
    assert_eq!(m.triangles.len(), mesh.triangles.len());
    assert_eq!(m.textures.len(), 1);
    assert_eq!(image::load_from_memory(&m.textures[0]).unwrap().to_rgb8(), tex.to_rgb8());
    // Corner UVs as in the mesh (3MF's origin is bottom-left, as OBJ's), and
    // vertices placed z-up: (x, y, z) ↦ 40 · (x, −z, y).
    for (t, (v, uv)) in m.triangles.iter().enumerate() {
        let want = mesh.triangle_uvs(t);
        for k in 0..3 {
            assert_eq!(uv[k], want[k].to_array(), "triangle {t}");
            let p = mesh.positions[mesh.triangles[t][k] as usize];
            assert_eq!(m.vertices[v[k]], [p.x * 40.0, -p.z * 40.0, p.y * 40.0]);
        }
    }
}

#[test]
fn impossible_budget_is_a_clear_error_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let obj = write_box(dir.path());
    let o = Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([obj.to_str().unwrap(), "--style", "/no/such/painting.png", "--export", "palette:4", "--max-triangles", "5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // Said before the painting is even read (it does not exist).
    assert!(err.starts_with("texstyle: error: ") && err.contains("box.obj: the mesh has 12 triangles, more than --max-triangles 5"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn every_export_from_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let obj = write_box(dir.path());
    let painting = dir.path().join("painting.png");
    Image::filled(64, 64, [0.8, 0.3, 0.1]).save_png(&painting).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([obj.to_str().unwrap(), "--style", painting.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--steps", "2", "--texture-size", "32", "--render-size", "64", "--cpu"])
        .args(["--export", "obj,3mf,glb,vertex-colors,palette:3", "--zip", "--print-size", "80"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let listed: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(|l| l.rsplit('/').next().unwrap().to_string()).collect();
    for f in [
        "box.obj", "box_paint.png", "box.3mf", "box.glb", "box_vertex_colors.obj", "preview_vertex_colors.png",
        "box_palette3.mtl", "box_palette3.obj", "preview_palette3.png", "box.zip", "preview_before_after.png", "loss.csv", "index.html",
    ] {
        assert!(listed.iter().any(|l| l == f), "{f} not listed: {listed:?}");
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(err.contains("export palette:3:") && err.contains("filaments, most surface first: #"), "{err}");
    assert!(err.contains("80.0 × 20.0 × 40.0 mm"), "{err}");
    // Nothing else (no temporaries) in the folder, but the set's manifest.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 14 + 1, "{listed:?}");
    assert!(out.join(texstyle::publish::MANIFEST).is_file());
    // The run page lists every export with its size, and the palette's three swatches.
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    for f in ["box.3mf", "box.glb", "box_vertex_colors.obj", "box_palette3.obj", "box.zip", "loss.csv"] {
        let size = std::fs::metadata(out.join(f)).unwrap().len();
        assert!(page.contains(&format!("<code>{f}</code> {}", texstyle::page::exports::size(size))), "{f} not listed with its size");
    }
    assert_eq!(page.matches("class=\"swatch\"").count(), 3);
    assert!(page.contains("import box_palette3.obj, map these 3 colours to 3 filaments: #"));
}

#[test]
fn no_report_writes_no_run_page() {
    let dir = tempfile::tempdir().unwrap();
    let obj = write_box(dir.path());
    let painting = dir.path().join("painting.png");
    Image::filled(64, 64, [0.8, 0.3, 0.1]).save_png(&painting).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([obj.to_str().unwrap(), "--style", painting.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--steps", "1", "--texture-size", "32", "--render-size", "64", "--cpu", "--no-report"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("index.html").exists());
    assert!(out.join("box.obj").is_file() && out.join("loss.csv").is_file());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("index.html"));
}

// ---------------------------------------------------------------------------
// Prints: holes reported (and closed with --close-holes), every vertex used,
// the object standing on the plate (z = 0).

/// The corners of a cube of side 2 centred on the origin (so placing it for
/// print must move it): bit 0 of the index is x, bit 1 y, bit 2 z.
fn cube_corner(i: usize) -> [f32; 3] {
    [0, 1, 2].map(|b| if i >> b & 1 == 1 { 1.0 } else { -1.0 })
}

/// Its faces, counter-clockwise seen from outside; the top (+Y) face last.
const CUBE_FACES: [[usize; 4]; 6] = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [0, 4, 6, 2], [1, 3, 7, 5], [2, 6, 7, 3]];

/// That cube without its top face (4 open edges), one UV chart per face, and
/// a vertex no face uses at the end. `own_corners`: every face has its own
/// four vertices (as UV seams give them in glTF or PLY files), so only the
/// positions say which edges are shared.
fn write_open_cube(dir: &Path, own_corners: bool) -> std::path::PathBuf {
    let mut obj = String::new();
    let faces = &CUBE_FACES[..5];
    let corners: Vec<usize> = if own_corners { faces.iter().flatten().copied().collect() } else { (0..8).collect() };
    for &c in &corners {
        let p = cube_corner(c);
        obj += &format!("v {} {} {}\n", p[0], p[1], p[2]);
    }
    obj += "v 5 5 5\n";
    for (i, f) in faces.iter().enumerate() {
        let (c, r) = ((i % 3) as f32, (i / 3) as f32);
        let (u0, u1, v0, v1) = (c / 3.0 + 0.02, (c + 1.0) / 3.0 - 0.02, r / 2.0 + 0.02, (r + 1.0) / 2.0 - 0.02);
        obj += &format!("vt {u0} {v0}\nvt {u1} {v0}\nvt {u1} {v1}\nvt {u0} {v1}\n");
        let v = |k: usize| if own_corners { 4 * i + k + 1 } else { f[k] + 1 };
        let t = 4 * i + 1;
        obj += &format!("f {}/{} {}/{} {}/{} {}/{}\n", v(0), t, v(1), t + 1, v(2), t + 2, v(3), t + 3);
    }
    let path = dir.join("open_cube.obj");
    std::fs::write(&path, obj).unwrap();
    path
}

/// An OBJ's `v` positions and `f` position indices (0-based), read as text:
/// tobj keeps only the vertices faces use, so it cannot show unused ones.
fn obj_text(path: &Path) -> (Vec<[f32; 3]>, Vec<Vec<usize>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut v = Vec::new();
    let mut f = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("v") => v.push([0, 1, 2].map(|_| w.next().unwrap().parse::<f32>().unwrap())),
            Some("f") => f.push(w.map(|c| c.split('/').next().unwrap().parse::<usize>().unwrap() - 1).collect()),
            _ => {}
        }
    }
    (v, f)
}

/// The lowest z and whether every vertex is used by some face.
fn floor_and_all_used(vertices: &[[f32; 3]], faces: impl Iterator<Item = usize>) -> (f32, bool) {
    let mut used = vec![false; vertices.len()];
    faces.for_each(|i| used[i] = true);
    (vertices.iter().map(|p| p[2]).fold(f32::INFINITY, f32::min), used.iter().all(|&u| u))
}

#[test]
fn print_exports_stand_on_the_plate_with_every_vertex_used() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::load(write_open_cube(dir.path(), false)).unwrap();
    let tex = Image::filled(48, 32, [0.3, 0.6, 0.9]);
    let formats = vec![Format::ThreeMf, Format::VertexColors, Format::Palette(2)];
    let plan = Plan::new(&mesh, Request { formats, print_size_mm: Some(80.0), max_triangles: 20_000, close_holes: false }, (48, 32)).unwrap();
    let made = write_all(&plan, &mesh, std::slice::from_ref(&tex), &dir.path().join("out"), "cube", &[], &mut |m| Ok(Raster::new(None, m)?)).unwrap();
    let m = check_3mf(&made[0].files[0]);
    let (floor, all_used) = floor_and_all_used(&m.vertices, m.triangles.iter().flat_map(|t| t.0));
    assert_eq!((floor, all_used), (0.0, true), "3mf: lowest z, every vertex used");
    assert!((longest_side(m.vertices.iter().copied()) - 80.0).abs() < 1e-3);
    for made in &made[1..] {
        let obj = made.files.iter().find(|f| f.extension().unwrap() == "obj").unwrap();
        let (v, f) = obj_text(obj);
        let (floor, all_used) = floor_and_all_used(&v, f.iter().flatten().copied());
        assert_eq!((floor, all_used), (0.0, true), "{}: lowest z, every vertex used", made.format);
    }
}

#[test]
fn print_exports_say_how_many_edges_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::load(write_open_cube(dir.path(), true)).unwrap();
    let plan = |formats: Vec<Format>| Plan::new(&mesh, Request { formats, print_size_mm: None, max_triangles: 20_000, close_holes: false }, (48, 32)).unwrap();
    for f in [Format::ThreeMf, Format::VertexColors, Format::Palette(3)] {
        let notes = plan(vec![Format::Obj, f]).notes();
        let warning: Vec<&String> = notes.iter().filter(|n| n.contains("open edges")).collect();
        assert_eq!(warning.len(), 1, "{f}: {notes:?}");
        assert!(warning[0].starts_with("warning: ") && warning[0].contains("4 open edges (1 hole), 0 non-manifold edges"), "{}", warning[0]);
        assert!(warning[0].contains("--close-holes"), "{}", warning[0]);
    }
    // Not a print export: nothing to say.
    assert!(!plan(vec![Format::Obj, Format::Glb]).notes().iter().any(|n| n.contains("open edges")));
}

/// Undirected edges by position (an independent weld: positions as bits)
/// and how many faces use each; and whether every directed edge's reverse
/// is used exactly once (consistent winding).
fn position_edges(vertices: &[[f32; 3]], faces: &[[usize; 3]]) -> (BTreeMap<usize, usize>, bool) {
    let key = |i: usize| vertices[i].map(|c| (c + 0.0).to_bits());
    let mut undirected: HashMap<([u32; 3], [u32; 3]), usize> = HashMap::new();
    let mut directed: HashMap<([u32; 3], [u32; 3]), usize> = HashMap::new();
    for f in faces {
        for k in 0..3 {
            let (a, b) = (key(f[k]), key(f[(k + 1) % 3]));
            *undirected.entry((a.min(b), a.max(b))).or_default() += 1;
            *directed.entry((a, b)).or_default() += 1;
        }
    }
    let mut by_count = BTreeMap::new();
    undirected.values().for_each(|&n| *by_count.entry(n).or_default() += 1);
    let consistent = directed.iter().all(|(&(a, b), &n)| n == 1 && directed.get(&(b, a)) == Some(&1));
    (by_count, consistent)
}

#[test]
fn open_and_non_manifold_edges_are_counted_on_positions() {
    use texstyle::export::holes;
    let dir = tempfile::tempdir().unwrap();
    // Every face with its own corners: only a weld by position finds the shared edges.
    let cube = Mesh::load(write_open_cube(dir.path(), true)).unwrap();
    assert_eq!(holes::report(&cube), holes::EdgeReport { open: 4, non_manifold: 0, holes: 1 });
    // A fin on the bottom edge x from −1 to 1 at y = z = −1: that edge has three faces.
    let mut fin = cube.clone();
    let n = fin.positions.len() as u32;
    fin.positions.extend([glam::Vec3::new(-1.0, -1.0, -1.0), glam::Vec3::new(1.0, -1.0, -1.0), glam::Vec3::new(0.0, -3.0, -3.0)]);
    fin.triangles.push([n, n + 1, n + 2]);
    fin.tri_texcoords.push([0, 1, 2]);
    fin.tri_material.push(0);
    fin.tri_polygon.push(0);
    let r = holes::report(&fin);
    assert_eq!((r.open, r.non_manifold), (6, 1));
    let bunny = Mesh::load(common::repo("meshes/bunny.obj")).unwrap();
    assert_eq!(holes::report(&bunny), holes::EdgeReport { open: 223, non_manifold: 0, holes: 5 });
    let closed = holes::report(&holes::close(&bunny));
    assert_eq!(closed, holes::EdgeReport::default(), "the bunny closed");
}

#[test]
fn close_holes_makes_the_print_exports_watertight() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::load(write_open_cube(dir.path(), false)).unwrap();
    let mut tex = Image::filled(48, 32, [0.3, 0.6, 0.9]);
    tex.set_pixel(5, 5, [1.0, 0.0, 0.0]);
    let formats = vec![Format::ThreeMf, Format::VertexColors, Format::Palette(2)];
    let plan = Plan::new(&mesh, Request { formats, print_size_mm: Some(80.0), max_triangles: 20_000, close_holes: true }, (48, 32)).unwrap();
    assert!(!plan.notes().iter().any(|n| n.contains("open edges")), "{:?}", plan.notes());
    let made = write_all(&plan, &mesh, std::slice::from_ref(&tex), &dir.path().join("out"), "cube", &[], &mut |m| Ok(Raster::new(None, m)?)).unwrap();
    let m = check_3mf(&made[0].files[0]);
    let faces: Vec<[usize; 3]> = m.triangles.iter().map(|t| t.0).collect();
    let (counts, consistent) = position_edges(&m.vertices, &faces);
    assert_eq!((counts.keys().copied().collect::<Vec<_>>(), consistent), (vec![2], true), "3mf: {counts:?}");
    // The fill reads UVs the mesh already had: no colour made up.
    let known: Vec<[f32; 2]> = mesh.texcoords.iter().map(|t| t.to_array()).collect();
    assert!(m.triangles.iter().flat_map(|t| t.1).all(|uv| known.contains(&uv)));
    assert_eq!(m.triangles.len(), mesh.triangles.len() + 4, "a fan of 4 over the top");
    for made in &made[1..] {
        let obj = made.files.iter().find(|f| f.extension().unwrap() == "obj").unwrap();
        let (models, _) = load_obj(obj);
        let (mut v, mut f) = (Vec::new(), Vec::new());
        for model in &models {
            let base = v.len();
            v.extend(model.mesh.positions.chunks(3).map(|p| [p[0], p[1], p[2]]));
            f.extend(model.mesh.indices.chunks(3).map(|t| [0, 1, 2].map(|k| base + t[k] as usize)));
        }
        let (counts, consistent) = position_edges(&v, &f);
        assert_eq!((counts.keys().copied().collect::<Vec<_>>(), consistent), (vec![2], true), "{}: {counts:?}", made.format);
    }
}
