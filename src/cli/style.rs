//! `texstyle MESH --style IMAGE`: the style transfer as a sequence of named
//! steps. Options are checked in [`super::config`]; what the user reads is
//! [`super::report`].

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;

use super::args::StyleArgs;
use super::config::{bad, StyleConfig};
use super::report::{self, Progress};
use super::{CliError, Exit};
use crate::export::{self, Plan};
use crate::image_io::{write_atomic, Image};
use crate::mesh::Mesh;
use crate::optim::{self, Outcome};
use crate::preview;
use crate::raster::{Raster, RasterMesh};
use crate::vgg::Vgg;

pub fn run(a: StyleArgs) -> Result<(), CliError> {
    let cfg = StyleConfig::from_args(a)?;
    let mesh = load_mesh(&cfg)?;
    let plan = Plan::new(&mesh, cfg.export.clone(), (cfg.optim.texture_size, cfg.optim.texture_size)).map_err(|e| bad(e.to_string()))?;
    let painting = load_painting(&cfg)?;
    let vgg = Vgg::load(cfg.weights.as_deref(), &network_device()).context("loading the VGG weights")?;
    let mut raster = super::open_raster(cfg.cpu, &RasterMesh::from_mesh(&mesh))?;
    report::banner(&cfg, &mesh, &painting, &raster.name(), &device_name(vgg.device()));
    for note in plan.notes() {
        eprintln!("texstyle: {note}");
    }
    let interrupted = stop_on_ctrl_c();
    let start = Instant::now();
    let outcome = optimize_with_progress(&cfg, &mesh, &mut raster, &vgg, &painting, &interrupted)?;
    let total_s = start.elapsed().as_secs_f64();
    let (made, extra) = write_outputs(&cfg, &plan, &mesh, &mut raster, &outcome)?;
    report::summary(&outcome, cfg.optim.eval_views, total_s);
    report::exports(&made, &extra);
    if outcome.log.len() < cfg.optim.steps {
        return Err(CliError {
            exit: Exit::Interrupted,
            error: anyhow::anyhow!(
                "interrupted after step {} of {}; {} holds the result so far",
                outcome.log.len(),
                cfg.optim.steps,
                cfg.out.display()
            ),
        });
    }
    Ok(())
}

/// The mesh, which must have UVs: the style is painted into its UV texture.
fn load_mesh(cfg: &StyleConfig) -> Result<Mesh, CliError> {
    let mesh = Mesh::load(&cfg.mesh)?;
    if !mesh.has_uvs() {
        return Err(bad(format!(
            "{}: the mesh has no texture coordinates, and style transfer paints a UV texture (unwrap it first, e.g. Blender: UV > Smart UV Project, then export the OBJ with UVs)",
            cfg.mesh.display()
        )));
    }
    Ok(mesh)
}

/// The painting, scaled down to `--style-size`.
fn load_painting(cfg: &StyleConfig) -> Result<Image, CliError> {
    let painting = Image::load(&cfg.style).with_context(|| format!("reading the style image {}", cfg.style.display()))?;
    Ok(optim::prepare_style(&painting, cfg.style_size))
}

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

fn device_name(d: &Device) -> String {
    if d.is_cpu() {
        "CPU".to_string()
    } else {
        format!("{d:?}")
    }
}

/// First Ctrl-C: set the returned flag (the loop finishes its step and the
/// result so far is written). Second: quit at once.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ntexstyle: interrupted twice: quitting without writing outputs");
            std::process::exit(Exit::Interrupted as i32);
        }
        eprintln!("\ntexstyle: interrupted: finishing this step and writing the result so far (Ctrl-C again to quit)");
    });
    interrupted
}

fn optimize_with_progress(
    cfg: &StyleConfig,
    mesh: &Mesh,
    raster: &mut Raster,
    vgg: &Vgg,
    painting: &Image,
    interrupted: &AtomicBool,
) -> anyhow::Result<Outcome> {
    let mut progress = Progress::new(cfg.optim.steps);
    let outcome = optim::optimize(mesh, raster, vgg, painting, &cfg.optim, &mut |s| {
        progress.step(s);
        if interrupted.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    progress.finish();
    Ok(outcome)
}

/// Every export of `plan` (each OBJ after its files), the preview and the
/// log; the exports made and the other files written.
fn write_outputs(
    cfg: &StyleConfig,
    plan: &Plan,
    mesh: &Mesh,
    raster: &mut Raster,
    outcome: &Outcome,
) -> anyhow::Result<(Vec<export::Made>, Vec<PathBuf>)> {
    let (preview_name, csv_name) = ("preview_before_after.png", "loss.csv");
    let made = export::write_all(plan, mesh, &outcome.textures, &cfg.out, &cfg.name(), &[preview_name, csv_name], &mut |m| {
        super::open_raster(cfg.cpu, m)
    })?;
    let preview_path = cfg.out.join(preview_name);
    preview::before_after(raster, mesh, &outcome.textures)?.save_png(&preview_path)?;
    let csv_path = cfg.out.join(csv_name);
    write_atomic(&csv_path, report::loss_csv(&outcome.log).as_bytes())?;
    Ok((made, vec![preview_path, csv_path]))
}
