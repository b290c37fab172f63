//! The `convene` binary: parse, run, map errors to exit codes (in `cli`).

fn main() -> std::process::ExitCode {
    convene::cli::main()
}
