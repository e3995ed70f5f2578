//! Progress bars on stderr (indicatif: position, rate, ETA), and their
//! adapters to the libraries' progress callbacks. The libraries report
//! through plain callbacks and never draw; this binary owns the terminal.
//!
//! Bars are drawn only when stderr is a terminal and the command does not
//! print `--json` ([`init`]). Log records (`RUST_LOG`) go through
//! indicatif-log-bridge, which lifts the bars out of the way while a record
//! is written, so logging and bars share stderr without garbling it.
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use trainer::eval::EvalProgress;
use trainer::retrain::Progress;

/// Every bar hangs off this one, so the log bridge can suspend them all.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(MultiProgress::new)
}

/// Set once by [`init`]: draw bars at all.
static DRAW: AtomicBool = AtomicBool::new(false);

/// Install the logger (env_logger, `RUST_LOG`, default `warn`) behind the
/// bars, and decide whether bars are drawn: only on a terminal, and not
/// when the output is JSON (`json`).
pub fn init(json: bool) {
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).build();
    let level = logger.filter();
    // Fails only if a logger is already installed (then that one stays).
    if indicatif_log_bridge::LogWrapper::new(multi().clone(), logger).try_init().is_ok() {
        log::set_max_level(level);
    }
    let draw = !json && std::io::stderr().is_terminal();
    DRAW.store(draw, Ordering::Relaxed);
    multi().set_draw_target(if draw {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
}

/// Whether [`init`] decided to draw bars.
pub fn drawing() -> bool {
    DRAW.load(Ordering::Relaxed)
}

/// The layout of every bar: label, bar, count, elapsed, ETA, rate, message.
fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<14} [{bar:28.cyan/blue}] {pos}/{len} {elapsed:>4} eta {eta:<4} {per_sec:>11} {msg}",
    )
    .expect("a valid template")
    .progress_chars("#>-")
}

/// One task's bar. `total` may change as the library learns it (set the
/// field, then [`Bar::set`]).
pub struct Bar {
    pb: ProgressBar,
    pub total: usize,
}

impl Bar {
    pub fn new(label: &str, total: usize) -> Bar {
        let pb = multi().add(ProgressBar::new(total as u64));
        pb.set_style(style());
        pb.set_prefix(label.to_string());
        // Redraw while a slow step runs, so elapsed and ETA keep moving.
        if drawing() {
            pb.enable_steady_tick(Duration::from_millis(500));
        }
        Bar { pb, total }
    }

    /// `done` of [`Bar::total`] finished; `extra` is shown after the rate.
    pub fn set(&mut self, done: usize, extra: String) {
        if self.pb.length() != Some(self.total as u64) {
            self.pb.set_length(self.total as u64);
        }
        self.pb.set_position(done as u64);
        self.pb.set_message(extra);
    }

    /// Stop the bar, leaving its last state on the terminal.
    pub fn finish(&mut self) {
        self.pb.finish();
    }

    /// Show an evaluation's running accuracy.
    pub fn eval(&mut self, p: &EvalProgress) {
        self.total = p.total;
        self.set(p.done, format!("acc {:.2} %", 100.0 * p.accuracy()));
    }

    /// Show a retraining run's steps, evaluations and epochs.
    pub fn retrain(&mut self, p: Progress) {
        let done = self.pb.position() as usize;
        match p {
            Progress::Start { steps_total, steps_done } => {
                self.total = steps_total;
                self.set(steps_done, String::new());
                // A resumed run's finished steps do not count toward the rate.
                self.pb.reset_eta();
            }
            Progress::Step { epoch, loss, .. } => {
                self.set(done + 1, format!("epoch {epoch} loss {loss:.3}"));
            }
            Progress::Eval { what } => self.set(done, format!("evaluating ({what})")),
            Progress::Epoch(r) => {
                self.set(done, format!("epoch {} test {:.2} %", r.epoch, 100.0 * r.test_accuracy));
                log::info!("epoch {}: {:?}", r.epoch, r);
            }
            Progress::Mark(m) => {
                let msg = format!("{} samples: test {:.2} %", m.samples, 100.0 * m.test_accuracy);
                self.set(done, msg);
            }
            Progress::Checkpoint { steps_done } => log::info!("checkpoint at step {steps_done}"),
        }
    }
}

impl Drop for Bar {
    /// A bar dropped on an error path stops drawing too.
    fn drop(&mut self) {
        if !self.pb.is_finished() {
            self.pb.abandon();
        }
    }
}
