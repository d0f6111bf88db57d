//! Arguments every binary shares, and the error-printing main wrapper.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::error::ConfigError;

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// Experiment config (TOML).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set train.batch_size=64` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.config, &self.overrides)
    }
}

/// Run a binary's body: errors print as one line on stderr and exit with status 1
/// (130 after Ctrl-C).
pub fn run_main<E: std::fmt::Display>(body: impl FnOnce() -> Result<(), E>) -> ExitCode {
    crate::tb::install_interrupt_handler();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("error: {msg}");
            if crate::tb::interrupted() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
