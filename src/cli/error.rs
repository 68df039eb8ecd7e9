//! How a command ends: the exit codes, the error the commands return
//! ([`CliError`]: an error and its exit code), and [`BadInput`], the
//! command line's own kind of "the user's input is wrong". A leaf: the other
//! `cli` files use it, it uses none of them.
//!
//! The exit code of a library error comes from its kind: each error type says
//! whose problem it is ([`crate::error::Blame`]), and [`blame`] asks every error
//! in a chain through one function.

use std::process::ExitCode;

use crate::error::Blame;

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

impl From<Blame> for Exit {
    fn from(b: Blame) -> Exit {
        match b {
            Blame::Input => Exit::BadInput,
            Blame::Run => Exit::Failure,
        }
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
        CliError { exit: blame(&error).into(), error }
    }
}

/// The user's input is wrong (exit code 2): what the command line checks
/// itself, beyond what the library's errors say.
#[derive(Debug, thiserror::Error)]
pub enum BadInput {
    /// An option's value, or options that do not fit together (or with the
    /// machine, such as a texture too large for the free memory).
    #[error("{0}")]
    Option(String),
    /// A file the command was given cannot be used as it is (a painting too
    /// small, a checkpoint that does not match, an output folder, an export
    /// the mesh cannot take).
    #[error("{0}")]
    File(String),
}

impl BadInput {
    pub fn blame(&self) -> Blame {
        Blame::Input
    }
}

/// Whose problem `error` is: the input's when any error in its chain blames
/// the input (a context line such as "loading the VGG weights" wraps the
/// typed cause), else the run's.
pub fn blame(error: &anyhow::Error) -> Blame {
    if error.chain().any(|e| blame_of(e) == Some(Blame::Input)) {
        Blame::Input
    } else {
        Blame::Run
    }
}

/// The blame of one error in a chain, when its type knows it.
fn blame_of(e: &(dyn std::error::Error + 'static)) -> Option<Blame> {
    use crate::{checkpoint::CheckpointError, export::PlanError, mesh::MeshError, publish::OutputError, vgg};
    // Every library error type of texstyle, each answering for itself.
    macro_rules! ask {
        ($($t:ty),* $(,)?) => {$(
            if let Some(e) = e.downcast_ref::<$t>() {
                return Some(e.blame());
            }
        )*};
    }
    ask!(BadInput, OutputError, MeshError, PlanError, CheckpointError, vgg::weights::WeightsError, vgg::VggError, vgg::onnx::OnnxError);
    // A picture that cannot be decoded is the user's file.
    e.is::<image::ImageError>().then_some(Blame::Input)
}
