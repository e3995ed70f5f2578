//! A one-line progress display on stderr (only when it is a terminal), and
//! its adapters to the library's progress callbacks.
use std::io::{IsTerminal, Write};
use std::time::Instant;

use trainer::eval::EvalProgress;
use trainer::retrain::Progress;

pub struct Bar {
    label: String,
    pub total: usize,
    done: usize,
    t0: Instant,
    on: bool,
    extra: String,
}

impl Bar {
    pub fn new(label: &str, total: usize) -> Bar {
        Bar {
            label: label.into(),
            total,
            done: 0,
            t0: Instant::now(),
            on: std::io::stderr().is_terminal(),
            extra: String::new(),
        }
    }

    pub fn set(&mut self, done: usize, extra: String) {
        self.done = done;
        self.extra = extra;
        if !self.on {
            return;
        }
        let el = self.t0.elapsed().as_secs_f64();
        let frac = self.done as f64 / self.total.max(1) as f64;
        let eta = if frac > 0.0 { el / frac - el } else { f64::NAN };
        let w = 28;
        let filled = ((frac * w as f64) as usize).min(w);
        eprint!(
            "\r{:<14} [{}{}] {}/{} {:>5.0}s eta {:>4.0}s {}   ",
            self.label,
            "#".repeat(filled),
            "-".repeat(w - filled),
            self.done,
            self.total,
            el,
            eta,
            self.extra
        );
        let _ = std::io::stderr().flush();
    }

    pub fn finish(&mut self) {
        if self.on {
            eprintln!();
        }
    }

    /// Show an evaluation's running accuracy.
    pub fn eval(&mut self, p: &EvalProgress) {
        self.total = p.total;
        self.set(p.done, format!("acc {:.2} %", 100.0 * p.accuracy()));
    }

    /// Show a retraining run's steps, evaluations and epochs.
    pub fn retrain(&mut self, p: Progress) {
        match p {
            Progress::Start { steps_total, steps_done } => {
                self.total = steps_total;
                self.set(steps_done, String::new());
            }
            Progress::Step { epoch, loss, .. } => {
                let d = self.done + 1;
                self.set(d, format!("epoch {epoch} loss {loss:.3}"));
            }
            Progress::Eval { what } => {
                let d = self.done;
                self.set(d, format!("evaluating ({what})"));
            }
            Progress::Epoch(r) => {
                let d = self.done;
                self.set(d, format!("epoch {} test {:.2} %", r.epoch, 100.0 * r.test_accuracy));
                log::info!("epoch {}: {:?}", r.epoch, r);
            }
            Progress::Mark(m) => {
                let d = self.done;
                self.set(
                    d,
                    format!("{} samples: test {:.2} %", m.samples, 100.0 * m.test_accuracy),
                );
            }
            Progress::Checkpoint { steps_done } => log::info!("checkpoint at step {steps_done}"),
        }
    }
}
