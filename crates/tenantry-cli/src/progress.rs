//! Operation progress on the terminal: a progress bar when standard error is a terminal, and a
//! plain line per step otherwise (indicatif draws nothing without a terminal, and logs and CI
//! still deserve to see progress).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use tenantry_catalog::model::Operation;
use tenantry_orchestrator::Progress;

pub struct StepProgress {
    bar: Option<ProgressBar>,
    label: String,
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
        Self { bar, label }
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

    fn rolling_back(&self, _op: &Operation, step: &str, error: &str) {
        self.line(format!(
            "{} {step} failed: {error}; rolling back",
            self.label
        ));
    }
}
