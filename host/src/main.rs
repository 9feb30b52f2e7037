//! The `verdict` binary: all behaviour lives in the library (`verdict::cli`).

fn main() -> std::process::ExitCode {
    verdict::cli::main()
}
