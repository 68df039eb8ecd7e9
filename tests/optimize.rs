//! The style transfer end to end on spot, with the real VGG16 weights
//! (`./setup.sh` or `texstyle weights fetch` puts them in the cache; these
//! tests fail without them). Small sizes keep it to seconds.

mod common;

use std::process::Command;

use candle_core::Device;
use texstyle::camera::CameraRange;
use texstyle::image_io::Image;
use texstyle::mesh::Mesh;
use texstyle::optim::{prepare_style, Checkpoints, Config, Outcome, Run};
use texstyle::raster::{Raster, RasterMesh};
use texstyle::texture::{tensor_to_image, ParamKind, TextureParam};
use texstyle::vgg::Vgg;

fn style_image() -> Image {
    let p = common::style_path();
    prepare_style(&Image::load(&p).unwrap(), 128)
}

fn config(steps: usize, seed: u64) -> Config {
    Config {
        steps,
        texture_size: 64,
        render_size: 64,
        start_render_size: 64,
        samples: 1,
        mip: true,
        style_weight: 1.0,
        content_weight: 0.5,
        gram_decay: 0.95,
        param: ParamKind::Fft,
        lr: 0.05,
        lr_end: 1.0,
        content_end: 1.0,
        seed,
        background: [0.0; 3],
        cameras: CameraRange::default(),
        eval_views: 4,
    }
}

/// The textures a run starts from (one per material), as images.
fn initial_textures(materials: usize, cfg: &Config) -> Vec<Image> {
    let s = cfg.texture_size as usize;
    let t = TextureParam::new(cfg.param, materials, s, s, cfg.seed).unwrap().texture().unwrap();
    (0..materials).map(|m| tensor_to_image(&t.get(m).unwrap()).unwrap()).collect()
}

/// Per texel, the largest channel change between two images.
fn texel_changes(a: &Image, b: &Image) -> Vec<f32> {
    a.data.chunks(3).zip(b.data.chunks(3)).map(|(p, q)| p.iter().zip(q).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))).collect()
}

fn run(mesh: &Mesh, cfg: &Config) -> Outcome {
    let vgg = Vgg::load(None, &Device::Cpu).expect("VGG16 weights in the cache (run ./setup.sh)");
    let gpu = common::gpu();
    let mut raster = Raster::new(Some(&gpu), &RasterMesh::from_mesh(mesh)).unwrap();
    Run::new(mesh, &mut raster, &vgg, &style_image(), cfg, Checkpoints::none()).unwrap().complete().unwrap()
}

#[test]
fn style_loss_on_held_out_views_drops_and_the_result_exports() {
    let mesh = common::load("spot");
    let out = run(&mesh, &config(60, 1));
    eprintln!("held-out style loss {} -> {}", out.eval_before, out.eval_after);
    assert!(out.eval_after < 0.6 * out.eval_before, "style loss {} -> {}", out.eval_before, out.eval_after);
    assert!(out.used_content);
    assert_eq!(out.log.len(), 60);
    assert!(out.seen_fraction > 0.2, "seen {}", out.seen_fraction);
    // The training loss falls too (compare the first and last ten steps).
    let mean = |s: &[texstyle::optim::StepLog]| s.iter().map(|l| l.total).sum::<f32>() / s.len() as f32;
    assert!(mean(&out.log[50..]) < mean(&out.log[..10]));

    let dir = tempfile::tempdir().unwrap();
    let files = texstyle::export::export(&mesh, &out.textures, dir.path(), "spot").unwrap();
    let back = Mesh::load(&files.obj).unwrap();
    assert_eq!(back.triangles.len(), mesh.triangles.len());
    let tex = back.materials[0].texture.as_ref().unwrap();
    assert_eq!((tex.width, tex.height), (64, 64));
    // Not the grey initial texture any more, and no texel left at its init value.
    let spread = tex.data.iter().fold((1.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(spread.1 - spread.0 > 0.3, "texture range {spread:?}");
    let changes = texel_changes(&out.textures[0], &initial_textures(1, &config(60, 1))[0]);
    let unchanged = changes.iter().filter(|&&d| d < 1e-3).count();
    assert_eq!(unchanged, 0, "{unchanged} texels still at their initial value");
}

/// `--param pixel`: each texel is its own parameter, so texels no view saw keep their initial
/// value unless the unseen-texel fill replaces them; the style loss still drops.
#[test]
fn pixel_parameterization_drops_the_loss_and_leaves_no_texel_at_its_init_value() {
    let mesh = common::load("spot");
    let cfg = Config { param: ParamKind::Pixel, ..config(40, 3) };
    let out = run(&mesh, &cfg);
    eprintln!("pixel: held-out style loss {} -> {}, seen {}", out.eval_before, out.eval_after, out.seen_fraction);
    assert!(out.eval_after < 0.9 * out.eval_before, "style loss {} -> {}", out.eval_before, out.eval_after);
    assert!(out.seen_fraction < 0.95, "the check needs unseen texels ({})", out.seen_fraction);
    let changes = texel_changes(&out.textures[0], &initial_textures(1, &cfg)[0]);
    let unchanged = changes.iter().filter(|&&d| d < 1e-4).count();
    assert_eq!(unchanged, 0, "{unchanged} of {} texels still at their initial value", changes.len());
}

/// Options reach the loop: 2×2 supersampling changes the first step already; the Gram memory
/// (decay 0.95 vs 0) leaves the first step alone (bias-corrected, it is the current Gram) and
/// changes every later one.
#[test]
fn supersampling_and_gram_decay_change_the_run() {
    let mesh = common::load("spot");
    let base = run(&mesh, &config(4, 2));
    let samples = run(&mesh, &Config { samples: 2, ..config(4, 2) });
    let no_memory = run(&mesh, &Config { gram_decay: 0.0, ..config(4, 2) });
    let style = |o: &Outcome| o.log.iter().map(|l| l.style).collect::<Vec<_>>();
    let (b, s, n) = (style(&base), style(&samples), style(&no_memory));
    eprintln!("style per step: base {b:?}, samples 2 {s:?}, decay 0 {n:?}");
    assert!((s[0] - b[0]).abs() > 1e-4 * b[0], "samples 2 gave the same first step: {s:?} vs {b:?}");
    // Equal up to the rounding of the bias correction ((1 − d)·G / (1 − d) in f32).
    assert!((n[0] - b[0]).abs() <= 1e-6 * b[0], "decay changed the first step: {n:?} vs {b:?}");
    for i in 1..4 {
        assert!((n[i] - b[i]).abs() > 1e-4 * b[i], "step {}: decay 0 and 0.95 agree ({} vs {})", i + 1, n[i], b[i]);
    }
    assert_ne!(base.textures, no_memory.textures);
}

#[test]
fn same_seed_gives_the_same_texture() {
    let mesh = common::load("spot");
    let a = run(&mesh, &config(4, 9));
    let b = run(&mesh, &config(4, 9));
    assert_eq!(a.textures, b.textures);
    let c = run(&mesh, &config(4, 10));
    assert_ne!(a.textures, c.textures);
}

#[test]
fn the_command_writes_obj_mtl_png_preview_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = common::asset_mesh("spot");
    let style = common::style_path();
    let o = Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([mesh.to_str().unwrap(), "--style", style.to_str().unwrap(), "--steps", "3", "--texture-size", "32"])
        .args(["--render-size", "64", "--style-size", "128", "--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for f in ["spot.obj", "spot.mtl", "spot_spot.png", "preview_before_after.png", "loss.csv"] {
        assert!(dir.path().join(f).is_file(), "{f} missing; stderr: {err}");
    }
    let csv = std::fs::read_to_string(dir.path().join("loss.csv")).unwrap();
    assert!(csv.starts_with("step,style,content,total,seconds"));
    assert_eq!(csv.lines().count(), 4);
    let preview = Image::load(&dir.path().join("preview_before_after.png")).unwrap();
    assert_eq!((preview.width, preview.height), (8 * 260 + 4, 2 * 260 + 4));
    assert!(err.contains("held-out"), "{err}");
}

#[test]
fn uv_keep_on_a_mesh_without_uvs_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let style = common::style_path();
    let o = Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([common::asset_mesh("bunny").to_str().unwrap(), "--style", style.to_str().unwrap(), "--uv", "keep"])
        .args(["--out", dir.path().join("o").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bunny.obj") && err.contains("no texture coordinates") && err.contains("--uv auto"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.path().join("o").exists());
}

/// A cube with UVs, two materials and no textures, written to `dir`.
fn write_two_material_cube(dir: &std::path::Path) -> std::path::PathBuf {
    let mut obj = String::from("mtllib cube.mtl\n");
    for z in [-1, 1] {
        for y in [-1, 1] {
            for x in [-1, 1] {
                obj += &format!("v {x} {y} {z}\n");
            }
        }
    }
    obj += "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n";
    // Faces as quads (v indices of the 8 corners), alternating materials.
    let faces = [[1, 3, 4, 2], [5, 6, 8, 7], [1, 2, 6, 5], [3, 7, 8, 4], [1, 5, 7, 3], [2, 4, 8, 6]];
    for (i, f) in faces.iter().enumerate() {
        obj += &format!("usemtl {}\nf {}/1 {}/2 {}/3 {}/4\n", if i % 2 == 0 { "red" } else { "blue" }, f[0], f[1], f[2], f[3]);
    }
    std::fs::write(dir.join("cube.obj"), obj).unwrap();
    std::fs::write(dir.join("cube.mtl"), "newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n").unwrap();
    dir.join("cube.obj")
}

#[test]
fn untextured_multi_material_mesh_is_styled_per_material_without_content() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = Mesh::load(write_two_material_cube(dir.path())).unwrap();
    assert_eq!(mesh.materials.len(), 2);
    let out = run(&mesh, &config(3, 4));
    assert!(!out.used_content, "no texture: style only");
    assert!(out.log.iter().all(|l| l.content == 0.0));
    assert_eq!(out.textures.len(), 2);
    // Each material's texture moved from where it started (one left without gradient would not).
    let init = initial_textures(2, &config(3, 4));
    for (m, (t, i)) in out.textures.iter().zip(&init).enumerate() {
        let changes = texel_changes(t, i);
        let mean = changes.iter().sum::<f32>() / changes.len() as f32;
        eprintln!("material {m}: mean change {mean}");
        assert!(mean > 0.02, "material {m} barely changed (mean {mean})");
    }
    let files = texstyle::export::export(&mesh, &out.textures, &dir.path().join("out"), "cube").unwrap();
    assert_eq!(files.textures.len(), 2);
    let back = Mesh::load(&files.obj).unwrap();
    assert!(back.materials.iter().all(|m| m.texture.is_some()));
}

#[test]
fn ctrl_c_stops_the_run_and_keeps_the_result_so_far() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().unwrap();
    let style = common::style_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_texstyle"))
        .args([common::asset_mesh("spot").to_str().unwrap(), "--style", style.to_str().unwrap()])
        .args(["--steps", "100000", "--texture-size", "32", "--render-size", "64", "--style-size", "128"])
        .args(["--out", dir.path().to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // Plain progress lines (stderr is not a terminal) start with step 1.
    while !seen.contains("step 1/100000") {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "texstyle ended early: {seen}");
        seen += &line;
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    err.read_to_string(&mut seen).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{seen}");
    assert!(seen.contains("interrupted after step"), "{seen}");
    for f in ["spot.obj", "spot.mtl", "spot_spot.png", "preview_before_after.png", "loss.csv"] {
        assert!(dir.path().join(f).is_file(), "{f} missing: {seen}");
    }
    let steps = std::fs::read_to_string(dir.path().join("loss.csv")).unwrap().lines().count() - 1;
    assert!((1..1000).contains(&steps), "{steps} steps logged");
}
