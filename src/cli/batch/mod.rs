//! `texstyle batch JOBS.toml`: many style transfers from one job file.
//!
//! The file is read and checked whole first (`jobfile`); then, by mode:
//! - local: the jobs one after another (`--jobs N` at once), each a child
//!   run (`run`), finished ones skipped, interrupted ones resumed, a failed
//!   one not stopping the rest; then `batch.csv` and `contact_sheet.png`;
//! - `--task N`: one job (a Slurm array task or a Kubernetes Indexed Job's pod),
//!   then the table gathered from every job's saved row (`row`);
//! - `--slurm`: `submit.sbatch` written and submitted (`slurm`);
//! - `--status`: what the folders say, run nothing.

mod jobfile;
mod progress;
pub mod row;
mod run;
mod slurm;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use anyhow::Context;

use super::args::BatchArgs;
use super::config::bad;
use super::error::{CliError, Exit};
use jobfile::Job;
use row::Row;
use run::{Paths, SIGNALS};

pub fn run(a: BatchArgs) -> Result<(), CliError> {
    let jobs = jobfile::read(&a.jobs_file, a.weights.as_deref()).map_err(|errors| bad(errors.join("\ntexstyle: error: ")))?;
    let out = absolute(&a.out.clone().unwrap_or_else(|| default_out(&a.jobs_file)))?;
    if a.status {
        let rows = status_rows(&jobs, &out);
        for (i, r) in rows.iter().enumerate() {
            println!("{i:>4}  {:<12} {}", r.status, r.id);
        }
        return gather(&jobs, &out);
    }
    if a.slurm.enabled {
        return submit(&a, &jobs, &out);
    }
    stop_on_signals();
    if let Some(task) = a.task {
        let job = &jobs[slurm::task_index(task, jobs.len())?];
        let row = run_or_skip(job, &out, &progress::Display::new(1, 1));
        gather(&jobs, &out)?;
        return exit_of(&[row]);
    }
    let rows = run_local(&jobs, &out, a.jobs as usize);
    gather(&jobs, &out)?;
    eprintln!("texstyle batch: {} in {}", out.join(CSV).display(), out.display());
    exit_of(&rows)
}

const CSV: &str = "batch.csv";
const SHEET: &str = "contact_sheet.png";

fn default_out(jobs_file: &Path) -> PathBuf {
    let name = jobs_file.file_stem().map_or("batch".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from("texstyle-out").join(name)
}

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(|e| bad(format!("--out {}: cannot resolve the path ({e})", p.display())))
}

/// The batch's exit code: interrupted (130) first, then any failure (1), else 0.
fn exit_of(rows: &[Row]) -> Result<(), CliError> {
    if SIGNALS.load(Ordering::SeqCst) > 0 || rows.iter().any(|r| r.status == "interrupted") {
        let left = rows.iter().filter(|r| r.status != "done").count();
        return Err(CliError { exit: Exit::Interrupted, error: anyhow::anyhow!("interrupted; {left} job(s) not done: run the same command again to resume them") });
    }
    let failed: Vec<&str> = rows.iter().filter(|r| r.status != "done").map(|r| r.id.as_str()).collect();
    if !failed.is_empty() {
        return Err(CliError { exit: Exit::Failure, error: anyhow::anyhow!("{} job(s) failed: {} (see batch.csv)", failed.len(), failed.join(", ")) });
    }
    Ok(())
}

/// Like a single run: the first Ctrl-C, SIGTERM or SIGHUP lets the running
/// jobs finish their step and checkpoint and starts no more; the second is
/// passed on too (the runs quit at once, keeping their last checkpoint).
fn stop_on_signals() {
    let _ = ctrlc::set_handler(|| {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!("\ntexstyle batch: interrupted: the running jobs finish their step and save a checkpoint; no more start (rerun to resume)");
        }
    });
}

/// Every job, `parallel` at a time, in file order.
fn run_local(jobs: &[Job], out: &Path, parallel: usize) -> Vec<Row> {
    let display = progress::Display::new(jobs.len(), parallel);
    let next = Mutex::new(0usize);
    let rows: Mutex<Vec<Option<Row>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..parallel.min(jobs.len()) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    if *n >= jobs.len() || SIGNALS.load(Ordering::SeqCst) > 0 {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                let row = run_or_skip(&jobs[i], out, &display);
                rows.lock().unwrap()[i] = Some(row);
            });
        }
    });
    display.finish();
    let rows = rows.into_inner().unwrap();
    jobs.iter().zip(rows).map(|(j, r)| r.unwrap_or_else(|| status_row(j, out))).collect()
}

/// A job's row: from its earlier run when finished with the same inputs, else from running it.
fn run_or_skip(job: &Job, out: &Path, display: &progress::Display) -> Row {
    let paths = Paths::new(out, job);
    display.start(&job.id);
    if let Some(row) = run::finished(job, &paths) {
        display.job_line(&job.id, &format!("texstyle batch: {} is done already (same inputs and options): skipped", job.id));
        display.end(&job.id, true, None);
        return row;
    }
    let row = run::run(job, &paths, display);
    if row.status != "done" {
        display.job_line(&job.id, &format!("texstyle batch: job {} {}: {}", job.id, row.status, row.message));
    }
    display.end(&job.id, row.status == "done", row.wall_s);
    row
}

/// What the folders say of a job that is not running here.
fn status_row(job: &Job, out: &Path) -> Row {
    let paths = Paths::new(out, job);
    if let Some(row) = run::recorded_done(&paths) {
        return row;
    }
    let mut row = Row::load(&paths.file("row")).unwrap_or_default();
    row.status = if running(&paths.file("running")) {
        "running".into()
    } else if paths.checkpoint().is_some() {
        "interrupted".into()
    } else if row.status == "failed" {
        "failed".into()
    } else {
        row = Row::default();
        "not started".into()
    };
    Row { id: job.id.clone(), mesh: job.mesh.clone(), style: job.style.clone(), folder: paths.folder, ..row }
}

fn status_rows(jobs: &[Job], out: &Path) -> Vec<Row> {
    jobs.iter().map(|j| status_row(j, out)).collect()
}

/// `ID.running` ("host pid"): alive when on another host (cannot tell, trust it) or its process lives here.
fn running(marker: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(marker) else { return false };
    let mut it = text.split_whitespace();
    let (host, pid) = (it.next().unwrap_or(""), it.next().and_then(|p| p.parse::<i32>().ok()));
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if host != here.trim() {
        return true;
    }
    // SAFETY: kill(pid, 0) only asks whether the process exists.
    pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0)
}

/// `batch.csv` and the contact sheet from every job's state, under a lock
/// (array tasks finishing together each rewrite them).
fn gather(jobs: &[Job], out: &Path) -> Result<(), CliError> {
    let state = out.join(run::STATE);
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let lock = std::fs::File::create(state.join("lock")).with_context(|| format!("creating {}", state.join("lock").display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file we hold open; released when it closes.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    }
    let rows = status_rows(jobs, out);
    row::write_csv(&out.join(CSV), &rows)?;
    if let Some(sheet) = row::contact_sheet_of(&rows)? {
        sheet.save_png(&out.join(SHEET))?;
    }
    let page = crate::page::batch_index(&rows.iter().map(|r| gallery_job(r, out)).collect::<Vec<_>>());
    crate::image_io::write_atomic(&out.join(crate::cli::defaults::REPORT_PAGE), page.as_bytes())?;
    drop(lock);
    Ok(())
}

/// A `batch.csv` row as a card of the batch's `index.html`: links and the
/// thumbnail (the job's before/after preview) relative to `out`.
fn gallery_job(r: &Row, out: &Path) -> crate::page::GalleryJob {
    let folder = r.folder.strip_prefix(out).unwrap_or(&r.folder).to_path_buf();
    let preview = folder.join(super::style::PREVIEW);
    crate::page::GalleryJob {
        id: r.id.clone(),
        mesh: r.mesh.display().to_string(),
        style: r.style.display().to_string(),
        status: r.status.clone(),
        exit_code: r.exit_code,
        wall_s: r.wall_s.unwrap_or(0.0),
        style_loss: r.style_loss,
        content_loss: r.content_loss,
        thumbnail: out.join(&preview).is_file().then(|| preview.display().to_string()),
        folder,
    }
}

/// `--slurm`: writes `OUT/submit.sbatch` and submits it (not with `--dry-run`).
fn submit(a: &BatchArgs, jobs: &[Job], out: &Path) -> Result<(), CliError> {
    let exe = std::env::current_exe().context("finding the texstyle executable")?;
    let jobs_file = absolute(&a.jobs_file)?;
    let weights = a.weights.as_deref().map(absolute).transpose()?;
    let text = slurm::script(&exe, &jobs_file, out, jobs.len(), &a.slurm, weights.as_deref());
    std::fs::create_dir_all(out.join(run::STATE)).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("submit.sbatch");
    crate::image_io::write_atomic(&path, text.as_bytes())?;
    if a.slurm.dry_run {
        eprintln!("texstyle batch: wrote {} ({} tasks); submit it with: sbatch {}", path.display(), jobs.len(), path.display());
        return Ok(());
    }
    let id = slurm::submit(&path)?;
    println!("{id}");
    eprintln!(
        "texstyle batch: submitted job array {id} ({} tasks) from {}; follow it with: texstyle batch {} --out {} --status",
        jobs.len(),
        path.display(),
        jobs_file.display(),
        out.display()
    );
    Ok(())
}
