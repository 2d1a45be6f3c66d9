//! Where the library's output goes. Every message it has for a person (setup lines, progress, validation
//! tables, warnings about skipped files, generation summaries) goes through one [`Reporter`] that the caller
//! chooses: a live bar on a terminal, plain lines for logs and notebooks (evcxr streams output line by line and
//! shows no carriage-return updates), one compact line per epoch, nothing at all, or a capture for tests.
//! Nothing else in the library prints.
//!
//! ```
//! use yolo_lab::prelude::*;
//! let r = Reporter::capture(ProgressMode::Quiet);
//! r.info("shown in Lines, Bar and Notebook modes");
//! r.warn("shown in every mode but Silent");
//! assert_eq!(r.captured(), ["WARNING shown in every mode but Silent"]);
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How much is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines: setup lines, a progress line every N iterations, the validation table of every epoch.
    Lines,
    /// As `Lines`, with a live bar in place of the progress lines (terminals).
    Bar,
    /// Setup lines, then one compact line per epoch under a header shown once (notebook cells).
    Notebook,
    /// Only the compact epoch lines, summaries of whole runs, and warnings.
    Quiet,
    /// Nothing at all.
    Silent,
}

impl std::str::FromStr for ProgressMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => ProgressMode::Auto,
            "lines" => ProgressMode::Lines,
            "bar" => ProgressMode::Bar,
            "notebook" => ProgressMode::Notebook,
            "quiet" => ProgressMode::Quiet,
            "silent" => ProgressMode::Silent,
            other => {
                return Err(crate::Error::Config {
                    name: "progress",
                    message: format!("`{other}` is not one of auto, lines, bar, notebook, quiet, silent"),
                });
            }
        })
    }
}

/// The kind of a message, which decides in which modes it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Per-epoch detail that compact modes leave out (validation tables, progress lines).
    Detail,
    /// Setup lines (data set, model, freeze, image sizes).
    Info,
    /// One compact line per epoch.
    Epoch,
    /// The result of a whole run or generation.
    Summary,
    /// Something skipped or replaced.
    Warning,
}

impl ProgressMode {
    /// Whether a reporter in this mode shows `kind` (a reporter's mode is never `Auto`: it is resolved when
    /// the reporter is built).
    fn shows(self, kind: Kind) -> bool {
        use ProgressMode::*;
        match kind {
            Kind::Detail => matches!(self, Lines | Bar),
            Kind::Info => matches!(self, Lines | Bar | Notebook),
            Kind::Epoch => matches!(self, Notebook | Quiet),
            Kind::Summary | Kind::Warning => self != Silent,
        }
    }
}

struct Inner {
    mode: ProgressMode,
    every: AtomicUsize,
    captured: Option<Mutex<Vec<String>>>,
    bar: Mutex<Option<ProgressBar>>,
    epoch_header_shown: Mutex<bool>,
}

/// The one output channel of the library. Cheap to clone; clones share the bar, the capture and the
/// "header shown" state, so one reporter can be handed to a trainer, its loaders and a study around it.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter")
            .field("mode", &self.inner.mode)
            .field("capturing", &self.inner.captured.is_some())
            .finish()
    }
}

impl PartialEq for Reporter {
    /// Two reporters are equal when they are clones of one another.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::new(ProgressMode::Auto)
    }
}

impl Reporter {
    fn build(mode: ProgressMode, captured: Option<Mutex<Vec<String>>>) -> Self {
        let mode = match mode {
            ProgressMode::Auto if captured.is_none() && std::io::stdout().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            m => m,
        };
        Reporter {
            inner: Arc::new(Inner {
                mode,
                every: AtomicUsize::new(10),
                captured,
                bar: Mutex::new(None),
                epoch_header_shown: Mutex::new(false),
            }),
        }
    }

    /// A reporter writing to standard output (warnings to standard error).
    pub fn new(mode: ProgressMode) -> Self {
        Reporter::build(mode, None)
    }

    /// A reporter that shows nothing.
    pub fn silent() -> Self {
        Reporter::new(ProgressMode::Silent)
    }

    /// A reporter that keeps every line its mode would show, for [`Reporter::captured`] (tests).
    pub fn capture(mode: ProgressMode) -> Self {
        Reporter::build(mode, Some(Mutex::new(vec![])))
    }

    /// Show a progress line every `n` iterations in `Lines` mode (default 10; shared by clones).
    pub fn every(self, n: usize) -> Self {
        self.inner.every.store(n.max(1), Ordering::Relaxed);
        self
    }

    /// The mode in force (`Auto` resolved to `Bar` or `Lines`).
    pub fn mode(&self) -> ProgressMode {
        self.inner.mode
    }

    /// The lines a capturing reporter kept (empty for the others).
    pub fn captured(&self) -> Vec<String> {
        self.inner.captured.as_ref().map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone()).unwrap_or_default()
    }

    fn emit(&self, kind: Kind, text: &str) {
        if !self.inner.mode.shows(kind) {
            return;
        }
        if let Some(b) = self.inner.bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
            b.finish_and_clear();
        }
        match &self.inner.captured {
            Some(c) => c.lock().unwrap_or_else(|p| p.into_inner()).extend(text.lines().map(str::to_string)),
            None if kind == Kind::Warning => eprintln!("{text}"),
            None => println!("{text}"),
        }
    }

    /// A setup line (data set, model, settings): shown by `Lines`, `Bar` and `Notebook`.
    pub fn info(&self, text: &str) {
        self.emit(Kind::Info, text);
    }

    /// Per-epoch detail (a validation table): shown by `Lines` and `Bar` only.
    pub fn detail(&self, text: &str) {
        self.emit(Kind::Detail, text);
    }

    /// The result of a whole run or generation: shown in every mode but `Silent`.
    pub fn summary(&self, text: &str) {
        self.emit(Kind::Summary, text);
    }

    /// A warning, prefixed `WARNING `: shown in every mode but `Silent`.
    pub fn warn(&self, text: &str) {
        self.emit(Kind::Warning, &format!("WARNING {text}"));
    }

    /// A compact epoch line under `header` (shown once per reporter): `Notebook` and `Quiet` modes.
    pub fn epoch(&self, header: &str, line: &str) {
        if !self.inner.mode.shows(Kind::Epoch) {
            return;
        }
        let first =
            !std::mem::replace(&mut *self.inner.epoch_header_shown.lock().unwrap_or_else(|p| p.into_inner()), true);
        if first {
            self.emit(Kind::Epoch, header);
        }
        self.emit(Kind::Epoch, line);
    }

    /// A new epoch of `n` batches (starts the bar in `Bar` mode).
    pub fn start_epoch(&self, n: usize) {
        if self.inner.mode == ProgressMode::Bar && self.inner.captured.is_none() {
            let bar = ProgressBar::new(n as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed}<{eta}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            *self.inner.bar.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar);
        }
    }

    /// Iteration `i` (0-based) of `n` with its status text: the bar's message, or a line every N iterations
    /// and at the last one in `Lines` mode.
    pub fn iteration(&self, i: usize, n: usize, text: &str) {
        match self.inner.mode {
            ProgressMode::Bar if self.inner.captured.is_none() => {
                if let Some(b) = &*self.inner.bar.lock().unwrap_or_else(|p| p.into_inner()) {
                    b.set_message(text.to_string());
                    b.set_position(i as u64 + 1);
                }
            }
            ProgressMode::Lines | ProgressMode::Bar
                if (i + 1).is_multiple_of(self.inner.every.load(Ordering::Relaxed)) || i + 1 == n =>
            {
                self.emit(Kind::Detail, text)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything(r: &Reporter) {
        r.info("info");
        r.detail("detail");
        r.summary("summary");
        r.warn("warn");
        r.epoch("header", "epoch 0");
        r.epoch("header", "epoch 1");
        r.start_epoch(2);
        r.iteration(0, 2, "it 0");
        r.iteration(1, 2, "it 1");
    }

    #[test]
    fn each_mode_shows_its_kinds_of_line() {
        let cases: [(ProgressMode, &[&str]); 5] = [
            (ProgressMode::Lines, &["info", "detail", "summary", "WARNING warn", "it 1"]),
            (ProgressMode::Notebook, &["info", "summary", "WARNING warn", "header", "epoch 0", "epoch 1"]),
            (ProgressMode::Quiet, &["summary", "WARNING warn", "header", "epoch 0", "epoch 1"]),
            (ProgressMode::Silent, &[]),
            (ProgressMode::Auto, &["info", "detail", "summary", "WARNING warn", "it 1"]),
        ];
        for (mode, want) in cases {
            let r = Reporter::capture(mode);
            everything(&r);
            assert_eq!(r.captured(), want, "{mode:?}");
        }
    }

    #[test]
    fn clones_share_the_capture_and_the_header() {
        let r = Reporter::capture(ProgressMode::Quiet);
        let c = r.clone();
        r.epoch("h", "a");
        c.epoch("h", "b");
        assert_eq!(r.captured(), ["h", "a", "b"]);
        assert_eq!(r, c);
        assert_ne!(r, Reporter::capture(ProgressMode::Quiet));
    }
}
