//! The `journey` binary: parse, configure, run, exit with the code the report decides.

use clap::Parser;
use journey::{cli::Cli, command, config, context::RunContext, exit::Exit, output};

/// mimalloc: a batch allocates per entry, and the system allocator was a quarter of a dry-run profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let ctx = RunContext::capture();
    let code = match config::from_cli(cli, &ctx) {
        Err(msg) => {
            output::stderr(&format!("error: {msg}"));
            Exit::Usage
        }
        Ok(config) => run(config),
    };
    std::process::exit(code.code());
}

/// Runs the command; an error is printed here, once.
fn run(config: config::Config) -> Exit {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            output::stderr(&format!("error: cannot start the runtime: {e}"));
            return Exit::Internal;
        }
    };
    match runtime.block_on(command::execute(config)) {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => Exit::Ok,
        Err(e) => {
            e.lines().iter().for_each(|l| output::stderr(l));
            e.exit()
        }
    }
}
