//! The `triage-bot` binary: parse the command line and hand over to [`triage_bot::cli`].

fn main() -> std::process::ExitCode {
    triage_bot::cli::main()
}
