//! Thin entry point: parse, run, turn the outcome into an exit code.
//! 0 = found / all indexed, 1 = no match, 2 = error, 130 = interrupted.

use std::process::ExitCode;

use clap::Parser;

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    ostid::decode::quiet_decoder_panics();
    // A file-size limit (`ulimit -f`) or a full disk must be a clear write
    // error, not SIGXFSZ killing the process mid-commit.
    // SAFETY: setting a signal's disposition to "ignore" at startup, before
    // any thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = ostid::cli::Cli::parse();
    match ostid::run(cli) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ostid: {e:#}");
            ExitCode::from(ostid::Status::Error as u8)
        }
    }
}
