//! The output folder of one run, made safe: checked before the first step,
//! filled out of sight, and published whole.
//!
//! A run works in `OUT.partial/` beside `OUT`: checkpoints go there while it
//! runs, then the whole output set is written into `OUT.partial/set/` and
//! swapped into place as one directory (Linux: one `renameat2` exchange; elsewhere
//! two renames). So a reader of `OUT` sees the previous run's set or this one,
//! never a mix, and a crash leaves `OUT` as it was plus a resumable `OUT.partial/`.
//!
//! What is refused, before any work is done (each with what to do instead):
//! - `OUT` is a file, sits under a file, or cannot be created or written;
//! - `OUT` holds files texstyle did not write (the folder of the input mesh,
//!   `--out .` in a project folder): replacing the folder would lose them;
//! - any file the run reads (mesh, MTL, textures, painting, weights) lies in
//!   `OUT` or `OUT.partial`, compared by canonical path and by file identity
//!   (device and inode), so symlinks and hard links are caught too;
//! - `OUT.partial/` holds another live run, or the checkpoint of an
//!   interrupted one (resume it or delete it: texstyle never deletes a checkpoint it did not finish).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Names the files of a published set, one per line; its presence marks a
/// folder as texstyle's own, which a later run may replace.
pub const MANIFEST: &str = ".texstyle-set";
/// Inside `OUT.partial/`: the process id of the run that owns it.
const LOCK: &str = "pid";
/// Inside `OUT.partial/`: where the output set is assembled.
const SET: &str = "set";
/// Inside `OUT.partial/`: the checkpoint folder (see `checkpoint`).
pub const CHECKPOINT: &str = "checkpoint";

/// A checked output folder and its work folder.
#[derive(Debug)]
pub struct OutputSet {
    out: PathBuf,
    partial: PathBuf,
}

/// A run that fails before its first checkpoint leaves nothing behind.
impl Drop for OutputSet {
    fn drop(&mut self) {
        if self.partial.exists() && !holds_checkpoint(&self.partial) {
            let _ = fs::remove_dir_all(&self.partial);
        } else {
            let _ = fs::remove_file(self.partial.join(LOCK));
        }
    }
}

/// The reason an output folder cannot be used (each message says what to do instead).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// `OUT` is not a folder name, is a file, or lies under one.
    #[error("{0}")]
    NotAFolder(String),
    /// A file the run reads lies in `OUT` or `OUT.partial`.
    #[error("{0}")]
    HoldsAnInput(String),
    /// `OUT` holds files texstyle did not write.
    #[error("{0}")]
    Foreign(String),
    /// `OUT.partial` belongs to a run still going.
    #[error("{0}")]
    Busy(String),
    /// `OUT.partial` holds an interrupted run's checkpoint (and this run does not resume it).
    #[error("{0}")]
    Interrupted(String),
    /// `--resume` without an `OUT.partial`.
    #[error("{0}")]
    NothingToResume(String),
    /// `OUT.partial` cannot be created or written.
    #[error("{0}")]
    NotWritable(String),
}

impl OutputError {
    /// Every refusal is about the folder the user chose.
    pub fn blame(&self) -> crate::error::Blame {
        crate::error::Blame::Input
    }
}

fn refuse<T>(kind: fn(String) -> OutputError, msg: String) -> Result<T> {
    Err(kind(msg).into())
}

/// `OUT.partial` beside `OUT`.
pub fn partial_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "out".into());
    name.push(".partial");
    out.with_file_name(name)
}

impl OutputSet {
    /// Checks `out` (see the module docs) against the files the run reads and
    /// claims `OUT.partial/` for this process. With `resume`, an interrupted
    /// run's `OUT.partial/` is taken over instead of refused.
    pub fn prepare(out: &Path, inputs: &[&Path], resume: bool) -> Result<OutputSet> {
        let out = absolute(out)?;
        if out.file_name().is_none() {
            return refuse(OutputError::NotAFolder, format!("--out {}: not a folder name (name a folder, e.g. --out texstyle-out/run1)", out.display()));
        }
        if let Some(file) = out.ancestors().find(|a| a.exists() && !a.is_dir()) {
            let what = if file == out { "is a file, not a folder" } else { "lies under a file" };
            return refuse(OutputError::NotAFolder, format!(
                "--out {}: {what} ({}); choose a folder path, e.g. --out {}",
                out.display(),
                file.display(),
                out.with_extension("out").display()
            ));
        }
        let partial = partial_dir(&out);
        for input in inputs {
            check_not_inside(input, &out)?;
            check_not_inside(input, &partial)?;
        }
        // `OUT` is never cleaned by name: a set is assembled in `OUT.partial`, so
        // any file in `OUT` not listed in its manifest is the user's.
        if out.is_dir() {
            check_only_ours(&out)?;
        }
        if partial.exists() {
            claim_stale(&partial, resume)?;
        } else if resume {
            return refuse(OutputError::NothingToResume, format!("--resume: {} does not exist (nothing to resume)", partial.display()));
        }
        if resume {
            // Our own work folder: a killed checkpoint write's temporary.
            remove_stale_temporaries(&partial.join(CHECKPOINT));
        }
        create_writable(&partial).map_err(|e| {
            OutputError::NotWritable(format!("--out {}: cannot write beside it ({e:#}); choose a writable folder", out.display()))
        })?;
        let _ = fs::remove_dir_all(partial.join(SET));
        fs::write(partial.join(LOCK), std::process::id().to_string())
            .with_context(|| format!("writing {}", partial.join(LOCK).display()))?;
        Ok(OutputSet { out, partial })
    }

    /// The published folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The work folder (`OUT.partial`), which also holds checkpoints.
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Where this run's outputs are written before [`OutputSet::publish`]; created on first call.
    pub fn staging(&self) -> Result<PathBuf> {
        let set = self.partial.join(SET);
        fs::create_dir_all(&set).with_context(|| format!("creating {}", set.display()))?;
        Ok(set)
    }

    /// Makes the staged set `OUT`, replacing the previous set at once. With
    /// `keep_checkpoint` (an interrupted run) `OUT.partial/` stays for
    /// `--resume`; otherwise it is removed.
    pub fn publish(self, keep_checkpoint: bool) -> Result<PathBuf> {
        let set = self.staging()?;
        let mut names: Vec<String> = fs::read_dir(&set)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        names.retain(|n| n != MANIFEST);
        crate::image_io::write_atomic(&set.join(MANIFEST), format!("{}\n", names.join("\n")).as_bytes())?;
        if let Some(parent) = self.out.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        swap_into_place(&set, &self.out)?;
        // `set` now holds the previous run's files (or nothing).
        let _ = fs::remove_dir_all(&set);
        if !keep_checkpoint {
            fs::remove_dir_all(&self.partial).with_context(|| format!("removing {}", self.partial.display()))?;
        }
        // Drop releases the lock of a kept work folder.
        Ok(self.out.clone())
    }
}

/// `p` made absolute and, where it exists, canonical (symlinks resolved);
/// a missing tail is kept as typed under its canonical existing ancestor.
fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).with_context(|| format!("--out {}: cannot resolve the path", p.display()))?;
    let mut tail = Vec::new();
    let mut head = abs.as_path();
    loop {
        if let Ok(c) = head.canonicalize() {
            return Ok(tail.iter().rev().fold(c, |acc: PathBuf, n| acc.join(n)));
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                head = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// Refuses when `input` is `dir`, lies under it, or is the same file as one in it.
fn check_not_inside(input: &Path, dir: &Path) -> Result<()> {
    let Ok(canon) = input.canonicalize() else { return Ok(()) };
    let inside = canon.starts_with(dir) || (dir.is_dir() && same_file_in(dir, &canon));
    if inside {
        return refuse(OutputError::HoldsAnInput, format!(
            "--out {}: the run reads {} from there, and publishing the output would replace it; \
             choose another output folder, e.g. --out {}",
            dir.display(),
            input.display(),
            dir.with_file_name(format!("{}-styled", dir.file_name().unwrap_or_default().to_string_lossy())).display()
        ));
    }
    Ok(())
}

/// True when some file directly in `dir` is `file` (same device and inode): a hard link.
fn same_file_in(dir: &Path, file: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = fs::metadata(file) else { return false };
        let Ok(entries) = fs::read_dir(dir) else { return false };
        entries.flatten().any(|e| e.metadata().map(|n| n.dev() == m.dev() && n.ino() == m.ino()).unwrap_or(false))
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, file);
        false
    }
}

/// Refuses a non-empty `out` unless it is a published set with nothing added.
fn check_only_ours(out: &Path) -> Result<()> {
    let listed: Vec<String> = fs::read_to_string(out.join(MANIFEST))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    let foreign: Vec<String> = fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != MANIFEST && !listed.contains(n))
        .collect();
    if let Some(first) = foreign.first() {
        return refuse(OutputError::Foreign, format!(
            "--out {}: the folder holds {} file(s) texstyle did not write (e.g. {first}); a run replaces its whole \
             output folder, so choose a new or empty one, e.g. --out {}",
            out.display(),
            foreign.len(),
            out.join("texstyle").display()
        ));
    }
    Ok(())
}

/// Removes `.NAME.PID.tmp` files left in `dir` by killed runs (their PID is
/// gone). Only for texstyle's own work folder: never a folder of the user's.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { continue };
        let Some(pid) = stem.rsplit('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !process_alive(pid) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Takes over `OUT.partial` when its owner is gone and the caller resumes;
/// refuses otherwise, saying what is there.
fn claim_stale(partial: &Path, resume: bool) -> Result<()> {
    let owner = fs::read_to_string(partial.join(LOCK)).ok().and_then(|s| s.trim().parse::<u32>().ok());
    if let Some(pid) = owner.filter(|&p| p != std::process::id() && process_alive(p)) {
        return refuse(OutputError::Busy, format!(
            "--out: {} belongs to a run still going (process {pid}); wait for it or choose another --out",
            partial.display()
        ));
    }
    if resume && !holds_checkpoint(partial) {
        return refuse(OutputError::NothingToResume, format!(
            "--resume: {} holds no checkpoint (the run stopped before saving one); run the same command without --resume to start over",
            partial.display()
        ));
    }
    if resume {
        return Ok(());
    }
    if holds_checkpoint(partial) {
        return refuse(OutputError::Interrupted, format!(
            "--out: {} holds the checkpoint of an interrupted run; continue it with `--resume {}` \
             (same options), or delete that folder to start over",
            partial.display(),
            partial.display()
        ));
    }
    // No checkpoint: only a half-built set, nothing worth keeping.
    fs::remove_dir_all(partial).with_context(|| format!("removing the stale {}", partial.display()))
}

/// Whether `partial` holds a checkpoint file (a failed first save can leave
/// only its empty folder, which is nothing to resume).
fn holds_checkpoint(partial: &Path) -> bool {
    partial.join(CHECKPOINT).join(crate::checkpoint::FILE).is_file()
}

/// Creates `dir` and proves a file can be written and removed there.
fn create_writable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let probe = dir.join(format!(".probe.{}.tmp", std::process::id()));
    fs::write(&probe, vec![0u8; 4096]).with_context(|| format!("cannot write in {}", dir.display()))?;
    fs::remove_file(&probe).with_context(|| format!("cannot remove {}", probe.display()))?;
    Ok(())
}

/// Moves `new` to `out`. When `out` exists the two are exchanged atomically
/// where the OS can (Linux), so `new` then holds the old contents.
fn swap_into_place(new: &Path, out: &Path) -> Result<()> {
    if !out.exists() {
        return fs::rename(new, out).with_context(|| format!("moving the outputs into {}", out.display()));
    }
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let (a, b) = (CString::new(new.as_os_str().as_bytes())?, CString::new(out.as_os_str().as_bytes())?);
        // SAFETY: two valid NUL-terminated paths; the call reads nothing else.
        let rc = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
        if rc == 0 {
            return Ok(());
        }
        // Filesystems without RENAME_EXCHANGE fall through to two renames.
    }
    let old = new.with_extension("old");
    let _ = fs::remove_dir_all(&old);
    fs::rename(out, &old).with_context(|| format!("moving the previous outputs out of {}", out.display()))?;
    fs::rename(new, out).with_context(|| format!("moving the outputs into {}", out.display()))?;
    fs::rename(&old, new).with_context(|| format!("moving {} aside", old.display()))
}

/// Whether process `pid` exists (signal 0 probes without sending anything).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: kill with signal 0 only checks for existence and permission.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, s).unwrap();
    }

    fn publish_set(out: &Path, files: &[(&str, &str)]) -> Result<PathBuf> {
        let set = OutputSet::prepare(out, &[], false)?;
        let stage = set.staging()?;
        for (n, c) in files {
            write(&stage.join(n), c);
        }
        set.publish(false)
    }

    #[test]
    fn a_second_run_replaces_the_whole_set() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        publish_set(&out, &[("a.obj", "1"), ("old_only.png", "x")]).unwrap();
        assert!(out.join(MANIFEST).exists());
        publish_set(&out, &[("a.obj", "2"), ("b.png", "y")]).unwrap();
        let mut names: Vec<_> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [MANIFEST, "a.obj", "b.png"]);
        assert_eq!(fs::read_to_string(out.join("a.obj")).unwrap(), "2");
        assert!(!partial_dir(&out).exists(), "the work folder is removed after a finished run");
    }

    #[test]
    fn a_folder_with_foreign_files_is_refused_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("mesh/bunny.obj"), "v 0 0 0");
        let err = publish_set(&dir.path().join("mesh"), &[("bunny.obj", "new")]).unwrap_err();
        assert!(err.to_string().contains("did not write (e.g. bunny.obj)"), "{err}");
        assert_eq!(fs::read_to_string(dir.path().join("mesh/bunny.obj")).unwrap(), "v 0 0 0");
        // A file added to a published set by hand also protects it.
        let out = dir.path().join("run");
        publish_set(&out, &[("a.obj", "1")]).unwrap();
        write(&out.join("notes.txt"), "mine");
        assert!(publish_set(&out, &[("a.obj", "2")]).is_err());
        assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    }

    #[test]
    fn inputs_inside_the_output_are_refused_by_path_link_and_inode() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        publish_set(&out, &[("tex.png", "t")]).unwrap();
        let input = out.join("tex.png");
        let err = OutputSet::prepare(&out, &[&input], false).unwrap_err();
        assert!(err.to_string().contains("reads"), "{err}");
        // Through a symlink to the folder.
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&out, &link).unwrap();
            assert!(OutputSet::prepare(&link, &[&input], false).is_err());
            // A hard link elsewhere to a file inside `out`.
            let hard = dir.path().join("hard.png");
            fs::hard_link(&input, &hard).unwrap();
            assert!(OutputSet::prepare(&out, &[&hard], false).is_err());
        }
    }

    #[test]
    fn unusable_out_paths_are_refused_before_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        write(&file, "x");
        assert!(OutputSet::prepare(&file, &[], false).unwrap_err().to_string().contains("is a file"));
        assert!(OutputSet::prepare(&file.join("sub"), &[], false).unwrap_err().to_string().contains("under a file"));
        #[cfg(unix)]
        if unsafe { libc::geteuid() } != 0 {
            // Root ignores permissions; the check is meaningful only for users.
            use std::os::unix::fs::PermissionsExt;
            let ro = dir.path().join("ro");
            fs::create_dir(&ro).unwrap();
            fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
            assert!(OutputSet::prepare(&ro.join("out"), &[], false).is_err());
        }
    }

    #[test]
    fn stale_temporaries_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".tex.png.4194300.tmp"); // above pid_max's default
        let live = dir.path().join(format!(".tex.png.{}.tmp", std::process::id()));
        write(&dead, "x");
        write(&live, "x");
        remove_stale_temporaries(dir.path());
        assert!(!dead.exists() && live.exists());
    }

    #[test]
    fn an_interrupted_runs_checkpoint_is_kept_until_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let set = OutputSet::prepare(&out, &[], false).unwrap();
        write(&set.partial().join(CHECKPOINT).join(crate::checkpoint::FILE), "s");
        write(&set.partial().join(LOCK), "4194300"); // its owner is gone
        drop(set);
        let err = OutputSet::prepare(&out, &[], false).unwrap_err().to_string();
        assert!(err.contains("--resume"), "{err}");
        let set = OutputSet::prepare(&out, &[], true).unwrap();
        assert!(set.partial().join(CHECKPOINT).join(crate::checkpoint::FILE).exists());
        // Resuming something that is not there is refused.
        assert!(OutputSet::prepare(&dir.path().join("other"), &[], true).is_err());
    }
}
