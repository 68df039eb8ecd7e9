//! What the style transfer tells the user: the opening line, progress (a bar
//! on a terminal, plain lines otherwise), the closing summary, the list of
//! written files, and the per-step CSV log.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::config::StyleConfig;
use crate::image_io::Image;
use crate::mesh::Mesh;
use crate::optim::{Outcome, StepLog};

/// The opening line: inputs, sizes and which rasterizer and network device run.
pub fn banner(cfg: &StyleConfig, mesh: &Mesh, painting: &Image, raster: &str, network: &str) {
    let c = &cfg.optim;
    eprintln!(
        "texstyle: {} ({} triangles, {} material{}) in the style of {} ({}×{}): {} steps, texture {}², views {}²{}, about {:.1} GB of memory, raster: {}, network: {}",
        cfg.mesh.display(),
        mesh.triangles.len(),
        mesh.materials.len(),
        if mesh.materials.len() == 1 { "" } else { "s" },
        cfg.style.display(),
        painting.width,
        painting.height,
        c.steps,
        c.texture_size,
        c.render_size,
        if c.samples > 1 { format!(" ×{} samples", c.samples * c.samples) } else { String::new() },
        crate::optim::estimated_peak_bytes(c, mesh.materials.len()) as f64 / 1e9,
        raster,
        network,
    );
    if !mesh.materials.iter().any(|m| m.texture.is_some()) {
        eprintln!("texstyle: the mesh has no texture or vertex colours: style only, no content loss");
    } else if c.content_weight == 0.0 {
        eprintln!("texstyle: --content-weight 0: style only");
    }
}

/// The closing lines: time per step and where it went, peak memory, held-out loss, coverage.
pub fn summary(outcome: &Outcome, eval_views: usize, total_s: f64) {
    let n = outcome.log.len().max(1) as f64;
    let split: Vec<String> = time_split(&outcome.log).iter().map(|(name, ms)| format!("{name} {ms:.0}")).collect();
    eprintln!(
        "texstyle: done in {total_s:.0} s ({:.0} ms/step: {}); peak memory {:.0} MB",
        1e3 * outcome.log.last().map_or(0.0, |l| l.seconds) / n,
        split.join(", "),
        peak_rss_mb(),
    );
    eprintln!(
        "texstyle: style loss on {eval_views} held-out views: {:.4} before, {:.4} after ({}); {:.0} % of texels seen by some view, the rest filled from their neighbours",
        outcome.eval_before,
        outcome.eval_after,
        change(outcome.eval_before, outcome.eval_after),
        100.0 * outcome.seen_fraction
    );
    if let Some(c) = outcome.eval_content_after {
        eprintln!(
            "texstyle: {HELD_OUT_CONTENT} {c:.4} (relative error to the mesh's own texture at {}: 0 = unchanged, 1 = nothing kept)",
            crate::optim::HELD_OUT_CONTENT_LAYERS.join(" and ")
        );
    }
}

/// How the closing line of the held-out content score starts (`batch` reads it).
pub const HELD_OUT_CONTENT: &str = "content loss on the same views:";

/// Mean milliseconds per step of each part of a step, in the order a step runs them.
pub fn time_split(log: &[StepLog]) -> Vec<(&'static str, f64)> {
    let n = log.len().max(1) as f64;
    let mean = |f: fn(&StepLog) -> f64| log.iter().map(f).sum::<f64>() / n;
    vec![
        ("texture", mean(|l| l.texture_ms)),
        ("raster", mean(|l| l.raster_ms)),
        ("lookup", mean(|l| l.lookup_ms)),
        ("network", mean(|l| l.network_ms)),
        ("optimizer", mean(|l| l.optimizer_ms)),
    ]
}

/// "2.0× lower", "1.3× higher" or "unchanged": a rise is never called lower.
pub fn change(before: f32, after: f32) -> String {
    let (b, a) = (before.max(1e-12), after.max(1e-12));
    if (b / a - 1.0).abs() < 0.005 {
        "unchanged".into()
    } else if a < b {
        format!("{:.1}× lower", b / a)
    } else {
        format!("{:.1}× higher", a / b)
    }
}

/// Where checkpoints go, and the step a resumed run starts from.
pub fn checkpoints(outputs: &crate::publish::OutputSet, every: usize, resumed_at: Option<u64>) {
    if let Some(step) = resumed_at {
        eprintln!("texstyle: resuming from the checkpoint of step {step} in {}", outputs.partial().display());
    }
    let when = if every > 0 { format!("every {every} steps and at Ctrl-C") } else { "at Ctrl-C".to_string() };
    eprintln!("texstyle: checkpoints {when} in {} (after a crash: the same command plus --resume {})", outputs.partial().display(), outputs.partial().display());
}

/// The written files on stdout, one per line (for scripts): each export and
/// its files, listed where they were published (`staging`
/// replaced by `out`).
pub fn exports(made: &[crate::export::Made], other: &[PathBuf], staging: &std::path::Path, out: &std::path::Path) {
    let shown = |p: &PathBuf| p.strip_prefix(staging).map(|r| out.join(r)).unwrap_or_else(|_| p.clone());
    for m in made {
        let notes: String = m.notes.iter().map(|n| format!("; {n}")).collect();
        eprintln!("texstyle: export {}: {:.1} MB in {:.1} s{notes}", m.format, m.bytes as f64 / 1e6, m.seconds);
        let mut files: Vec<&PathBuf> = m.files.iter().collect();
        if m.format == crate::export::Format::Obj {
            // The OBJ first, then its textures (the MTL goes without saying).
            files = m.files.iter().rev().take(1).chain(&m.files[..m.files.len() - 2]).collect();
        }
        for f in files.into_iter().chain(&m.preview) {
            println!("{}", shown(f).display());
        }
    }
    for p in other {
        println!("{}", shown(p).display());
    }
}

/// `step,style,content,nnfm,total,seconds,…` ([`StepLog::COLUMNS`]) one line per step.
pub fn loss_csv(log: &[StepLog]) -> String {
    let mut s = StepLog::csv_header();
    for l in log {
        l.write_csv_row(&mut s);
    }
    s
}

/// Peak resident set size of this process (VmHWM), in MiB; 0 where /proc is unavailable.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A progress bar on a terminal, plain lines (every 5 %) otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    steps: usize,
}

impl Progress {
    pub fn new(steps: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(steps as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} step {pos}/{len}  {msg}  {elapsed} elapsed, ETA {eta}")
                    .expect("valid template"),
            );
            b
        });
        Progress { bar, steps }
    }

    pub fn step(&mut self, s: &StepLog) {
        let msg = format!("loss {:.4} (style {:.4}, content {:.4})", s.total, s.style, s.content);
        match &self.bar {
            Some(b) => {
                b.set_message(msg);
                b.set_position(s.step as u64);
            }
            None => {
                let every = (self.steps / 20).max(1);
                if s.step.is_multiple_of(every) || s.step == 1 || s.step == self.steps {
                    let eta = s.seconds / s.step as f64 * (self.steps - s.step) as f64;
                    eprintln!("step {}/{}  {msg}  {:.0} s, ETA {:.0} s", s.step, self.steps, s.seconds, eta);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::change;

    #[test]
    fn a_rise_is_called_higher_never_lower() {
        assert_eq!(change(0.9, 0.45), "2.0× lower");
        assert_eq!(change(0.3, 0.9), "3.0× higher");
        assert_eq!(change(0.5, 0.501), "unchanged");
    }
}
