//! `texstyle batch` on this machine: the job file's checks, matrix ids,
//! failure isolation, skipping finished jobs, and resuming after a kill.
//! Tiny jobs: the two-material cube, generated 96² paintings, 64² views,
//! 32² textures, the CPU rasterizer.

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

/// A 96² painting: stripes of `a` and `b`, `period` pixels wide.
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

/// The cube, two paintings and a broken mesh in `dir`.
fn inputs(dir: &Path) {
    common::write_two_material_cube(dir, true);
    painting(&dir.join("stripes.png"), [0.9, 0.8, 0.1], [0.1, 0.2, 0.7], 6);
    painting(&dir.join("waves.png"), [0.2, 0.7, 0.3], [0.8, 0.1, 0.4], 11);
    std::fs::write(dir.join("broken.obj"), "v 0 0 0\nf 1 2 3\n").unwrap();
}

const TINY: &str = "[defaults]\nrender-size = 64\ntexture-size = 32\nstyle-size = 64\nsamples = 1\ncpu = true\n";

fn job_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("jobs.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn batch(file: &Path, out: &Path, extra: &[&str]) -> Output {
    texstyle().arg("batch").arg(file).arg("--out").arg(out).args(extra).output().unwrap()
}

/// `batch.csv` as (id, status, exit code, message) per row.
fn csv(out: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(out.join("batch.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "id,mesh,style,status,exit_code,wall_s,style_loss,content_loss,folder,message");
    lines
        .map(|l| {
            let f: Vec<&str> = l.splitn(10, ',').collect();
            (f[0].into(), f[3].into(), f[4].into(), f[9].into())
        })
        .collect()
}

#[test]
fn a_bad_job_file_is_refused_whole_with_file_and_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let body = format!(
        "{TINY}stepz = 3\nsteps = 0\n\n[[jobs]]\nmesh = \"missing.obj\"\nstyle = \"stripes.png\"\n\n[[jobs]]\nmesh = \"cube.obj\"\nstyle = \"*.jpg\"\n\n\
         [[jobs]]\nmesh = \"cube.obj\"\nstyle = \"stripes.png\"\nlr = -1\n[[jobs]]\nmesh = \"cube.obj\"\nstyle = \"stripes.png\"\n"
    );
    let file = job_file(dir.path(), &body);
    let out = dir.path().join("out");
    let o = batch(&file, &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let f = file.display();
    for want in [
        format!("{f}:7: unknown option 'stepz'"),
        format!("{f}:8: steps: "),
        format!("{f}:11: mesh: {}: no such file", dir.path().join("missing.obj").display()),
        format!("{f}:16: style: "),
        format!("{f}:21: --lr -1 is out of range"),
        format!("{f}:22: job cube_stripes writes to the same output folder as the job of line 18"),
    ] {
        assert!(err.lines().any(|l| l.starts_with(&format!("texstyle: error: {want}"))), "no line starting with {want:?} in\n{err}");
    }
    assert_eq!(err.lines().count(), 6, "one line per problem:\n{err}");
    assert!(!out.exists(), "nothing may run or be written before the file is valid");
}

#[test]
fn a_matrix_expands_to_the_product_and_ids_do_not_depend_on_the_order() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    std::fs::copy(dir.path().join("cube.obj"), dir.path().join("box.obj")).unwrap();
    let status = |body: &str| {
        let o = batch(&job_file(dir.path(), body), &dir.path().join("out"), &["--status"]);
        assert!(o.status.success(), "{}", text(&o));
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        let mut ids: Vec<String> = s.lines().map(|l| l.split_whitespace().last().unwrap().to_string()).collect();
        assert!(s.lines().all(|l| l.contains("not started")), "{s}");
        let listed = ids.clone();
        ids.sort();
        (listed, ids)
    };
    let (listed, a) = status(&format!("{TINY}[[jobs]]\nmeshes = [\"cube.obj\", \"box.obj\"]\nstyles = [\"*.png\"]\n"));
    assert_eq!(listed, ["cube_stripes", "cube_waves", "box_stripes", "box_waves"]);
    let (_, b) = status(&format!("{TINY}[[jobs]]\nstyles = [\"waves.png\", \"stripes.png\"]\nmeshes = [\"box.obj\", \"cube.obj\"]\n"));
    assert_eq!(a, b);
}

#[test]
fn a_broken_mesh_fails_alone_and_a_rerun_skips_finished_jobs() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let file = job_file(dir.path(), &format!("{TINY}steps = 3\n[[jobs]]\nmesh = \"cube.obj\"\nstyles = [\"*.png\"]\n[[jobs]]\nmesh = \"broken.obj\"\nstyle = \"waves.png\"\n"));
    let out = dir.path().join("out");
    let o = batch(&file, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let rows = csv(&out);
    assert_eq!(rows.iter().map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str())).collect::<Vec<_>>(), [
        ("cube_stripes", "done", "0"),
        ("cube_waves", "done", "0"),
        ("broken_waves", "failed", "2")
    ]);
    assert!(rows[2].3.contains("broken.obj:2: vertex index 2 is out of range"), "{}", rows[2].3);
    for id in ["cube_stripes", "cube_waves"] {
        assert!(out.join(id).join("cube_red.png").is_file() && out.join(id).join(".texstyle-set").is_file());
    }
    let sheet = Image::load(&out.join("contact_sheet.png")).unwrap();
    let preview = Image::load(&out.join("cube_waves/preview_before_after.png")).unwrap();
    assert_eq!((sheet.width, sheet.height), (preview.width + 8, 2 * preview.height + 12), "one row per finished job");
    // The batch's gallery page: a card per job linking to its own page, the failed one too.
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    for link in ["cube_stripes/index.html", "cube_waves/index.html", "broken_waves/index.html"] {
        assert!(page.contains(link), "{link} not in the gallery");
    }
    assert!(out.join("cube_waves/index.html").is_file(), "each finished job has its own page");

    let logs = |id: &str| std::fs::read_to_string(out.join(".batch").join(format!("{id}.log"))).unwrap().len();
    let before = (logs("cube_stripes"), logs("broken_waves"));
    let o = batch(&file, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(text(&o).matches("is done already").count(), 2, "{}", text(&o));
    assert_eq!(logs("cube_stripes"), before.0, "a finished job ran again");
    assert!(logs("broken_waves") > before.1, "the failed job is tried again");
    assert_eq!(csv(&out), rows.into_iter().map(|mut r| { r.3 = r.3.clone(); r }).collect::<Vec<_>>());

    // Other options: no longer the finished set, so it runs again.
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("steps = 3", "steps = 2")).unwrap();
    let o = batch(&file, &out, &[]);
    assert_eq!(text(&o).matches("is done already").count(), 0, "{}", text(&o));
}

/// `batch.csv`'s held-out scores: the run's closing lines, content against
/// the mesh's own texture (spot has one; the flat-coloured cube none).
#[test]
fn batch_csv_holds_the_held_out_style_and_content_scores() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let spot = common::repo("meshes/spot/spot.obj");
    let body = format!("{TINY}steps = 2\n[[jobs]]\nmesh = \"{}\"\nstyle = \"stripes.png\"\n[[jobs]]\nmesh = \"cube.obj\"\nstyle = \"stripes.png\"\n", spot.display());
    let out = dir.path().join("out");
    let o = batch(&job_file(dir.path(), &body), &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let text = std::fs::read_to_string(out.join("batch.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.splitn(10, ',').collect()).collect();
    let score = |row: &[&str], col: usize| row[col].parse::<f32>().ok();
    let (spot_row, cube_row) = (&rows[0], &rows[1]);
    assert_eq!((spot_row[0], cube_row[0]), ("spot_stripes", "cube_stripes"));
    let log = std::fs::read_to_string(out.join(".batch/spot_stripes.log")).unwrap();
    let line = log.lines().find(|l| l.contains("content loss on the same views:")).expect("the run's closing content line");
    let content = score(spot_row, 7).unwrap_or_else(|| panic!("no content score in {spot_row:?}"));
    assert!(line.contains(&format!("{content:.4}")), "{line} vs {content}");
    // Two steps from a random start keep little of spot's texture, but some.
    assert!(content > 0.05 && content < 1.5, "{content}");
    assert!(score(spot_row, 6).is_some_and(|s| s > 0.0), "{spot_row:?}");
    assert!(score(cube_row, 6).is_some() && cube_row[7].is_empty(), "no texture, no content score: {cube_row:?}");
}

/// Texture bytes of every job's output set.
fn textures(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for id in ["cube_stripes", "cube_waves"] {
        for t in ["cube_red.png", "cube_blue.png"] {
            v.push((format!("{id}/{t}"), std::fs::read(out.join(id).join(t)).unwrap_or_default()));
        }
    }
    v
}

#[test]
fn a_batch_killed_at_a_random_moment_resumes_to_the_results_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let file = job_file(dir.path(), &format!("{TINY}steps = 8\ncheckpoint-every = 1\n[[jobs]]\nmesh = \"cube.obj\"\nstyles = [\"*.png\"]\n"));
    let whole = dir.path().join("whole");
    let t = Instant::now();
    let o = batch(&file, &whole, &[]);
    let full_s = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", text(&o));

    let out = dir.path().join("killed");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let delay = full_s * (0.1 + 0.8 * (nanos % 1000) as f64 / 1000.0);
    eprintln!("SIGTERM after {delay:.2} s of a {full_s:.1} s batch");
    let mut child = texstyle().arg("batch").arg(&file).arg("--out").arg(&out).spawn().unwrap();
    std::thread::sleep(Duration::from_secs_f64(delay));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = child.wait().unwrap().code();
    assert!(matches!(code, Some(130) | Some(0)), "exit {code:?}");

    let t = Instant::now();
    let o = batch(&file, &out, &[]);
    eprintln!("rerun: {:.1} s; uninterrupted batch: {full_s:.1} s", t.elapsed().as_secs_f64());
    assert!(o.status.success(), "{}", text(&o));
    let (a, b) = (textures(&whole), textures(&out));
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(!x.is_empty() && x == y, "{name} differs after the kill at {delay:.2} s");
    }
    assert!(csv(&out).iter().all(|r| r.1 == "done"));
}

#[test]
fn slurm_dry_run_writes_the_array_and_a_task_index_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let file = job_file(dir.path(), &format!("{TINY}steps = 2\n[[jobs]]\nmesh = \"cube.obj\"\nstyles = [\"*.png\"]\n"));
    let out = dir.path().join("out");
    let o = batch(&file, &out, &["--slurm", "--dry-run", "--max-running", "1", "--partition", "cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    let script = std::fs::read_to_string(out.join("submit.sbatch")).unwrap();
    for want in ["#SBATCH --array=0-1%1\n", "#SBATCH --requeue\n", "#SBATCH --signal=B:TERM@", "#SBATCH --partition=cpu\n", "--task \"$SLURM_ARRAY_TASK_ID\""] {
        assert!(script.contains(want), "{want} missing:\n{script}");
    }
    let o = batch(&file, &out, &["--task", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--task 2: the job file has 2 jobs, numbered 0 to 1"), "{}", text(&o));
    // A Kubernetes Indexed Job's pod: the index from JOB_COMPLETION_INDEX.
    let o = texstyle().arg("batch").arg(&file).arg("--out").arg(&out).arg("--task").env_remove("SLURM_ARRAY_TASK_ID").env("JOB_COMPLETION_INDEX", "1").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let rows = csv(&out);
    assert_eq!(rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect::<Vec<_>>(), [("cube_stripes", "not started"), ("cube_waves", "done")]);
}
