//! Progress bars with rate and ETA (indicatif). Hidden automatically when stderr is not a
//! terminal, so logs stay clean.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` units of `unit` (e.g. "tasks", "steps").
pub fn bar(len: u64, label: &str, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(label.to_string());
    pb
}
