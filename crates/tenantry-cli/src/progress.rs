//! Operation progress on the terminal: a progress bar when standard error is a terminal, and a
//! plain line per step otherwise (indicatif draws nothing without a terminal, and logs and CI
//! still deserve to see progress).

use crate::backend::Counter;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tenantry_catalog::model::Operation;
use tenantry_orchestrator::Progress;

pub struct StepProgress {
    bar: Option<ProgressBar>,
    label: String,
    /// Steps already reported by [`StepProgress::observe`].
    seen: AtomicUsize,
    /// When a step that works through rows reported first, and the tenth it last printed (no
    /// terminal: a line per tenth).
    rows: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl StepProgress {
    pub fn new(label: impl Into<String>, steps: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        let label = label.into();
        if let Some(bar) = &bar {
            bar.set_prefix(label.clone());
        }
        Self {
            bar,
            label,
            seen: AtomicUsize::new(0),
            rows: std::sync::Mutex::new(None),
        }
    }

    /// Reports the steps finished since the last look at an operation that runs elsewhere
    /// (a server's worker), as [`Progress`] reports those run here.
    pub fn observe(&self, op: &tenantry_api_types::responses::Operation) {
        let seen = self.seen.load(Ordering::Relaxed);
        let finished = op.steps.iter().take_while(|s| s.state == "done").count();
        for (idx, step) in op.steps.iter().enumerate().take(finished).skip(seen) {
            match &self.bar {
                Some(bar) => {
                    bar.set_position(idx as u64 + 1);
                    bar.set_message(step.name.clone());
                }
                None => eprintln!(
                    "{} [{}/{}] {} done in {} ms",
                    self.label,
                    idx + 1,
                    op.steps.len(),
                    step.name,
                    step.duration_ms.unwrap_or_default()
                ),
            }
        }
        self.seen.store(seen.max(finished), Ordering::Relaxed);
        if op.state == "rolling_back" && seen != usize::MAX {
            let failed = op.steps.iter().find(|s| s.state == "failed");
            self.line(format!(
                "{} {} failed: {}; rolling back",
                self.label,
                failed.map_or("a step", |s| s.name.as_str()),
                op.error.as_deref().unwrap_or_default()
            ));
            self.seen.store(usize::MAX, Ordering::Relaxed);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for StepProgress {
    fn step_started(&self, _op: &Operation, idx: usize, name: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(idx as u64);
            bar.set_message(name.to_owned());
        }
    }

    fn step_finished(&self, op: &Operation, idx: usize, name: &str, took: Duration) {
        match &self.bar {
            Some(bar) => bar.set_position(idx as u64 + 1),
            None => eprintln!(
                "{} [{}/{}] {name} done in {} ms",
                self.label,
                idx + 1,
                op.steps.len(),
                took.as_millis()
            ),
        }
    }

    fn step_retrying(&self, name: &str, attempt: u32, error: &str) {
        self.line(format!(
            "{} {name}: attempt {attempt} failed, retrying: {error}",
            self.label
        ));
    }

    fn rows(&self, _op: &Operation, step: &str, done: u64, total: u64) {
        let mut rows = self.rows.lock().expect("row progress");
        let (started, printed) = rows.get_or_insert((std::time::Instant::now(), 0));
        let elapsed = started.elapsed().as_secs_f64();
        let eta = (done > 0 && elapsed > 0.0)
            .then(|| (total.saturating_sub(done)) as f64 * elapsed / done as f64)
            .map_or_else(|| "?".to_owned(), |s| format!("{s:.0} s"));
        let text = format!("{step}: {done}/{total} rows, ETA {eta}");
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None => {
                let tenth = (done * 10).checked_div(total).unwrap_or(10);
                if tenth > *printed {
                    *printed = tenth;
                    eprintln!("{} {text}", self.label);
                }
            }
        }
    }

    fn rolling_back(&self, _op: &Operation, step: &str, error: &str) {
        self.line(format!(
            "{} {step} failed: {error}; rolling back",
            self.label
        ));
    }
}

/// A bar over items (spaces, databases) when standard error is a terminal, a line per item
/// otherwise.
pub struct CounterBar(ProgressBar);

/// A [`CounterBar`] labelled `prefix`, counting `unit`.
pub fn counter_bar(prefix: &str, unit: &str) -> CounterBar {
    if !std::io::stderr().is_terminal() {
        return CounterBar(ProgressBar::hidden());
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{prefix} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    CounterBar(bar)
}

impl CounterBar {
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Counter for CounterBar {
    fn planned(&self, total: usize) {
        self.0.set_length(total as u64);
    }

    fn finished(&self, line: &str) {
        self.0.inc(1);
        if self.0.is_hidden() {
            eprintln!(
                "[{}/{}] {line}",
                self.0.position(),
                self.0.length().unwrap_or(0)
            );
        }
    }
}
