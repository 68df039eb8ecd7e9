//! `texstyle batch --slurm` on a real Slurm: `.ci/slurm.sh` starts a
//! one-node cluster on localhost and runs these (`--features slurm-tests`).
//! They fail, never skip, when Slurm is not up. Tiny jobs, as in tests/batch.rs.

#![cfg(feature = "slurm-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use texstyle::image_io::Image;

fn texstyle() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_texstyle"));
    c.env("VK_DRIVER_FILES", "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn painting(path: &Path, a: [f32; 3], b: [f32; 3], period: u32) {
    let mut img = Image::filled(96, 96, a);
    for y in 0..96 {
        for x in 0..96 {
            if ((x + 2 * y) / period) % 2 == 1 {
                img.set_pixel(x, y, b);
            }
        }
    }
    img.save_png(path).unwrap();
}

/// Inputs and a job file in a folder Slurm's tasks can read (a tempdir: one node).
fn setup(jobs: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    common::write_two_material_cube(dir.path(), true);
    painting(&dir.path().join("stripes.png"), [0.9, 0.8, 0.1], [0.1, 0.2, 0.7], 6);
    painting(&dir.path().join("waves.png"), [0.2, 0.7, 0.3], [0.8, 0.1, 0.4], 11);
    std::fs::write(dir.path().join("broken.obj"), "v 0 0 0\nf 1 2 3\n").unwrap();
    let file = dir.path().join("jobs.toml");
    std::fs::write(&file, format!("[defaults]\nrender-size = 64\ntexture-size = 32\nstyle-size = 64\nsamples = 1\ncpu = true\n{jobs}")).unwrap();
    (dir, file)
}

/// Submits through `texstyle batch --slurm`; the array's job id.
fn submit(file: &Path, out: &Path) -> String {
    let o = texstyle().arg("batch").arg(file).arg("--out").arg(out).args(["--slurm", "--time", "10:00"]).output().unwrap();
    assert!(o.status.success(), "submitting failed (is Slurm up? run .ci/slurm.sh): {}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()), "sbatch gave no job id: {}", text(&o));
    id
}

/// The states of the array's tasks still known to squeue.
fn states(id: &str) -> Vec<String> {
    let o = Command::new("squeue").args(["-h", "-r", "-j", id, "-o", "%T"]).output().expect("squeue");
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Waits (bounded) until no task of `id` is queued or running.
fn wait_done(id: &str, out: &Path) {
    let start = Instant::now();
    while !states(id).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(600), "job {id} not finished after 10 min: {:?}; see {}", states(id), out.join(".batch").display());
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `batch.csv` as (id, status, message).
fn csv(out: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(out.join("batch.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.splitn(10, ',').collect();
            (f[0].into(), f[3].into(), f[9].into())
        })
        .collect()
}

#[test]
fn an_array_of_tiny_jobs_runs_on_slurm_and_a_broken_mesh_fails_alone() {
    let (dir, file) = setup(
        "steps = 3\n[[jobs]]\nname = \"a\"\nmesh = \"cube.obj\"\nstyles = [\"*.png\"]\n[[jobs]]\nname = \"b\"\nmesh = \"cube.obj\"\nstyles = [\"*.png\"]\nseed = 7\n\
         [[jobs]]\nmesh = \"broken.obj\"\nstyle = \"waves.png\"\n",
    );
    let out = dir.path().join("out");
    let id = submit(&file, &out);
    assert!(std::fs::read_to_string(out.join("submit.sbatch")).unwrap().contains("#SBATCH --array=0-4\n"));
    wait_done(&id, &out);
    let rows = csv(&out);
    let want = ["a-cube_stripes", "a-cube_waves", "b-cube_stripes", "b-cube_waves", "broken_waves"];
    assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), want, "{rows:?}");
    for r in &rows[..4] {
        assert_eq!(r.1, "done", "{r:?}; log: {}", out.join(".batch").join(format!("{}.log", r.0)).display());
        let set = out.join(&r.0);
        for f in ["cube.obj", "cube_red.png", "cube_blue.png", "preview_before_after.png", ".texstyle-set"] {
            assert!(set.join(f).is_file(), "{} missing", set.join(f).display());
        }
    }
    assert_eq!(rows[4].1, "failed");
    assert!(rows[4].2.contains("vertex index 2 is out of range"), "{:?}", rows[4]);
    let o = texstyle().arg("batch").arg(&file).arg("--out").arg(&out).arg("--status").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches(" done ").count(), 4, "{}", text(&o));
}

#[test]
fn a_requeued_task_resumes_from_its_checkpoint_and_ends_with_the_same_texture() {
    let (dir, file) = setup("steps = 40\ncheckpoint-every = 1\n[[jobs]]\nmesh = \"cube.obj\"\nstyle = \"stripes.png\"\n");
    // The uninterrupted result, run here.
    let whole = dir.path().join("whole");
    let o = texstyle().arg("batch").arg(&file).arg("--out").arg(&whole).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let out = dir.path().join("out");
    let id = submit(&file, &out);
    let log = out.join(".batch/cube_stripes.log");
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("step 10/40") {
        assert!(start.elapsed() < Duration::from_secs(300), "the task did not reach step 10 in 5 min: {:?}", states(&id));
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = Command::new("scontrol").args(["requeue", &format!("{id}_0")]).output().unwrap();
    assert!(r.status.success(), "scontrol requeue: {}", text(&r));
    wait_done(&id, &out);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("texstyle: interrupted"), "the task never saw the SIGTERM:\n{log}");
    assert!(log.contains("texstyle: resuming from the checkpoint of step"), "the requeued task started over:\n{log}");
    assert_eq!(csv(&out)[0].1, "done");
    for t in ["cube_red.png", "cube_blue.png"] {
        let (a, b) = (std::fs::read(whole.join("cube_stripes").join(t)).unwrap(), std::fs::read(out.join("cube_stripes").join(t)).unwrap());
        assert!(a == b, "{t} differs from the uninterrupted run");
    }
}
