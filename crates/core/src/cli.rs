//! Arguments every binary shares, and the error-printing main wrapper.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::env::{make_env, split_tasks};
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
    /// The config, validated, including its task split (which needs the environment).
    pub fn load(&self) -> Result<Config, ConfigError> {
        let cfg = Config::load(&self.config, &self.overrides)?;
        check_split(&cfg, &self.config.display().to_string())?;
        Ok(cfg)
    }
}

/// Whether the config's task split can be made (a listed held-out task exists, the counts
/// fit); `file` names the config in the error.
pub fn check_split(cfg: &Config, file: &str) -> Result<(), ConfigError> {
    let env = make_env(&cfg.env);
    split_tasks(&cfg.env, env.as_ref(), env.n_tasks())
        .map(|_| ())
        .map_err(|(field, message)| ConfigError::new(file, field, message))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_out_task_that_does_not_exist_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "[env]\ntest_tasks = [[4, 2], [9, 9]]\n").unwrap();
        let args = ConfigArgs {
            config: path.clone(),
            overrides: vec![],
        };
        let e = args.load().unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: env.test_tasks: [9, 9] is not a goal of the 81 tasks in use",
                path.display()
            )
        );
        std::fs::write(&path, "[env]\ntest_tasks = [[4, 2]]\n").unwrap();
        assert!(args.load().is_ok());
    }
}
