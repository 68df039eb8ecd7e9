//! Export as a round trip: what texstyle writes, tobj (through Mesh::load)
//! reads back with the same geometry, UVs, materials and textures.

mod common;

use texstyle::export::export;
use texstyle::image_io::Image;
use texstyle::mesh::Mesh;

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

    let back = Mesh::load(&out.obj).unwrap();
    assert_eq!(back.triangles.len(), mesh.triangles.len());
    assert_eq!(back.materials.len(), 1);
    for t in 0..mesh.triangles.len() {
        let (a, b) = (mesh.triangles[t], back.triangles[t]);
        for k in 0..3 {
            assert_eq!(mesh.positions[a[k] as usize], back.positions[b[k] as usize], "triangle {t}");
        }
        assert_eq!(mesh.triangle_uvs(t), back.triangle_uvs(t), "triangle {t}");
    }
    let png = back.materials[0].texture.as_ref().unwrap();
    assert_eq!((png.width, png.height), (64, 32));
    assert_eq!(png.pixel(3, 5), [1.0, 0.0, 0.0]);
    assert_eq!(png.pixel(0, 0), [64.0 / 255.0, 128.0 / 255.0, 191.0 / 255.0]);
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
    let back = Mesh::load(&out.obj).unwrap();
    let by_name = |n: &str| back.materials.iter().find(|m| m.name == n).unwrap().texture.as_ref().unwrap().pixel(0, 0);
    assert_eq!(by_name("red paint"), [1.0, 0.0, 0.0]);
    assert_eq!(by_name("blue"), [0.0, 0.0, 1.0]);
}
