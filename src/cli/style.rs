//! `texstyle MESH --style IMAGE`: the style transfer as a sequence of named
//! steps. Options are checked in [`super::config`]; what the user reads is
//! [`super::report`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;

use super::args::StyleArgs;
use super::config::{self, bad_file, StyleConfig};
use super::error::{CliError, Exit};
use super::report::{self, Progress};
use crate::export::{self, Plan};
use crate::image_io::{write_atomic, Image};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::mesh::Mesh;
use crate::optim::{self, Outcome};
use crate::publish::{OutputSet, CHECKPOINT};
use crate::preview;
use crate::raster::{Raster, RasterMesh};
use crate::vgg::Vgg;

/// The before/after preview and the per-step log in every output set.
pub const PREVIEW: &str = "preview_before_after.png";
pub const LOSS_CSV: &str = "loss.csv";

pub fn run(a: StyleArgs) -> Result<(), CliError> {
    let mut cfg = StyleConfig::from_args(a)?;
    let mesh = load_mesh(&cfg)?;
    config::check_controls(&mut cfg, &mesh)?;
    config::check_export(&cfg.export, &mesh)?;
    // A plan error exits 2 by its kind (`error::blame`).
    let plan = Plan::new(&mesh, cfg.export.clone(), (cfg.optim.texture_size, cfg.optim.texture_size))?;
    config::check_memory(&cfg.optim, mesh.materials.len())?;
    let outputs = prepare_outputs(&cfg, &mesh)?;
    let painting = load_painting(&cfg)?;
    let vgg = Vgg::load_with(cfg.weights.as_deref(), &network_device(), cfg.precision).context("loading the VGG weights")?;
    let fingerprint = cfg.fingerprint(&mesh)?;
    let resume = load_checkpoint(&cfg, &outputs, &fingerprint)?;
    let mut raster = super::open_raster(cfg.cpu, &RasterMesh::from_mesh(&mesh))?;
    report::banner(&cfg, &mesh, &painting, &raster.name(), &device_name(&vgg));
    report::checkpoints(&outputs, cfg.checkpoint_every, resume.as_ref().map(|c| c.step));
    for note in plan.notes() {
        eprintln!("texstyle: {note}");
    }
    let interrupted = stop_on_ctrl_c();
    let start = Instant::now();
    let outcome = optimize_with_progress(&cfg, &mesh, &mut raster, &vgg, &painting, &interrupted, &outputs, fingerprint, resume)?;
    let total_s = start.elapsed().as_secs_f64();
    let stopped = outcome.log.len() < cfg.optim.steps;
    let (staging, partial) = (outputs.staging()?, outputs.partial().to_path_buf());
    let (made, mut extra, preview) = write_outputs(&cfg, &plan, &mesh, &mut raster, &outcome, &staging)?;
    if cfg.report {
        let run = RunInfo { outcome: &outcome, painting: &painting, preview: &preview, total_s };
        extra.push(write_page(&cfg, &mesh, &run, &made, &extra, &staging)?);
    }
    let out = outputs.publish(stopped)?;
    report::summary(&outcome, cfg.optim.eval_views, total_s);
    report::exports(&made, &extra, &staging, &out);
    if stopped {
        return Err(CliError {
            exit: Exit::Interrupted,
            error: anyhow::anyhow!(
                "interrupted after step {} of {}; {} holds the result so far (continue with the same command plus --resume {})",
                outcome.log.len(),
                cfg.optim.steps,
                out.display(),
                partial.display()
            ),
        });
    }
    Ok(())
}

/// The output folder, checked before any work: usable, and not holding
/// anything this run reads (see [`crate::publish`]).
fn prepare_outputs(cfg: &StyleConfig, mesh: &Mesh) -> Result<OutputSet, CliError> {
    let weights = match &cfg.weights {
        Some(w) => Some(w.clone()),
        None => crate::vgg::weights::default_weights_path().ok(),
    };
    let mut inputs: Vec<PathBuf> = vec![cfg.mesh.clone(), cfg.style.clone()];
    inputs.extend(mesh.materials.iter().filter_map(|m| m.texture_path.clone()));
    inputs.extend(cfg.protect.as_ref().map(|p| p.mask.clone()));
    inputs.extend(weights);
    let refs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
    OutputSet::prepare(&cfg.out, &refs, cfg.resume).map_err(|e| bad_file(format!("{e:#}")))
}

/// With `--resume`: the saved state, which must come from the same options and inputs.
fn load_checkpoint(cfg: &StyleConfig, outputs: &OutputSet, fingerprint: &str) -> Result<Option<Checkpoint>, CliError> {
    if !cfg.resume {
        return Ok(None);
    }
    let dir = outputs.partial().join(CHECKPOINT);
    // Any failure to read it (not only a malformed one) is the folder the user named.
    let ck = Checkpoint::load(&dir).map_err(|e| bad_file(format!("{e:#}")))?;
    ck.check_fingerprint(fingerprint, &dir)?;
    if ck.step as usize >= cfg.optim.steps {
        return Err(bad_file(format!("--resume {}: the checkpoint is already at step {} of {}", outputs.partial().display(), ck.step, cfg.optim.steps)));
    }
    Ok(Some(ck))
}

/// The mesh, with the UVs `--uv` asks for: its own, or an automatic atlas
/// (made when it has none; the style is painted into a UV texture).
fn load_mesh(cfg: &StyleConfig) -> Result<Mesh, CliError> {
    let mut mesh = Mesh::load(&cfg.mesh)?;
    for w in &mesh.warnings {
        super::warn(w);
    }
    if let Some(atlas) = mesh.prepare_uvs(cfg.uv, cfg.optim.texture_size)? {
        eprintln!("texstyle: automatic UV atlas: {atlas}");
    }
    Ok(mesh)
}

/// The painting, scaled down to `--style-size`.
fn load_painting(cfg: &StyleConfig) -> Result<Image, CliError> {
    // Huge paintings shrink while decoding; common sizes decode whole, as before.
    let max = crate::image_io::MAX_LOADED_SIDE.max(cfg.style_size);
    let painting = Image::load_fit(&cfg.style, max).with_context(|| format!("reading the style image {}", cfg.style.display()))?;
    let short = painting.width.min(painting.height);
    if short < MIN_STYLE_SIDE {
        return Err(bad_file(format!(
            "{}: the painting is {}×{} pixels; texstyle needs at least {MIN_STYLE_SIDE}×{MIN_STYLE_SIDE} to see its brush strokes \
             (the network's deepest style layer pools 16×; use a larger image of the painting)",
            cfg.style.display(),
            painting.width,
            painting.height
        )));
    }
    Ok(optim::prepare_style(&painting, cfg.style_size))
}

/// The smallest painting side accepted: relu5_1 sees it 16× smaller, so
/// below this its Gram is taken over a handful of positions.
const MIN_STYLE_SIDE: u32 = 64;

/// The device the network runs on: the first CUDA or Metal device in builds
/// with that feature (`cargo build --features cuda`), else the CPU fast path.
fn network_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}

fn device_name(vgg: &Vgg) -> String {
    match (vgg.device(), vgg.precision()) {
        (d, _) if !d.is_cpu() => format!("{d:?}"),
        (_, crate::vgg::Precision::Bf16) => "CPU, bf16 conv products".to_string(),
        _ => "CPU".to_string(),
    }
}

/// First Ctrl-C, SIGTERM or SIGHUP (`timeout`, `docker stop`, systemd and
/// batch schedulers send SIGTERM; a closed terminal SIGHUP): set the returned
/// flag (the loop finishes its step, saves a checkpoint and the result so far
/// is published; exit 130). Second: quit at once; nothing is published, the
/// last checkpoint stays for `--resume`.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ntexstyle: interrupted twice: quitting without writing outputs (the last checkpoint stays for --resume)");
            std::process::exit(Exit::Interrupted as i32);
        }
        eprintln!("\ntexstyle: interrupted: finishing this step and writing the result so far (interrupt again to quit)");
    });
    interrupted
}

#[allow(clippy::too_many_arguments)]
fn optimize_with_progress(
    cfg: &StyleConfig,
    mesh: &Mesh,
    raster: &mut Raster,
    vgg: &Vgg,
    painting: &Image,
    interrupted: &AtomicBool,
    outputs: &OutputSet,
    fingerprint: String,
    resume: Option<Checkpoint>,
) -> anyhow::Result<Outcome> {
    let mut progress = Progress::new(cfg.optim.steps);
    let dir = outputs.partial().join(CHECKPOINT);
    let mut save = |ck: &Checkpoint| ck.save(&dir).map(|_| ());
    let checkpoints = optim::Checkpoints { every: cfg.checkpoint_every, fingerprint, resume, save: Some(&mut save) };
    // Restoring can find the checkpoint inconsistent: name its file.
    let file = dir.join(crate::checkpoint::FILE);
    let run = optim::Run::new(mesh, raster, vgg, painting, &cfg.optim, checkpoints).map_err(|e| match e.chain().any(|c| c.is::<CheckpointError>()) {
        true => bad_file(format!("{}: {e:#}", file.display())).error,
        false => e,
    })?;
    let outcome = run.until(|s| {
        progress.step(s);
        interrupted.load(Ordering::SeqCst)
    })?;
    progress.finish();
    Ok(outcome)
}

/// Every export of `plan` (each OBJ after its files), the preview and the
/// log; the exports made, the other files written, and the preview's image.
fn write_outputs(
    cfg: &StyleConfig,
    plan: &Plan,
    mesh: &Mesh,
    raster: &mut Raster,
    outcome: &Outcome,
    dir: &std::path::Path,
) -> anyhow::Result<(Vec<export::Made>, Vec<PathBuf>, Image)> {
    let (preview_name, csv_name) = (PREVIEW, LOSS_CSV);
    let reserved = [preview_name, csv_name, super::defaults::REPORT_PAGE];
    let made = export::write_all(plan, mesh, &outcome.textures, dir, &cfg.name(), &reserved, &mut |m| super::open_raster(cfg.cpu, m))?;
    let preview_path = dir.join(preview_name);
    let preview = preview::before_after(raster, mesh, &outcome.textures)?;
    preview.save_png(&preview_path)?;
    let csv_path = dir.join(csv_name);
    write_atomic(&csv_path, report::loss_csv(&outcome.log).as_bytes())?;
    Ok((made, vec![preview_path, csv_path], preview))
}

/// What the run produced besides its files, for the run page.
struct RunInfo<'a> {
    outcome: &'a Outcome,
    painting: &'a Image,
    preview: &'a Image,
    total_s: f64,
}

/// `index.html` ([`crate::page`]) into `dir`, after every other file of the
/// run is there (it lists their sizes); its path.
fn write_page(cfg: &StyleConfig, mesh: &Mesh, run: &RunInfo, made: &[export::Made], extra: &[PathBuf], dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    use crate::page;
    let glb = export::glb::file_with_variants(mesh, &mesh.positions, &run.outcome.textures, "page.glb".into())?;
    let other: Vec<(&str, &std::path::Path)> = extra
        .iter()
        .map(|p| (if p.ends_with(PREVIEW) { "preview" } else if p.ends_with(LOSS_CSV) { "loss log" } else { "file" }, p.as_path()))
        .collect();
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let style_name = cfg.style.file_stem().map_or(String::new(), |s| s.to_string_lossy().into_owned());
    let html = page::run_page(&page::RunPage {
        title: format!("{} × {}", cfg.name(), style_name),
        glb: &glb.bytes,
        painting: run.painting,
        preview: run.preview,
        log: &run.outcome.log,
        eval: (run.outcome.eval_before, run.outcome.eval_after),
        eval_views: cfg.optim.eval_views,
        eval_content: run.outcome.eval_content_after,
        seen_fraction: run.outcome.seen_fraction,
        total_s: run.total_s,
        time_split: report::time_split(&run.outcome.log),
        command: page::shell_line(&argv),
        options: option_rows(&argv),
        exports: page::exports::rows(made, &other)?,
    })?;
    let path = dir.join(super::defaults::REPORT_PAGE);
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// The style transfer's options as `argv` set them (none where it is not
/// this process's own command line, e.g. a run started from a library).
fn option_rows(argv: &[String]) -> Vec<crate::page::OptionRow> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    match cmd.clone().try_get_matches_from(argv) {
        Ok(m) if m.subcommand().is_none() => crate::page::options::rows(&cmd, &m),
        _ => Vec::new(),
    }
}
