//! Verify an exported response with the library alone, as a third party
//! (a journalist, the requesting ministry) could embed it:
//!
//! ```sh
//! cargo run --example verify_export -- response.json
//! ```

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: verify_export FILE");
        return std::process::ExitCode::from(2);
    };
    let content = match std::fs::read_to_string(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{path}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let report = convene::model::export::verify_export(&content);
    for check in &report.checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        println!(
            "{mark} {} {}",
            check.what,
            check.detail.as_deref().unwrap_or("")
        );
    }
    if report.ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(4)
    }
}
