//! Error types shared by the pipeline. Every message is one line that names the file and,
//! where there is one, the field.

use std::path::{Path, PathBuf};

/// A config problem: `file: field: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, field: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn render(&self) -> String {
        if self.field.is_empty() {
            format!("{}: {}", self.file, self.message)
        } else {
            format!("{}: {}: {}", self.file, self.field, self.message)
        }
    }
}

/// Errors of ccad's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file on disk does not hold what it should: `path: field: message`.
    #[error("{}: {field}: {message}", path.display())]
    File {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
    /// The build's compute device could not be set up (no GPU driver, a bad adapter name).
    #[error("{0}")]
    Device(String),
}

impl Error {
    pub fn file(path: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
