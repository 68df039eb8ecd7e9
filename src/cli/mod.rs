//! The `texstyle` command line: parsing (`args`) and what each command does.

pub mod args;
mod render;

use std::process::ExitCode;

pub use args::{Cli, Command};

/// Process exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// Something failed while running (a device error, a write that failed).
    Failure = 1,
    /// The input was wrong: a bad mesh, image or option value.
    BadInput = 2,
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
        let bad_input = error.chain().any(|c| c.is::<crate::mesh::MeshError>() || c.is::<image::ImageError>());
        CliError { exit: if bad_input { Exit::BadInput } else { Exit::Failure }, error }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Render(a) => render::run(a),
    }
}

/// Prints `texstyle: warning: …` on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("texstyle: warning: {msg}");
}
