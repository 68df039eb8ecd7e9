//! A batch as a Slurm job array: `submit.sbatch` (one array task per job,
//! each `texstyle batch JOBS --task $SLURM_ARRAY_TASK_ID`), submitted with
//! `sbatch`; and which job a task is (`--task`, or the index Slurm or a
//! Kubernetes Indexed Job puts in the environment).
//!
//! Preemption and time limits: `--signal=B:TERM@LEAD` has Slurm send SIGTERM
//! to the script's process LEAD seconds before the kill; the script `exec`s
//! texstyle, so that process is texstyle, which passes it to the run (finish
//! the step, checkpoint, publish the result so far). `--requeue` lets Slurm
//! put a preempted task back in the queue; the rerun resumes the checkpoint.

use std::path::Path;

use crate::cli::args::SlurmArgs;
use crate::cli::defaults as d;
use crate::cli::error::CliError;

/// The job script for `n` jobs of `jobs_file`, outputs in `out` (all absolute).
pub fn script(exe: &Path, jobs_file: &Path, out: &Path, n: usize, a: &SlurmArgs, weights: Option<&Path>) -> String {
    let q = |p: &Path| quote(&p.display().to_string());
    let name: String = jobs_file.file_stem().map_or("batch".into(), |s| s.to_string_lossy().into_owned());
    let limit = a.max_running.map_or(String::new(), |k| format!("%{k}"));
    let mut s = format!("#!/bin/bash\n# Written by `texstyle batch --slurm`: one array task per job of {}.\n", jobs_file.display());
    s += &format!("#SBATCH --job-name={}\n", quote(&format!("texstyle-{name}")));
    s += &format!("#SBATCH --array=0-{}{limit}\n", n - 1);
    s += "#SBATCH --requeue\n";
    s += &format!("#SBATCH --signal=B:TERM@{}\n", d::SLURM_SIGNAL_LEAD_S);
    s += "#SBATCH --open-mode=append\n";
    s += &format!("#SBATCH --output={}\n", quote(&out.join(super::run::STATE).join("slurm-%A_%a.out").display().to_string()));
    for (flag, v) in [("partition", &a.partition), ("time", &a.time), ("mem", &a.mem)] {
        if let Some(v) = v {
            s += &format!("#SBATCH --{flag}={}\n", quote(v));
        }
    }
    if let Some(c) = a.cpus_per_task {
        s += &format!("#SBATCH --cpus-per-task={c}\n");
    }
    s += "\n# The run's thread pools as wide as the task's CPUs (else: every core of the node).\n";
    s += "if [ -n \"${SLURM_CPUS_PER_TASK:-}\" ]; then export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n";
    s += "# exec: texstyle is the process Slurm signals (B:TERM), and passes it to the run.\n";
    let weights = weights.map_or(String::new(), |w| format!(" --weights {}", q(w)));
    s += &format!("exec {} batch {} --out {}{weights} --task \"$SLURM_ARRAY_TASK_ID\"\n", q(exe), q(jobs_file), q(out));
    s
}

/// A shell word: as is when plain, else single-quoted.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:%@+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Submits `script` with `sbatch --parsable`; the array's job id.
pub fn submit(script: &Path) -> Result<String, CliError> {
    let out = std::process::Command::new("sbatch").arg("--parsable").arg(script).output().map_err(|e| {
        crate::cli::config::bad(format!(
            "cannot run sbatch ({e}): --slurm submits from a Slurm login node; add --dry-run to only write {}",
            script.display()
        ))
    })?;
    if !out.status.success() {
        return Err(anyhow::anyhow!("sbatch refused {}: {}", script.display(), String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().split(';').next().unwrap_or("").to_string();
    Ok(id)
}

/// The job index of this task: `--task N`, else `SLURM_ARRAY_TASK_ID`, else
/// `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs).
pub fn task_index(given: Option<u32>, n: usize) -> Result<usize, CliError> {
    let (i, from) = match given {
        Some(i) => (i.to_string(), "--task".to_string()),
        None => ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"]
            .iter()
            .find_map(|v| std::env::var(v).ok().map(|x| (x, v.to_string())))
            .ok_or_else(|| crate::cli::config::bad("--task without N: give the job's index, or run it as a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)".into()))?,
    };
    match i.trim().parse::<usize>() {
        Ok(i) if i < n => Ok(i),
        _ => Err(crate::cli::config::bad(format!("{from} {i}: the job file has {n} jobs, numbered 0 to {} (see --status)", n - 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_an_array_of_tasks_that_exec_texstyle() {
        let a = SlurmArgs { enabled: true, partition: Some("cpu".into()), time: Some("1:00:00".into()), cpus_per_task: Some(8), mem: None, max_running: Some(3), dry_run: true };
        let s = script(Path::new("/opt/texstyle"), Path::new("/fs/my jobs.toml"), Path::new("/fs/out"), 5, &a, None);
        for want in ["#SBATCH --array=0-4%3\n", "#SBATCH --requeue\n", "#SBATCH --signal=B:TERM@", "#SBATCH --partition=cpu\n", "#SBATCH --cpus-per-task=8\n"] {
            assert!(s.contains(want), "{want} missing from\n{s}");
        }
        assert!(s.ends_with("exec /opt/texstyle batch '/fs/my jobs.toml' --out /fs/out --task \"$SLURM_ARRAY_TASK_ID\"\n"), "{s}");
    }

    #[test]
    fn the_task_index_is_checked_against_the_jobs() {
        assert_eq!(task_index(Some(3), 4).unwrap(), 3);
        assert!(task_index(Some(4), 4).unwrap_err().error.to_string().contains("numbered 0 to 3"));
    }
}
