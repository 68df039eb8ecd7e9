//! `texstyle MESH --style IMAGE`: the style transfer, its outputs and its report.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;

use super::args::{Param, StyleArgs, UvArg};
use super::{BadInput, CliError};
use crate::camera::{turntable_fitting, CameraRange};
use crate::export::export;
use crate::image_io::{write_atomic, Image};
use crate::mesh::{Mesh, UvChoice};
use crate::optim::{self, Config, StepLog};
use crate::raster::{RasterMesh, ViewSize};
use crate::texture::ParamKind;
use crate::vgg::Vgg;
use crate::preview;

fn bad(msg: String) -> CliError {
    CliError { exit: super::Exit::BadInput, error: BadInput(msg).into() }
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "mesh".into())
}

pub fn run(a: StyleArgs) -> Result<(), CliError> {
    let (mesh_path, style_path) = (a.mesh.clone().expect("clap requires MESH"), a.style.clone().expect("clap requires --style"));
    if !(0.0..1.0).contains(&a.gram_decay) {
        return Err(bad(format!("--gram-decay {} is out of range: use 0 (no memory) up to but not including 1, e.g. 0.95", a.gram_decay)));
    }
    if !(a.lr.is_finite() && a.lr > 0.0 && a.lr <= 10.0) {
        return Err(bad(format!("--lr {} is out of range: use a positive rate up to 10, e.g. 0.05", a.lr)));
    }
    for (name, v) in [("--style-weight", a.style_weight), ("--content-weight", a.content_weight)] {
        if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
            return Err(bad(format!("{name} {v} is out of range: use a weight between 0 and 1000000")));
        }
    }
    if a.style_weight == 0.0 {
        return Err(bad("--style-weight 0 leaves nothing to optimize: use a positive weight, e.g. 1".into()));
    }

    let mut mesh = Mesh::load(&mesh_path)?;
    for w in &mesh.warnings {
        super::warn(w);
    }
    let uv = a.uv.map(|u| match u {
        UvArg::Keep => UvChoice::Keep,
        UvArg::Auto => UvChoice::Auto,
    });
    if let Some(atlas) = mesh.prepare_uvs(uv, a.texture_size)? {
        eprintln!("texstyle: automatic UV atlas: {atlas}");
    }
    let painting = Image::load(&style_path).with_context(|| format!("reading the style image {}", style_path.display()))?;
    let painting = optim::prepare_style(&painting, a.style_size);
    let vgg = Vgg::load(a.weights.as_deref(), &network_device()).context("loading the VGG weights")?;
    let mut raster = super::open_raster(a.cpu, &RasterMesh::from_mesh(&mesh))?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("texstyle-out").join(format!("{}_{}", stem(&mesh_path), stem(&style_path))));

    let cfg = Config {
        steps: a.steps as usize,
        texture_size: a.texture_size,
        render_size: a.render_size,
        samples: a.samples,
        style_weight: a.style_weight,
        content_weight: a.content_weight,
        gram_decay: a.gram_decay,
        param: match a.param {
            Param::Fft => ParamKind::Fft,
            Param::Pixel => ParamKind::Pixel,
        },
        lr: a.lr,
        seed: a.seed,
        background: a.background,
        cameras: CameraRange::default(),
        eval_views: 4,
    };
    eprintln!(
        "texstyle: {} ({} triangles, {} material{}) in the style of {} ({}×{}): {} steps, texture {}², views {}²{}, raster: {}, network: {}",
        mesh_path.display(),
        mesh.triangles.len(),
        mesh.materials.len(),
        if mesh.materials.len() == 1 { "" } else { "s" },
        style_path.display(),
        painting.width,
        painting.height,
        cfg.steps,
        cfg.texture_size,
        cfg.render_size,
        if cfg.samples > 1 { format!(" ×{} samples", cfg.samples * cfg.samples) } else { String::new() },
        raster.name(),
        if vgg.device().is_cpu() { "CPU".to_string() } else { format!("{:?}", vgg.device()) },
    );
    let has_texture = mesh.materials.iter().any(|m| m.texture.is_some());
    if !has_texture {
        eprintln!("texstyle: the mesh has no texture or vertex colours: style only, no content loss");
    } else if cfg.content_weight == 0.0 {
        eprintln!("texstyle: --content-weight 0: style only");
    }

    // First Ctrl-C: finish the step and write the result so far. Second: quit now.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ntexstyle: interrupted twice: quitting without writing outputs");
            std::process::exit(super::Exit::Interrupted as i32);
        }
        eprintln!("\ntexstyle: interrupted: finishing this step and writing the result so far (Ctrl-C again to quit)");
    });

    let start = Instant::now();
    let mut progress = Progress::new(cfg.steps);
    let outcome = optim::optimize(&mesh, &mut raster, &vgg, &painting, &cfg, &mut |s| {
        progress.step(s);
        if interrupted.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    progress.finish();
    let total_s = start.elapsed().as_secs_f64();

    // Outputs: textures + MTL + OBJ (export writes the OBJ last), preview, log.
    let name = stem(&mesh_path);
    let files = export(&mesh, &outcome.textures, &out, &name)?;
    let preview_path = out.join("preview_before_after.png");
    let size = ViewSize { width: 256, height: 256, samples: 2 };
    let cams = turntable_fitting(8, 20.0, RasterMesh::from_mesh(&mesh).radius(), CameraRange::default().fov_y_deg.0);
    let grey = [0.5; 3];
    let before = preview::render_views(&mut raster, &mesh, &[], &cams, size, grey)?;
    let learned: Vec<Option<&Image>> = outcome.textures.iter().map(Some).collect();
    let after = preview::render_views(&mut raster, &mesh, &learned, &cams, size, grey)?;
    preview::contact_sheet(&[before, after].concat(), 8, 4, grey).save_png(&preview_path)?;
    let csv_path = out.join("loss.csv");
    write_atomic(&csv_path, loss_csv(&outcome.log).as_bytes())?;

    let n = outcome.log.len().max(1) as f64;
    let mean = |f: fn(&StepLog) -> f64| outcome.log.iter().map(f).sum::<f64>() / n;
    eprintln!(
        "texstyle: done in {total_s:.0} s ({:.0} ms/step: texture {:.0}, raster {:.0}, lookup {:.0}, network {:.0}, optimizer {:.0}); peak memory {:.0} MB",
        1e3 * outcome.log.last().map_or(0.0, |l| l.seconds) / n,
        mean(|l| l.texture_ms),
        mean(|l| l.raster_ms),
        mean(|l| l.lookup_ms),
        mean(|l| l.network_ms),
        mean(|l| l.optimizer_ms),
        crate::vgg::cli::peak_rss_mb(),
    );
    eprintln!(
        "texstyle: style loss on 4 held-out views: {:.4} before, {:.4} after ({:.1}× lower); {:.0} % of texels seen by some view, the rest filled from their neighbours",
        outcome.eval_before,
        outcome.eval_after,
        outcome.eval_before / outcome.eval_after.max(1e-12),
        100.0 * outcome.seen_fraction
    );
    println!("{}", files.obj.display());
    for t in &files.textures {
        println!("{}", t.display());
    }
    println!("{}", preview_path.display());
    println!("{}", csv_path.display());
    if outcome.log.len() < cfg.steps {
        return Err(CliError {
            exit: super::Exit::Interrupted,
            error: anyhow::anyhow!(
                "interrupted after step {} of {}; {} holds the result so far",
                outcome.log.len(),
                cfg.steps,
                out.display()
            ),
        });
    }
    Ok(())
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

/// `step,style,content,total,seconds,…` one line per step.
fn loss_csv(log: &[StepLog]) -> String {
    let mut s = String::from("step,style,content,total,seconds,texture_ms,raster_ms,lookup_ms,network_ms,optimizer_ms\n");
    for l in log {
        writeln!(
            s,
            "{},{},{},{},{:.3},{:.2},{:.2},{:.2},{:.2},{:.2}",
            l.step, l.style, l.content, l.total, l.seconds, l.texture_ms, l.raster_ms, l.lookup_ms, l.network_ms, l.optimizer_ms
        )
        .unwrap();
    }
    s
}

/// A progress bar on a terminal, plain lines (every 5 %) otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    steps: usize,
}

impl Progress {
    fn new(steps: usize) -> Progress {
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

    fn step(&mut self, s: &StepLog) {
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

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
