//! Nothing of the user's is lost (issue 23): files named like texstyle's
//! temporaries, damaged or empty checkpoints, SIGTERM, and a resume on the
//! other rasterizer.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use texstyle::checkpoint::{Checkpoint, FILE};
use texstyle::publish::{OutputSet, CHECKPOINT};

/// A process id above Linux's default pid_max: never running.
const DEAD: &str = "4194300";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(p: &Path, s: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, s).unwrap();
}

#[test]
fn user_files_named_like_temporaries_survive_refused_and_accepted_runs() {
    let tmp = tempfile::tempdir().unwrap();
    // Refused (notes.txt is the user's): the look-alike stays too.
    let u = tmp.path().join("u");
    write(&u.join("notes.txt"), "mine");
    write(&u.join(format!(".draft.{DEAD}.tmp")), "mine");
    assert!(OutputSet::prepare(&u, &[], false).is_err());
    assert!(u.join(format!(".draft.{DEAD}.tmp")).exists(), "a refused run deleted the user's file");
    // A folder holding only a look-alike is the user's, not an empty one.
    let v = tmp.path().join("v");
    let thesis = v.join(format!(".thesis.{DEAD}.tmp"));
    write(&thesis, "mine");
    assert!(OutputSet::prepare(&v, &[], false).is_err(), "a folder with a user's file was accepted");
    assert_eq!(fs::read_to_string(&thesis).unwrap(), "mine");
    // An accepted run beside it leaves it alone.
    let set = OutputSet::prepare(&v.join("run"), &[], false).unwrap();
    write(&set.staging().unwrap().join("a.png"), "x");
    set.publish(false).unwrap();
    assert_eq!(fs::read_to_string(&thesis).unwrap(), "mine");
}

#[test]
fn an_empty_checkpoint_folder_is_not_sent_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // What a failed first checkpoint write leaves today: the folder, no file.
    let partial = tmp.path().join("out.partial");
    fs::create_dir_all(partial.join(CHECKPOINT)).unwrap();
    write(&partial.join("pid"), DEAD);
    let err = OutputSet::prepare(&out, &[], true).unwrap_err().to_string();
    assert!(err.contains("holds no checkpoint") && err.contains("without --resume"), "{err}");
    let set = OutputSet::prepare(&out, &[], false).expect("a new run starts over");
    // A run that fails while its checkpoint folder is still empty leaves nothing behind.
    fs::create_dir_all(set.partial().join(CHECKPOINT)).unwrap();
    drop(set);
    assert!(!partial.exists(), "an empty checkpoint folder was left behind");
}

/// 32² views of a 32² texture, a checkpoint every step.
fn args(out: &Path, steps: &str) -> Vec<String> {
    let (mesh, style) = (common::asset_mesh("spot"), common::style_path());
    let tiny = ["--texture-size", "32", "--render-size", "32", "--style-size", "64", "--checkpoint-every", "1"];
    [mesh.to_str().unwrap(), "--style", style.to_str().unwrap(), "--steps", steps, "--out", out.to_str().unwrap()]
        .into_iter()
        .chain(tiny)
        .map(str::to_string)
        .collect()
}

fn texstyle(args: &[String], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_texstyle")).args(args).args(extra).output().unwrap()
}

/// Starts a run into `out`, sends `signal` once its first checkpoint is saved,
/// and returns the run's output and its work folder.
fn interrupted(out: &Path, signal: &str) -> (Output, PathBuf) {
    let child = Command::new(env!("CARGO_BIN_EXE_texstyle")).args(args(out, "40")).stderr(Stdio::piped()).spawn().unwrap();
    let work = out.with_file_name("out.partial");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Checkpoint::load(&work.join(CHECKPOINT)).map(|c| c.step).unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "no first checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    (child.wait_with_output().unwrap(), work)
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())).collect();
    v.sort();
    v
}

#[test]
fn sigterm_saves_publishes_and_resumes_like_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (o, work) = interrupted(&out, "-TERM");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(work.join(CHECKPOINT).join(FILE).is_file(), "no checkpoint after SIGTERM");
    assert!(out.join("spot_spot.png").is_file(), "no result published after SIGTERM");
    let o = texstyle(&args(&out, "40"), &["--resume", work.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming from the checkpoint of step"), "{}", stderr(&o));
    assert!(!work.exists());
}

#[test]
fn resuming_on_the_other_rasterizer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (o, work) = interrupted(&out, "-INT");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let o = texstyle(&args(&out, "40"), &["--cpu", "--resume", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--cpu: off then, on now"), "{}", stderr(&o));
}

#[test]
fn a_damaged_checkpoint_is_refused_naming_it_and_nothing_is_published() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (o, work) = interrupted(&out, "-INT");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let file = work.join(CHECKPOINT).join(FILE);
    let mut bytes = fs::read(&file).unwrap();
    // 4 bytes in the middle of the tensor data (after the 8-byte length and the JSON header).
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let at = (header + (bytes.len() - header) / 2) & !3;
    bytes[at..at + 4].fill(0xFF);
    fs::write(&file, &bytes).unwrap();
    let before = snapshot(&out);
    let o = texstyle(&args(&out, "40"), &["--resume", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&file.display().to_string()), "{}", stderr(&o));
    assert_eq!(snapshot(&out), before, "the output folder changed");
}
