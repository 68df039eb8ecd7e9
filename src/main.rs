use std::process::ExitCode;

use clap::Parser;
use texstyle::cli::{self, Cli, Exit};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let parsed = Cli::parse();
    match cli::run(parsed) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            // One line per cause, outermost first.
            eprintln!("texstyle: error: {:#}", e.error);
            e.exit.into()
        }
    }
}
