//! Progress a person can follow: plain lines (notebooks, logs: evcxr streams line by line and shows no
//! carriage-return updates) or an indicatif bar on a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines every N iterations and at each epoch end.
    Lines,
    /// A live bar (terminals).
    Bar,
    /// Only epoch summaries.
    Quiet,
    /// Nothing at all (each generation of an evolution prints its own line).
    Silent,
}

/// The training progress printer.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    every: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A printer; `every` is the line interval in iterations for `Lines`.
    pub fn new(mode: ProgressMode, every: usize) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stdout().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            m => m,
        };
        Progress { mode, every: every.max(1), bar: None }
    }

    /// A new epoch of `n` batches.
    pub fn start_epoch(&mut self, n: usize) {
        if self.mode == ProgressMode::Bar {
            let bar = ProgressBar::new(n as u64);
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed}<{eta}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.bar = Some(bar);
        }
    }

    /// Iteration `i` (0-based) of `n` with its status text.
    pub fn iteration(&mut self, i: usize, n: usize, text: &str) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(b) = &self.bar {
                    b.set_message(text.to_string());
                    b.set_position(i as u64 + 1);
                }
            }
            ProgressMode::Lines if (i + 1).is_multiple_of(self.every) || i + 1 == n => println!("{text}"),
            _ => {}
        }
    }

    /// A line printed whatever the mode (epoch summaries, validation tables).
    pub fn line(&mut self, text: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.mode != ProgressMode::Silent {
            println!("{text}");
        }
    }
}
