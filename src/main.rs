use std::process::ExitCode;

use texstyle::cli::{self, Exit};

fn main() -> ExitCode {
    texstyle::reuse_freed_large_blocks();
    quiet_mesa_runtime_dir();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let parsed = match cli::args::parse_from(std::env::args_os()) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!("texstyle: error: {}", cli::one_line_usage_error(&e.render().to_string()));
            return Exit::BadInput.into();
        }
    };
    match cli::run(parsed) {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            // One line per cause, outermost first.
            eprintln!("texstyle: error: {:#}", e.error);
            e.exit.into()
        }
    }
}

/// Mesa's software Vulkan prints "error: XDG_RUNTIME_DIR is invalid" when the
/// variable is unset (as in CI and sudo shells), though it needs no runtime
/// directory for headless work. Point it at a private directory instead.
fn quiet_mesa_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join("texstyle-xdg-runtime");
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_err() && !dir.is_dir() {
            return;
        }
    }
    // Safe here: no other thread exists yet.
    std::env::set_var("XDG_RUNTIME_DIR", &dir);
}
