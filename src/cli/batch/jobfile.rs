//! The job file of `texstyle batch`: read, expanded into jobs, and checked
//! whole before anything runs. Every problem is one line naming the file and
//! line it comes from (toml_edit keeps the byte span of every key and value).
//!
//! ```toml
//! [defaults]                 # options for every job: the style command's long flags
//! steps = 100                # without the dashes; a switch is `cpu = true`
//! weights = "/shared/vgg16.safetensors"
//!
//! [[jobs]]
//! mesh = "meshes/bunny.obj"  # or meshes = [...]; globs allowed
//! styles = ["styles/*.jpg"]  # or style = "..."; the job is their product
//! name = "fine"              # optional: tells apart jobs of the same pair
//! render-size = 128          # overrides [defaults]
//! ```
//!
//! A job's options go through the style command's own parser and checks
//! (`Cli` and [`StyleConfig::from_args`]), so they mean what the flags mean.
//! Relative paths are relative to the job file's folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use toml_edit::{ImDocument, Item, Table, Value};

use crate::cli::args::Cli;
use crate::cli::config::StyleConfig;

/// One run of the style transfer.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Stable: made of the name, the mesh's and the painting's file names, not the job's place.
    pub id: String,
    pub mesh: PathBuf,
    pub style: PathBuf,
    /// The style command's flags for it (defaults, then the job's own), `--out` and `--resume` aside.
    pub options: Vec<String>,
    /// The `[[jobs]]` entry it comes from.
    pub line: usize,
    /// Where each option was set (`--flag`, line), for errors about it.
    pub option_lines: Vec<(String, usize)>,
}

/// Keys of a `[[jobs]]` entry that are not options.
const JOB_KEYS: [&str; 5] = ["mesh", "meshes", "style", "styles", "name"];
/// Flags the batch sets itself for every job.
const OWN_FLAGS: [&str; 6] = ["style", "out", "resume", "help", "version", "mesh"];
/// Options whose value is a file, resolved against the job file's folder.
const PATH_OPTIONS: [&str; 1] = ["weights"];

/// The job file, its jobs in order (entry by entry; within one, meshes then
/// paintings as listed, globs sorted), or every problem found, one per line.
pub fn read(file: &Path, weights: Option<&Path>) -> Result<Vec<Job>, Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| vec![format!("{}: cannot read the job file: {e}", file.display())])?;
    let doc = ImDocument::parse(text.as_str()).map_err(|e| {
        let line = e.span().map_or(1, |s| line_at(&text, s.start));
        vec![format!("{}:{line}: not a valid TOML file: {}", file.display(), e.message().trim())]
    })?;
    let mut ctx = Ctx { file, text: &text, base: std::path::absolute(file).ok().and_then(|f| f.parent().map(Path::to_path_buf)).unwrap_or_default(), errors: Vec::new() };
    let root = doc.as_table();
    for (key, _) in root.iter() {
        if key != "defaults" && key != "jobs" {
            let l = ctx.key_line(root, key);
            ctx.error(l, format!("unknown key '{key}' (the file has [defaults] and [[jobs]])"));
        }
    }
    let defaults = match root.get("defaults") {
        None => BTreeMap::new(),
        Some(Item::Table(t)) => ctx.options(t),
        Some(other) => {
            let l = ctx.line(other.span());
            ctx.error(l, "'defaults' must be a table: [defaults]".into());
            BTreeMap::new()
        }
    };
    let mut jobs = Vec::new();
    match root.get("jobs") {
        Some(Item::ArrayOfTables(entries)) => {
            for entry in entries.iter() {
                jobs.extend(ctx.entry(entry, &defaults));
            }
        }
        Some(other) => {
            let l = ctx.line(other.span());
            ctx.error(l, "'jobs' must be [[jobs]] tables, one per entry".into());
        }
        None => ctx.error(1, "no jobs: add a [[jobs]] entry with a mesh and a style (README, Batch)".into()),
    }
    if let Some(w) = weights {
        if !w.is_file() {
            ctx.errors.push(format!("--weights {}: no such file", w.display()));
        }
    }
    if let Some(w) = weights {
        // The command line's --weights wins over the file's.
        let abs = std::path::absolute(w).unwrap_or_else(|_| w.to_path_buf());
        for job in &mut jobs {
            if let Some(i) = job.options.iter().position(|o| o == "--weights") {
                job.options.drain(i..i + 2);
            }
            job.options.extend(["--weights".to_string(), abs.display().to_string()]);
        }
    }
    ctx.check_jobs(&jobs);
    if ctx.errors.is_empty() {
        Ok(jobs)
    } else {
        Err(ctx.errors)
    }
}

/// 1-based line of byte `offset`.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    base: PathBuf,
    errors: Vec<String>,
}

impl Ctx<'_> {
    fn line(&self, span: Option<std::ops::Range<usize>>) -> usize {
        span.map_or(1, |s| line_at(self.text, s.start))
    }

    fn key_line(&self, t: &Table, key: &str) -> usize {
        self.line(t.get_key_value(key).and_then(|(k, v)| k.span().or_else(|| v.span())))
    }

    /// A table's line: its header's, else its first key's.
    fn table_line(&self, t: &Table) -> usize {
        t.span().map(|s| line_at(self.text, s.start)).or_else(|| t.iter().next().map(|(k, _)| self.key_line(t, k))).unwrap_or(1)
    }

    fn error(&mut self, line: usize, msg: String) {
        self.errors.push(format!("{}:{line}: {msg}", self.file.display()));
    }

    /// The options of a table (keys not in `JOB_KEYS`), each checked alone,
    /// as flags: `name → (line, arguments)`.
    fn options(&mut self, t: &Table) -> BTreeMap<String, (usize, Vec<String>)> {
        let mut out = BTreeMap::new();
        let flags = option_flags();
        for (key, item) in t.iter() {
            if JOB_KEYS.contains(&key) {
                continue;
            }
            let line = self.key_line(t, key);
            let Some(&takes_value) = flags.get(key) else {
                let hint = if OWN_FLAGS.contains(&key) { " (the batch sets it for every job)" } else { " (use the style command's long flags without the dashes, e.g. steps = 100)" };
                self.error(line, format!("unknown option '{key}'{hint}"));
                continue;
            };
            match self.flag_args(key, item, takes_value) {
                Ok(args) => match check_alone(&args) {
                    Ok(()) => {
                        out.insert(key.to_string(), (line, args));
                    }
                    Err(msg) => self.error(line, format!("{key}: {msg}")),
                },
                Err(msg) => self.error(line, format!("{key}: {msg}")),
            }
        }
        out
    }

    /// `key = value` as the style command's arguments.
    fn flag_args(&self, key: &str, item: &Item, takes_value: bool) -> Result<Vec<String>, String> {
        let flag = format!("--{key}");
        let value = item.as_value().ok_or("must be a value, not a table")?;
        if !takes_value {
            return match value.as_bool() {
                Some(true) => Ok(vec![flag]),
                Some(false) => Ok(vec![]),
                None => Err(format!("is a switch: write {key} = true or false")),
            };
        }
        let scalar = |v: &Value| -> Result<String, String> {
            match v {
                Value::String(s) => Ok(s.value().clone()),
                Value::Integer(i) => Ok(i.value().to_string()),
                Value::Float(f) => Ok(f.value().to_string()),
                Value::Boolean(_) => Err(format!("needs a value, as --{key} does (not true or false)")),
                _ => Err("must be a string, a number or a list of them".into()),
            }
        };
        let mut text = match value {
            Value::Array(a) => a.iter().map(scalar).collect::<Result<Vec<_>, _>>()?.join(","),
            v => scalar(v)?,
        };
        if PATH_OPTIONS.contains(&key) {
            let p = self.base.join(&text);
            if !p.is_file() {
                return Err(format!("{}: no such file", p.display()));
            }
            text = p.display().to_string();
        }
        Ok(vec![flag, text])
    }

    /// A `[[jobs]]` entry's jobs: its meshes × its paintings, with options.
    fn entry(&mut self, t: &Table, defaults: &BTreeMap<String, (usize, Vec<String>)>) -> Vec<Job> {
        let line = self.table_line(t);
        let mut options = defaults.clone();
        options.extend(self.options(t));
        let option_lines: Vec<(String, usize)> = options.iter().map(|(k, (l, _))| (format!("--{k}"), *l)).collect();
        let options: Vec<String> = options.into_values().flat_map(|(_, a)| a).collect();
        let meshes = self.files(t, "mesh", "meshes", line);
        let styles = self.files(t, "style", "styles", line);
        let name = match t.get("name").map(|n| n.as_str()) {
            None => None,
            Some(Some(n)) if !sanitize(n).is_empty() => Some(sanitize(n)),
            Some(_) => {
                let l = self.key_line(t, "name");
                self.error(l, "name must be a non-empty string of letters, digits, '-', '_' or '.'".into());
                None
            }
        };
        let mut jobs = Vec::new();
        for mesh in &meshes {
            for style in &styles {
                let pair = format!("{}_{}", stem(mesh), stem(style));
                let id = name.as_ref().map_or(pair.clone(), |n| format!("{n}-{pair}"));
                jobs.push(Job { id, mesh: mesh.clone(), style: style.clone(), options: options.clone(), line, option_lines: option_lines.clone() });
            }
        }
        jobs
    }

    /// The files of `one = "…"` or `many = ["…", …]`; each a path or a glob
    /// that must match at least one file.
    fn files(&mut self, t: &Table, one: &str, many: &str, line: usize) -> Vec<PathBuf> {
        let (key, patterns) = match (t.get(one), t.get(many)) {
            (Some(_), Some(_)) => {
                let l = self.key_line(t, many);
                self.error(l, format!("give either {one} or {many}, not both"));
                return vec![];
            }
            (Some(v), None) => (one, v.as_str().map(|s| vec![s.to_string()])),
            (None, Some(v)) => (many, v.as_array().and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())),
            (None, None) => {
                self.error(line, format!("the job has no {one}: add {one} = \"…\" or {many} = [\"…\"]"));
                return vec![];
            }
        };
        let l = self.key_line(t, key);
        let Some(patterns) = patterns.filter(|p| !p.is_empty()) else {
            let what = if key == one { "a string" } else { "a non-empty list of strings" };
            self.error(l, format!("{key} must be {what}"));
            return vec![];
        };
        let mut found = Vec::new();
        for p in patterns {
            match expand(&self.base, &p) {
                Ok(files) => found.extend(files),
                Err(msg) => self.error(l, format!("{key}: {msg}")),
            }
        }
        found
    }

    /// Whole-job checks: the options together (as the style command checks
    /// them) and one output folder per job.
    fn check_jobs(&mut self, jobs: &[Job]) {
        let mut folders: HashMap<&str, usize> = HashMap::new();
        for job in jobs {
            if let Err(msg) = check_together(job) {
                // At the line of the option the message names (once, however many jobs it is set for), else the job's.
                let f = self.file.display();
                let e = match job.option_lines.iter().find(|(flag, _)| msg.contains(&format!("{flag} "))) {
                    Some((_, line)) => format!("{f}:{line}: {msg}"),
                    None => format!("{f}:{}: job {}: {msg}", job.line, job.id),
                };
                if !self.errors.contains(&e) {
                    self.errors.push(e);
                }
            }
            if let Some(first) = folders.insert(&job.id, job.line) {
                self.error(
                    job.line,
                    format!("job {} writes to the same output folder as the job of line {first}: give one of the entries a name = \"…\"", job.id),
                );
            }
        }
    }
}

/// A path, or a glob's sorted matches; none is an error.
fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    if !pattern.contains(['*', '?', '[']) {
        return if full.is_file() { Ok(vec![full]) } else { Err(format!("{}: no such file", full.display())) };
    }
    let matches = glob::glob(&full.to_string_lossy()).map_err(|e| format!("'{pattern}' is not a valid pattern: {e}"))?;
    let mut files: Vec<PathBuf> = matches.flatten().filter(|p| p.is_file()).collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: the pattern matches no file", full.display()));
    }
    Ok(files)
}

/// Every long flag of the style command a job file may set, and whether it takes a value.
fn option_flags() -> HashMap<String, bool> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| Some((a.get_long()?.to_string(), a.get_action().takes_values())))
        .filter(|(name, _)| !OWN_FLAGS.contains(&name.as_str()))
        .collect()
}

/// The style command's parser on one option alone (its range, its format).
fn check_alone(args: &[String]) -> Result<(), String> {
    let argv = ["texstyle", "mesh.obj", "--style", "style.png"].into_iter().map(String::from).chain(args.iter().cloned());
    Cli::try_parse_from(argv).map(|_| ()).map_err(|e| usage_error(&e))
}

/// The parser and [`StyleConfig::from_args`] on a job's whole command line.
fn check_together(job: &Job) -> Result<(), String> {
    let cli = Cli::try_parse_from(job.argv(Path::new("out"))).map_err(|e| usage_error(&e))?;
    StyleConfig::from_args(cli.style).map(|_| ()).map_err(|e| format!("{:#}", e.error))
}

fn usage_error(e: &clap::Error) -> String {
    let line = crate::cli::one_line_usage_error(&e.render().to_string());
    line.trim_end_matches(" (see texstyle --help)").to_string()
}

impl Job {
    /// The style command's arguments for this job, program name first.
    pub fn argv(&self, out: &Path) -> Vec<String> {
        let mut v = vec!["texstyle".to_string(), self.mesh.display().to_string(), "--style".into(), self.style.display().to_string()];
        v.extend(["--out".to_string(), out.display().to_string()]);
        v.extend(self.options.iter().cloned());
        v
    }
}

fn stem(p: &Path) -> String {
    sanitize(&p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
}

/// Letters, digits, `-`, `_` and `.`; anything else becomes `-`.
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).collect::<String>().trim_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        for f in ["a.obj", "b.obj", "x.png", "y.png"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let p = dir.join("jobs.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_matrix_expands_to_the_product_with_ids_from_the_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "[defaults]\nsteps = 3\ncpu = true\n[[jobs]]\nmeshes = [\"*.obj\"]\nstyles = [\"y.png\", \"x.png\"]\nsamples = 1\n");
        let jobs = read(&p, None).unwrap();
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["a_y", "a_x", "b_y", "b_x"]);
        assert_eq!(jobs[0].options, ["--cpu", "--samples", "1", "--steps", "3"]);
        assert_eq!((jobs[0].line, jobs[0].mesh.clone()), (4, dir.path().join("a.obj")));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[defaults]\nstepz = 3\nsteps = 0\n\n[[jobs]]\nmesh = \"missing.obj\"\nstyle = \"x.png\"\n\n[[jobs]]\nmesh = \"a.obj\"\nstyle = \"x.png\"\n[[jobs]]\nmesh = \"a.obj\"\nstyle = \"x.png\"\nclose-holes = true\n";
        let errors = read(&write(dir.path(), text), None).unwrap_err();
        let f = dir.path().join("jobs.toml").display().to_string();
        let want = [
            format!("{f}:2: unknown option 'stepz'"),
            format!("{f}:3: steps: "),
            format!("{f}:6: mesh: "),
            format!("{f}:15: --close-holes"),
            format!("{f}:12: job a_x writes to the same output folder as the job of line 9"),
        ];
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
        for (e, w) in errors.iter().zip(&want) {
            assert!(e.starts_with(w.as_str()), "{e} does not start with {w}");
        }
    }
}
