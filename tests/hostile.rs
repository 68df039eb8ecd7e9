//! Hostile inputs: devices, FIFOs and endless streams named as a mesh, a
//! painting or a texture are refused at once (exit 2, one line), never read
//! without bound and never waited on.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary under a memory limit (a run that reads an endless stream
/// fails instead of eating the machine) and kills it after 20 s: a hang is a failure.
fn texstyle_bounded(args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("ulimit -v 6000000; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_texstyle")).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("texstyle starts");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("texstyle {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo runs").success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Exit 2 with one error line that says the file is not a regular file.
fn assert_refused(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{what}: {err}");
    assert!(lines[0].contains("not a regular file"), "{what}: {err}");
    assert!(lines[0].ends_with(')'), "{what}: says what to do: {err}");
}

#[test]
fn dev_zero_as_a_mesh_through_a_symlink_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.obj");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let style = common::style_path();
    let out = dir.path().join("out");
    let o = texstyle_bounded(&[zero.to_str().unwrap(), "--style", style.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_refused(&o, "/dev/zero as zero.obj");
    let o = texstyle_bounded(&["render", zero.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_refused(&o, "render /dev/zero as zero.obj");
    let o = texstyle_bounded(&["/dev/urandom", "--style", style.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_refused(&o, "/dev/urandom as MESH");
}

#[test]
fn dev_zero_as_the_style_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = common::asset_mesh("spot");
    let out = dir.path().join("out");
    let o = texstyle_bounded(&[mesh.to_str().unwrap(), "--style", "/dev/zero", "--out", out.to_str().unwrap()]);
    assert_refused(&o, "/dev/zero as --style");
}

#[test]
fn a_fifo_as_the_mesh_or_the_style_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.obj");
    mkfifo(&fifo);
    let style = common::style_path();
    let mesh = common::asset_mesh("spot");
    let out = dir.path().join("out");
    let o = texstyle_bounded(&[fifo.to_str().unwrap(), "--style", style.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_refused(&o, "FIFO as MESH");
    let png = dir.path().join("pipe.png");
    mkfifo(&png);
    let o = texstyle_bounded(&[mesh.to_str().unwrap(), "--style", png.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_refused(&o, "FIFO as --style");
    let o = texstyle_bounded(&["render", mesh.to_str().unwrap(), "--texture", png.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_refused(&o, "FIFO as render --texture");
}

#[test]
fn a_fifo_as_the_material_library_or_its_texture_is_refused_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let obj = dir.path().join("tri.obj");
    std::fs::write(&obj, "mtllib tri.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\nf 1/1 2/2 3/3\n").unwrap();
    mkfifo(&dir.path().join("tri.mtl"));
    let o = texstyle_bounded(&["render", obj.to_str().unwrap(), "--cpu", "--out", out.to_str().unwrap()]);
    assert_refused(&o, "FIFO as the MTL");
    std::fs::remove_file(dir.path().join("tri.mtl")).unwrap();
    std::fs::write(dir.path().join("tri.mtl"), "newmtl m\nmap_Kd tex.png\n").unwrap();
    mkfifo(&dir.path().join("tex.png"));
    let o = texstyle_bounded(&["render", obj.to_str().unwrap(), "--cpu", "--out", out.to_str().unwrap()]);
    assert_refused(&o, "FIFO as the map_Kd texture");
}
