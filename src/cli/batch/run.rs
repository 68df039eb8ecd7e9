//! One job of a batch, run as a child process of this same binary: the
//! style command with the job's flags.
//!
//! Why a child and not a call: a run that panics, aborts or is killed for
//! memory takes only itself down, its exit code is the one a single run
//! gives (what `batch.csv` records), and its SIGTERM handling (finish the
//! step, checkpoint, publish the result so far) is the single run's own,
//! unchanged. A process start and the weights read per job cost well under
//! a second against runs of a minute (README, Batch).
//!
//! What the batch keeps per job, in `OUT/.batch/`: `ID.log` (the run's
//! output), `ID.row` (its [`Row`]), `ID.done` (the inputs and options its
//! published set was made from: the checkpoint fingerprint plus the flags)
//! and, while it runs, `ID.running` (host and process id).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

use super::jobfile::Job;
use super::progress::Display;
use super::row::Row;
use crate::cli::args::Cli;
use crate::cli::config::StyleConfig;
use crate::publish::{partial_dir, CHECKPOINT, MANIFEST};

/// The batch's state folder inside its `--out`.
pub const STATE: &str = ".batch";

/// Where a job's files go.
pub struct Paths {
    pub folder: PathBuf,
    pub state: PathBuf,
    id: String,
}

impl Paths {
    pub fn new(out: &Path, job: &Job) -> Paths {
        Paths { folder: out.join(&job.id), state: out.join(STATE), id: job.id.clone() }
    }
    pub fn file(&self, ext: &str) -> PathBuf {
        self.state.join(format!("{}.{ext}", self.id))
    }
    /// The checkpoint an interrupted run left, if any.
    pub fn checkpoint(&self) -> Option<PathBuf> {
        let partial = partial_dir(&self.folder);
        partial.join(CHECKPOINT).join(crate::checkpoint::FILE).is_file().then_some(partial)
    }
}

/// What a finished job's set was made from: the style command's fingerprint
/// (options and the bytes of mesh, textures and painting) and its flags.
pub fn job_key(job: &Job, folder: &Path) -> Option<String> {
    let cli = Cli::try_parse_from(job.argv(folder)).ok()?;
    let cfg = StyleConfig::from_args(cli.style).ok()?;
    let mesh = crate::mesh::Mesh::load(&cfg.mesh).ok()?;
    Some(format!("{}\nflags={}", cfg.fingerprint(&mesh).ok()?, job.options.join(" ")))
}

/// The job's row when its output set is whole and was made from the same
/// inputs and options as now; else `None` (run it).
pub fn finished(job: &Job, paths: &Paths) -> Option<Row> {
    let saved = std::fs::read_to_string(paths.file("done")).ok()?;
    if job_key(job, &paths.folder)? != saved {
        return None;
    }
    recorded_done(paths)
}

/// The job's row when the folders say it finished, without hashing its
/// inputs again (`--status`, and each array task's `batch.csv`: cheap for
/// hundreds of jobs on a shared filesystem).
pub fn recorded_done(paths: &Paths) -> Option<Row> {
    if !paths.file("done").is_file() || !paths.folder.join(MANIFEST).is_file() {
        return None;
    }
    Row::load(&paths.file("row")).filter(|r| r.status == "done")
}

/// Signals the batch received (first Ctrl-C / SIGTERM / SIGHUP, second, …).
pub static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Runs `job` (resuming its checkpoint if one was left) and records its row.
pub fn run(job: &Job, paths: &Paths, display: &Display) -> Row {
    let start = Instant::now();
    let mut row = Row { id: job.id.clone(), mesh: job.mesh.clone(), style: job.style.clone(), folder: paths.folder.clone(), ..Default::default() };
    let key = job_key(job, &paths.folder);
    let outcome = spawn_and_wait(job, paths, display);
    row.wall_s = Some(start.elapsed().as_secs_f64());
    match outcome {
        Ok(out) => {
            row.exit_code = Some(out.code);
            row.status = match out.code {
                0 => "done",
                130 => "interrupted",
                _ => "failed",
            }
            .into();
            (row.style_loss, row.content_loss) = (out.style_after, out.content_after);
            row.message = out.error.unwrap_or_default();
        }
        Err(e) => {
            row.status = "failed".into();
            row.message = format!("{e:#}");
        }
    }
    record(&row, paths, key.as_deref());
    row
}

/// Saves the row, and the done marker of a finished job (after the row: a
/// crash between the two leaves the job to run again, never a marker without a row).
fn record(row: &Row, paths: &Paths, key: Option<&str>) {
    let _ = std::fs::remove_file(paths.file("done"));
    if let Err(e) = row.save(&paths.file("row")) {
        crate::cli::warn(format!("job {}: cannot save its row: {e:#}", row.id));
    }
    if let (Some(key), "done") = (key, row.status.as_str()) {
        let _ = crate::image_io::write_atomic(&paths.file("done"), key.as_bytes());
    }
    let _ = std::fs::remove_file(paths.file("running"));
}

struct ChildOutcome {
    code: i32,
    style_after: Option<f32>,
    content_after: Option<f32>,
    error: Option<String>,
}

fn spawn_and_wait(job: &Job, paths: &Paths, display: &Display) -> anyhow::Result<ChildOutcome> {
    use anyhow::Context;
    std::fs::create_dir_all(&paths.state).with_context(|| format!("creating {}", paths.state.display()))?;
    let log_path = paths.file("log");
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).with_context(|| format!("opening {}", log_path.display()))?;
    let mut argv = job.argv(&paths.folder);
    if let Some(partial) = paths.checkpoint() {
        argv.extend(["--resume".to_string(), partial.display().to_string()]);
    }
    writeln!(log, "$ {}", argv.join(" "))?;
    let mut cmd = Command::new(std::env::current_exe().context("finding the texstyle executable")?);
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::piped());
    detach(&mut cmd);
    let mut child = cmd.spawn().context("starting the run")?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let _ = std::fs::write(paths.file("running"), format!("{} {}\n", host.trim(), child.id()));
    let saw_interrupt = AtomicBool::new(false);
    let stderr = child.stderr.take().expect("piped");
    let (status, (style_after, content_after, error)) = std::thread::scope(|s| {
        let reader = s.spawn(|| read_output(stderr, log, &saw_interrupt, &job.id, display));
        let status = wait_forwarding_signals(&mut child, &saw_interrupt);
        (status, reader.join().unwrap_or((None, None, None)))
    });
    let status = status?;
    #[cfg(unix)]
    let code = {
        use std::os::unix::process::ExitStatusExt;
        status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    };
    #[cfg(not(unix))]
    let code = status.code().unwrap_or(1);
    let error = error.or_else(|| (code != 0).then(|| format!("the run ended with exit code {code} (see {})", log_path.display())));
    Ok(ChildOutcome { code, style_after, content_after, error })
}

/// The run in its own process group, so a terminal's Ctrl-C reaches only the
/// batch, which passes it on once; and sent SIGTERM if the batch dies.
fn detach(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

/// Waits for the run; passes the batch's signals on. A signal the run got
/// itself (Slurm signals every process of a task) shows as its
/// "interrupted" line; one not seen within a second is forwarded, so the run
/// gets each signal once (a second one would make it quit without its result).
fn wait_forwarding_signals(child: &mut Child, saw_interrupt: &AtomicBool) -> anyhow::Result<std::process::ExitStatus> {
    let mut passed = 0;
    let mut pending_since: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let got = SIGNALS.load(Ordering::SeqCst);
        if got > passed {
            let since = *pending_since.get_or_insert_with(Instant::now);
            if passed == 0 && saw_interrupt.load(Ordering::SeqCst) {
                passed = 1;
                pending_since = None;
            } else if passed > 0 || since.elapsed() > Duration::from_secs(1) {
                #[cfg(unix)]
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(child.id() as i32, libc::SIGTERM);
                }
                passed += 1;
                pending_since = None;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the run's stderr to its log and the display; returns the held-out
/// style and content losses after the run and its last error line.
fn read_output(stderr: impl std::io::Read, mut log: std::fs::File, saw_interrupt: &AtomicBool, id: &str, display: &Display) -> (Option<f32>, Option<f32>, Option<String>) {
    let (mut style_after, mut content_after, mut error) = (None, None, None);
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let _ = writeln!(log, "{line}");
        if line.starts_with("texstyle: interrupted") {
            saw_interrupt.store(true, Ordering::SeqCst);
        }
        if let Some(e) = line.strip_prefix("texstyle: error: ") {
            error = Some(e.to_string());
        }
        if let Some(v) = held_out_after(&line) {
            style_after = Some(v);
        }
        if let Some(v) = held_out_content(&line) {
            content_after = Some(v);
        }
        display.job_line(id, &line);
    }
    (style_after, content_after, error)
}

/// `… held-out views: 0.1234 before, 0.0456 after …` → 0.0456 (the summary line of `report::summary`).
fn held_out_after(line: &str) -> Option<f32> {
    let rest = line.split_once("held-out views: ")?.1;
    let after = rest.split_once(" before, ")?.1;
    after.split_once(" after")?.0.parse().ok()
}

/// `texstyle: content loss on the same views: 0.3123 (…` → 0.3123 (`report::summary`).
fn held_out_content(line: &str) -> Option<f32> {
    let rest = line.strip_prefix("texstyle: ")?.strip_prefix(crate::cli::report::HELD_OUT_CONTENT)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_line_gives_the_held_out_loss_after() {
        let l = "texstyle: style loss on 4 held-out views: 0.9000 before, 0.4500 after (2.0× lower); 97 % of texels seen";
        assert_eq!(super::held_out_after(l), Some(0.45));
        assert_eq!(super::held_out_after("step 3/3"), None);
    }

    #[test]
    fn the_summary_line_gives_the_held_out_content_loss() {
        let l = format!("texstyle: {} 0.3125 (relative error …)", crate::cli::report::HELD_OUT_CONTENT);
        assert_eq!(super::held_out_content(&l), Some(0.3125));
        assert_eq!(super::held_out_content("texstyle: content loss 0.5"), None);
    }
}
