//! Whose problem a failure is. Every library error type says it through a
//! `blame()` method on its kind; the command line turns that into the exit code
//! (`cli::Exit`), so no caller has to guess from the message.

/// Who must act for the command to succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The user's input is wrong (a mesh, an image, an option, an output folder,
    /// a weights file, a checkpoint): exit code 2.
    Input,
    /// Something failed while running (a device error, a failed download, a
    /// write that failed): exit code 1.
    Run,
}
