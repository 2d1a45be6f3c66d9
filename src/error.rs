//! The crate's one error type. Every variant names what is at fault: the file, the line, the key, the value.
//!
//! Soft problems found while scanning a data set (a corrupt image, a bad label row) are not errors: they are
//! collected as [`crate::data::Issue`]s in the scan report and the image is skipped, as YOLOv5 does.

use std::path::PathBuf;

/// Shorthand for `std::result::Result<T, yolo_lab::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in yolo-lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A YAML file could not be parsed.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// What the parser said.
        message: String,
    },
    /// A TOML file could not be parsed.
    #[error("{path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A hyperparameter file has a key yolo-lab does not know.
    #[error("{path}: unknown hyperparameter `{key}` (expected one of: {expected})")]
    UnknownHypKey {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// The key at fault.
        key: String,
        /// The accepted keys, comma separated.
        expected: String,
    },
    /// A hyperparameter that training reads is missing.
    #[error("{path}: missing hyperparameter `{key}`")]
    MissingHypKey {
        /// The file.
        path: PathBuf,
        /// The missing key.
        key: String,
    },
    /// A hyperparameter value is not a number.
    #[error("{path}: hyperparameter `{key}` must be a number, got `{value}`")]
    HypNotNumeric {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
    /// A hyperparameter value is outside what training accepts.
    #[error("{path}: hyperparameter `{key}` = {value} is outside [{min}, {max}]")]
    HypOutOfRange {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value.
        value: f64,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// A named preset or registry entry does not exist.
    #[error("unknown {kind} `{name}` (available: {available})")]
    UnknownName {
        /// What was looked up ("hyperparameter preset", "data set", ...).
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// What exists, comma separated.
        available: String,
    },
    /// A data set description (data yaml, datasets.toml entry) is unusable.
    #[error("{path}: {message}")]
    DataConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A line of a CSV file yolo-lab reads back (evolve.csv, results.csv) is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A data set has no usable images.
    #[error("{path}: no usable images ({message})")]
    NoImages {
        /// The folder, list or file that was scanned.
        path: PathBuf,
        /// Summary of the scan.
        message: String,
    },
    /// An image could not be decoded or encoded.
    #[error("{path}: {message}")]
    Image {
        /// The image.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// An XML annotation (VOC) could not be read.
    #[error("{path}: {message}")]
    Xml {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting given to a builder is invalid.
    #[error("invalid setting `{name}`: {message}")]
    Config {
        /// The setting.
        name: &'static str,
        /// Why it is rejected.
        message: String,
    },
    /// The training loss became NaN or infinite; the files of the last completed epoch are kept.
    #[error("training stopped: non-finite loss (box {}, obj {}, cls {}) at epoch {epoch}, iteration {iteration}; {} keeps results.csv and weights/last.safetensors of the last completed epoch", items[0], items[1], items[2], dir.display())]
    NonFiniteLoss {
        /// Epoch (0-based).
        epoch: usize,
        /// Iteration within the epoch.
        iteration: usize,
        /// Loss components.
        items: [f64; 3],
        /// The run folder.
        dir: PathBuf,
    },
    /// A `.pt` file is not a YOLOv5 checkpoint yolo-lab can read.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What it is instead, or what is wrong with it.
        message: String,
    },
    /// Training was stopped on purpose at a validation (an injected failure in tests).
    #[error("training aborted at epoch {epoch}: {reason}")]
    Aborted {
        /// Epoch (0-based).
        epoch: usize,
        /// Why.
        reason: String,
    },
    /// A figure could not be drawn or encoded.
    #[error("figure `{figure}`: {message}")]
    Plot {
        /// The figure (its title).
        figure: String,
        /// What the drawing backend said.
        message: String,
    },
    /// A polars DataFrame operation failed (evolve.csv tables).
    #[error("table: {0}")]
    Table(String),
    /// A worker thread (evolution generation, loader) died.
    #[error("{what} worker died: {message}")]
    Worker {
        /// Which kind of worker ("evolution", "loader").
        what: &'static str,
        /// Its panic message, when it left one.
        message: String,
    },
    /// A database store (PostgreSQL) could not be reached or refused an operation.
    #[error("evolution store {url}: {message}")]
    Storage {
        /// The connection string, its password masked.
        url: String,
        /// What failed.
        message: String,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The message a panicking thread left (`panic!` with a string), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "it panicked without a message".into())
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Wrap a serde_yaml error with its file and line.
    pub fn yaml(path: impl Into<PathBuf>, e: &serde_yaml::Error) -> Self {
        Error::Yaml { path: path.into(), line: e.location().map(|l| l.line()), message: e.to_string() }
    }
}

/// Attach a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_errors_carry_the_panic_message() {
        let literal = std::thread::spawn(|| panic!("boom")).join().unwrap_err();
        let formatted = std::thread::spawn(|| panic!("bad row {}", 3)).join().unwrap_err();
        let e = Error::Worker { what: "evolution", message: panic_message(&*literal) };
        assert_eq!(e.to_string(), "evolution worker died: boom");
        assert_eq!(panic_message(&*formatted), "bad row 3");
        assert_eq!(panic_message(&42u8), "it panicked without a message");
    }
}
