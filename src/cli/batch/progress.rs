//! What a local batch shows: one line for the batch (done / failed / left,
//! ETA) above the running job's bar on a terminal; plain lines otherwise
//! (logs, CI, several jobs at once), each run's own lines passed through.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Display {
    bars: Option<(MultiProgress, ProgressBar, ProgressBar)>,
    /// Several jobs at once: each passed-through line says whose it is.
    prefix: bool,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    done: usize,
    failed: usize,
    /// Wall seconds of the jobs run (not skipped) so far, for the ETA.
    ran_s: f64,
    ran: usize,
    running: Vec<String>,
    start: Option<Instant>,
}

impl Display {
    pub fn new(total: usize, parallel: usize) -> Display {
        let bars = (parallel == 1 && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::new();
            let batch = multi.add(ProgressBar::new_spinner());
            batch.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
            let job = multi.add(ProgressBar::new(1));
            job.set_style(ProgressStyle::with_template("{bar:30} step {pos}/{len}  {elapsed} elapsed, ETA {eta}").expect("valid template"));
            (multi, batch, job)
        });
        let counts = Counts { total, start: Some(Instant::now()), ..Default::default() };
        Display { bars, prefix: parallel > 1, counts: Mutex::new(counts) }
    }

    /// A job starts (or is skipped: `skipped`).
    pub fn start(&self, id: &str) {
        let mut c = self.counts.lock().unwrap();
        c.running.push(id.to_string());
        let msg = c.line();
        drop(c);
        self.batch_line(msg);
        if let Some((_, _, job)) = &self.bars {
            job.reset();
            job.set_position(0);
        }
    }

    /// A job ended: `ok`, and its wall time when it ran (not skipped).
    pub fn end(&self, id: &str, ok: bool, ran_s: Option<f64>) {
        let mut c = self.counts.lock().unwrap();
        c.running.retain(|r| r != id);
        if ok {
            c.done += 1;
        } else {
            c.failed += 1;
        }
        if let Some(s) = ran_s {
            c.ran_s += s;
            c.ran += 1;
        }
        let msg = c.line();
        drop(c);
        self.batch_line(msg);
    }

    /// A line of a running job's output (its `step i/N` lines drive the bar on a terminal).
    pub fn job_line(&self, id: &str, line: &str) {
        match &self.bars {
            Some((multi, _, job)) => {
                if let Some((i, n)) = parse_step(line) {
                    job.set_length(n);
                    job.set_position(i);
                } else {
                    let _ = multi.println(line);
                }
            }
            None if self.prefix => eprintln!("[{id}] {line}"),
            None => eprintln!("{line}"),
        }
    }

    fn batch_line(&self, msg: String) {
        match &self.bars {
            Some((_, batch, _)) => batch.set_message(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some((_, batch, job)) = &self.bars {
            job.finish_and_clear();
            batch.finish();
        }
    }
}

impl Counts {
    fn line(&self) -> String {
        let left = self.total - self.done - self.failed;
        let eta = match self.ran {
            0 => String::new(),
            n => {
                let s = self.ran_s / n as f64 * left as f64;
                format!(", ETA {}", if s < 120.0 { format!("{s:.0} s") } else { format!("{:.0} min", s / 60.0) })
            }
        };
        let elapsed = self.start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let now = if self.running.is_empty() { String::new() } else { format!("; running {}", self.running.join(", ")) };
        format!("texstyle batch: {} done, {} failed, {left} left of {} ({elapsed:.0} s{eta}){now}", self.done, self.failed, self.total)
    }
}

/// `step 12/200  …` (the style command's plain progress lines).
fn parse_step(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("step ")?;
    let (frac, _) = rest.split_once(' ')?;
    let (i, n) = frac.split_once('/')?;
    Some((i.parse().ok()?, n.parse().ok()?))
}
