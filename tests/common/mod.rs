//! Helpers shared by the integration tests. Tests read only files in this
//! repository (`meshes/`, `styles/`) or meshes generated here, never
//! `../shared` (`.ci/run` runs them from a copy with no `../shared` beside it).
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use candle_core::Device;
use texstyle::camera::CameraRange;
use texstyle::checkpoint::Checkpoint;
use texstyle::gpu::Gpu;
use texstyle::image_io::Image;
use texstyle::loss::LossKind;
use texstyle::mesh::Mesh;
use texstyle::optim::{prepare_style, Checkpoints, Config, Outcome, Run};
use texstyle::raster::{Raster, RasterMesh};
use texstyle::texture::ParamKind;
use texstyle::vgg::Vgg;

pub fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `meshes/spot/spot.obj` (textured) or `meshes/bunny.obj` (no UVs).
pub fn asset_mesh(name: &str) -> PathBuf {
    match name {
        "bunny" => repo("meshes/bunny.obj"),
        _ => repo(&format!("meshes/{name}/{name}.obj")),
    }
}

pub fn load(name: &str) -> Mesh {
    Mesh::load(asset_mesh(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// The default painting, `styles/starry_night.jpg`.
pub fn style_path() -> PathBuf {
    repo("styles/starry_night.jpg")
}

/// The wgpu device. Tests that need it FAIL without an adapter: CI installs
/// lavapipe, so a missing adapter is a broken setup, not a reason to skip.
pub fn gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("these tests need a wgpu adapter (lavapipe is enough): {e}"))
}

/// A cube with UVs (one full square per face, when `uvs`), two materials
/// (`red`, `blue`, alternating by face) and no textures, written to `dir` as
/// `cube.obj` and `cube.mtl`.
pub fn write_two_material_cube(dir: &Path, uvs: bool) -> PathBuf {
    let mut obj = String::from("mtllib cube.mtl\n");
    for z in [-1, 1] {
        for y in [-1, 1] {
            for x in [-1, 1] {
                writeln!(obj, "v {x} {y} {z}").unwrap();
            }
        }
    }
    if uvs {
        obj += "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n";
    }
    // Faces as quads (v indices of the 8 corners), alternating materials.
    let faces = [[1, 3, 4, 2], [5, 6, 8, 7], [1, 2, 6, 5], [3, 7, 8, 4], [1, 5, 7, 3], [2, 4, 8, 6]];
    for (i, f) in faces.iter().enumerate() {
        writeln!(obj, "usemtl {}", ["red", "blue"][i % 2]).unwrap();
        match uvs {
            true => writeln!(obj, "f {}/1 {}/2 {}/3 {}/4", f[0], f[1], f[2], f[3]).unwrap(),
            false => writeln!(obj, "f {} {} {} {}", f[0], f[1], f[2], f[3]).unwrap(),
        }
    }
    std::fs::write(dir.join("cube.obj"), obj).unwrap();
    std::fs::write(dir.join("cube.mtl"), "newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n").unwrap();
    dir.join("cube.obj")
}

/// A small run (64² texture and views, one sample, 4 held-out views, FFT):
/// seconds on spot. Tests change the fields they are about.
pub fn config(steps: usize, seed: u64) -> Config {
    Config {
        steps,
        texture_size: 64,
        render_size: 64,
        start_render_size: 64,
        samples: 1,
        mip: true,
        style_weight: 1.0,
        content_weight: 0.5,
        content_layers: vec![texstyle::loss::CONTENT_LAYER.parse().unwrap()],
        style_layer_weights: [1.0; 5],
        gram_decay: 0.95,
        loss: LossKind::Gram,
        nnfm_weight: 1.0,
        param: ParamKind::Fft,
        lr: 0.05,
        lr_end: 1.0,
        content_end: 1.0,
        seed,
        background: [0.0; 3],
        cameras: CameraRange::default(),
        eval_views: 4,
        keep_colors: false,
        protect: None,
    }
}

/// The default painting at 128² (as `--style-size 128` prepares it).
pub fn style_image() -> Image {
    prepare_style(&Image::load(&style_path()).unwrap(), 128)
}

/// Runs the style transfer on `mesh` (real VGG16 weights, wgpu raster).
pub fn run(mesh: &Mesh, cfg: &Config) -> Outcome {
    run_saving(mesh, cfg, 0).0
}

/// [`run`], keeping a checkpoint every `every` steps (0: none): the one place
/// the tests call the optimization loop.
pub fn run_saving(mesh: &Mesh, cfg: &Config, every: usize) -> (Outcome, Vec<Checkpoint>) {
    let vgg = Vgg::load(None, &Device::Cpu).expect("VGG16 weights in the cache (run ./setup.sh)");
    let gpu = gpu();
    let mut raster = Raster::new(Some(&gpu), &RasterMesh::from_mesh(mesh)).unwrap();
    let mut saved = Vec::new();
    let mut keep = |ck: &Checkpoint| {
        saved.push(ck.clone());
        Ok(())
    };
    let ck = Checkpoints { every, fingerprint: String::new(), resume: None, save: Some(&mut keep) };
    let out = Run::new(mesh, &mut raster, &vgg, &style_image(), cfg, ck).unwrap().complete().unwrap();
    (out, saved)
}

/// A closed, bumpy sphere with UVs (longitude/latitude, a seam at u = 0/1
/// with split texture coordinates but shared positions), written as an OBJ
/// in `dir`: `2 · segments · (rings − 1)` triangles (256 segments, 251 rings: 128,000).
pub fn write_bumpy_sphere(dir: &Path, segments: usize, rings: usize) -> PathBuf {
    let mut obj = String::with_capacity(64 * segments * rings * 3);
    let pi = std::f32::consts::PI;
    let bump = |theta: f32, phi: f32| 1.0 + 0.08 * (5.0 * theta).sin() * (4.0 * phi).sin() + 0.04 * (11.0 * phi).cos();
    // Vertex 1: north pole; then (rings - 1) rings of `segments`; last: south pole.
    writeln!(obj, "v 0 1 0").unwrap();
    for r in 1..rings {
        let theta = pi * r as f32 / rings as f32;
        for s in 0..segments {
            let phi = 2.0 * pi * s as f32 / segments as f32;
            let k = bump(theta, phi);
            writeln!(obj, "v {} {} {}", k * theta.sin() * phi.cos(), k * theta.cos(), k * theta.sin() * phi.sin()).unwrap();
        }
    }
    writeln!(obj, "v 0 -1 0").unwrap();
    for r in 0..=rings {
        for s in 0..=segments {
            writeln!(obj, "vt {} {}", s as f32 / segments as f32, 1.0 - r as f32 / rings as f32).unwrap();
        }
    }
    let v = |r: usize, s: usize| -> usize {
        match r {
            0 => 1,
            _ if r == rings => 2 + (rings - 1) * segments,
            _ => 2 + (r - 1) * segments + s % segments,
        }
    };
    let vt = |r: usize, s: usize| 1 + r * (segments + 1) + s;
    for r in 0..rings {
        for s in 0..segments {
            let (a, b, c, d) = ((r, s), (r + 1, s), (r + 1, s + 1), (r, s + 1));
            // Outward-facing (counter-clockwise seen from outside).
            if r > 0 {
                writeln!(obj, "f {}/{} {}/{} {}/{}", v(a.0, a.1), vt(a.0, a.1), v(d.0, d.1), vt(d.0, d.1), v(b.0, b.1), vt(b.0, b.1)).unwrap();
            }
            if r + 1 < rings {
                writeln!(obj, "f {}/{} {}/{} {}/{}", v(d.0, d.1), vt(d.0, d.1), v(c.0, c.1), vt(c.0, c.1), v(b.0, b.1), vt(b.0, b.1)).unwrap();
            }
        }
    }
    let path = dir.join("sphere.obj");
    std::fs::write(&path, obj).unwrap();
    path
}

/// Binary STL bytes of a triangle soup.
pub fn stl_binary(tris: &[[[f32; 3]; 3]]) -> Vec<u8> {
    let mut b = vec![0u8; 80];
    b[..6].copy_from_slice(b"solid "); // as many exporters write, to confuse readers
    b.extend((tris.len() as u32).to_le_bytes());
    for t in tris {
        b.extend([0u8; 12]);
        for p in t {
            for c in p {
                b.extend(c.to_le_bytes());
            }
        }
        b.extend([0u8; 2]);
    }
    b
}

/// ASCII STL text of a triangle soup.
pub fn stl_ascii(tris: &[[[f32; 3]; 3]]) -> String {
    let mut s = String::from("solid test\n");
    for t in tris {
        s += "  facet normal 0 0 0\n    outer loop\n";
        for p in t {
            writeln!(s, "      vertex {} {} {}", p[0], p[1], p[2]).unwrap();
        }
        s += "    endloop\n  endfacet\n";
    }
    s += "endsolid test\n";
    s
}

/// The triangles of a mesh as a soup of positions (what an STL holds).
pub fn soup(m: &Mesh) -> Vec<[[f32; 3]; 3]> {
    m.triangles.iter().map(|t| t.map(|i| m.positions[i as usize].to_array())).collect()
}

/// A PLY with positions, faces and (optionally) `uchar` vertex colours.
pub fn ply(binary: bool, positions: &[[f32; 3]], colors: Option<&[[u8; 3]]>, faces: &[Vec<u32>]) -> Vec<u8> {
    let mut h = format!(
        "ply\nformat {} 1.0\ncomment made by the texstyle tests\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\n",
        if binary { "binary_little_endian" } else { "ascii" },
        positions.len()
    );
    if colors.is_some() {
        h += "property uchar red\nproperty uchar green\nproperty uchar blue\n";
    }
    writeln!(h, "element face {}\nproperty list uchar int vertex_indices\nend_header", faces.len()).unwrap();
    let mut b = h.into_bytes();
    for (i, p) in positions.iter().enumerate() {
        if binary {
            p.iter().for_each(|c| b.extend(c.to_le_bytes()));
            if let Some(c) = colors {
                b.extend(c[i]);
            }
        } else {
            let mut line = format!("{} {} {}", p[0], p[1], p[2]);
            if let Some(c) = colors {
                write!(line, " {} {} {}", c[i][0], c[i][1], c[i][2]).unwrap();
            }
            b.extend(line.bytes().chain(std::iter::once(b'\n')));
        }
    }
    for f in faces {
        if binary {
            b.push(f.len() as u8);
            f.iter().for_each(|i| b.extend((*i as i32).to_le_bytes()));
        } else {
            let line: Vec<String> = std::iter::once(f.len().to_string()).chain(f.iter().map(u32::to_string)).collect();
            b.extend(line.join(" ").bytes().chain(std::iter::once(b'\n')));
        }
    }
    b
}

/// glTF parts: one mesh, one primitive, positions + TEXCOORD_0 (glTF's
/// top-left origin) + u32 indices, and a PNG base colour texture.
pub struct GltfParts {
    pub json: String,
    pub bin: Vec<u8>,
}

/// Builds a glTF whose buffer is `buffer_uri` (None: the GLB's BIN chunk) and
/// whose image is `image_uri` (None: embedded in the buffer through a view).
pub fn gltf_parts(positions: &[[f32; 3]], uvs: &[[f32; 2]], indices: &[u32], png: &[u8], buffer_uri: Option<&str>, image_uri: Option<&str>) -> GltfParts {
    let mut bin = Vec::new();
    positions.iter().flatten().for_each(|c| bin.extend(c.to_le_bytes()));
    let uv_off = bin.len();
    uvs.iter().flatten().for_each(|c| bin.extend(c.to_le_bytes()));
    let idx_off = bin.len();
    indices.iter().for_each(|i| bin.extend(i.to_le_bytes()));
    let img_off = bin.len();
    if image_uri.is_none() {
        bin.extend(png);
    }
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let (lo, hi) = positions.iter().fold(([f32::MAX; 3], [f32::MIN; 3]), |(lo, hi), p| {
        ([lo[0].min(p[0]), lo[1].min(p[1]), lo[2].min(p[2])], [hi[0].max(p[0]), hi[1].max(p[1]), hi[2].max(p[2])])
    });
    let buffer = match buffer_uri {
        Some(u) => format!(r#"{{"byteLength":{},"uri":"{u}"}}"#, bin.len()),
        None => format!(r#"{{"byteLength":{}}}"#, bin.len()),
    };
    let image = match image_uri {
        Some(u) => format!(r#"{{"uri":"{u}"}}"#),
        None => r#"{"bufferView":3,"mimeType":"image/png"}"#.to_string(),
    };
    let json = format!(
        r#"{{"asset":{{"version":"2.0"}},"scene":0,"scenes":[{{"nodes":[0]}}],"nodes":[{{"mesh":0}}],
"meshes":[{{"primitives":[{{"attributes":{{"POSITION":0,"TEXCOORD_0":1}},"indices":2,"material":0}}]}}],
"materials":[{{"name":"skin","pbrMetallicRoughness":{{"baseColorTexture":{{"index":0}}}}}}],
"textures":[{{"source":0}}],"images":[{image}],"buffers":[{buffer}],
"bufferViews":[{{"buffer":0,"byteOffset":0,"byteLength":{}}},{{"buffer":0,"byteOffset":{uv_off},"byteLength":{}}},{{"buffer":0,"byteOffset":{idx_off},"byteLength":{}}},{{"buffer":0,"byteOffset":{img_off},"byteLength":{}}}],
"accessors":[{{"bufferView":0,"componentType":5126,"count":{},"type":"VEC3","min":[{},{},{}],"max":[{},{},{}]}},{{"bufferView":1,"componentType":5126,"count":{},"type":"VEC2"}},{{"bufferView":2,"componentType":5125,"count":{},"type":"SCALAR"}}]}}"#,
        uv_off,
        idx_off - uv_off,
        img_off - idx_off,
        png.len().max(1),
        positions.len(),
        lo[0], lo[1], lo[2], hi[0], hi[1], hi[2],
        uvs.len(),
        indices.len()
    );
    GltfParts { json, bin }
}

/// A GLB container of a JSON and a BIN chunk.
pub fn glb(parts: &GltfParts) -> Vec<u8> {
    let mut json = parts.json.clone().into_bytes();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let total = 12 + 8 + json.len() + 8 + parts.bin.len();
    let mut b = Vec::with_capacity(total);
    b.extend(b"glTF");
    b.extend(2u32.to_le_bytes());
    b.extend((total as u32).to_le_bytes());
    b.extend((json.len() as u32).to_le_bytes());
    b.extend(b"JSON");
    b.extend(&json);
    b.extend((parts.bin.len() as u32).to_le_bytes());
    b.extend(b"BIN\0");
    b.extend(&parts.bin);
    b
}

/// Spot as one glTF primitive: one vertex per (position, UV) pair, UVs in glTF's convention.
pub fn spot_unindexed_by_corner() -> (Vec<[f32; 3]>, Vec<[f32; 2]>, Vec<u32>) {
    let m = load("spot");
    let mut key = std::collections::HashMap::new();
    let (mut pos, mut uv, mut idx) = (Vec::new(), Vec::new(), Vec::new());
    for (t, tri) in m.triangles.iter().enumerate() {
        for k in 0..3 {
            let pair = (tri[k], m.tri_texcoords[t][k]);
            let id = *key.entry(pair).or_insert_with(|| {
                pos.push(m.positions[pair.0 as usize].to_array());
                let u = m.texcoords[pair.1 as usize];
                uv.push([u.x, 1.0 - u.y]);
                pos.len() as u32 - 1
            });
            idx.push(id);
        }
    }
    (pos, uv, idx)
}
