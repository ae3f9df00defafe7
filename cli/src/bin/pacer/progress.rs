//! Progress bars for `pacer run`: one per worker and one in total.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pacer_cli::pipeline::Progress;

/// indicatif bars behind the pipeline's progress hooks.
pub struct Bars {
    total: ProgressBar,
    workers: Vec<ProgressBar>,
}

impl Bars {
    /// A total bar and `workers` worker bars.
    pub fn new(workers: usize) -> Bars {
        let multi = MultiProgress::new();
        let worker_style = ProgressStyle::with_template(
            "  worker {prefix} {bar:24.cyan/blue} {bytes:>10}/{total_bytes:<10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let workers = (0..workers)
            .map(|i| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(worker_style.clone());
                bar.set_prefix(i.to_string());
                bar.set_message("waiting for the index");
                bar
            })
            .collect();
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template("  total    {bar:24.green/white} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec} {msg} [{elapsed_precise}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        total.enable_steady_tick(Duration::from_millis(200));
        Bars { total, workers }
    }

    /// Removes the bars.
    pub fn clear(&self) {
        for bar in &self.workers {
            bar.finish_and_clear();
        }
        self.total.finish_and_clear();
    }
}

impl Progress for Bars {
    fn planned(&self, files: usize, bytes: u64) {
        self.total.set_length(bytes);
        self.total.set_message(format!("{files} files to fetch"));
    }

    fn started(&self, worker: usize, name: &str, size: u64) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_length(size);
            bar.set_position(0);
            bar.set_message(name.to_string());
        }
    }

    fn advanced(&self, worker: usize, bytes: u64) {
        if let Some(bar) = self.workers.get(worker) {
            bar.inc(bytes);
        }
        self.total.inc(bytes);
    }

    fn waiting(&self, worker: usize, why: &str) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_message(why.to_string());
        }
    }

    fn finished(&self, worker: usize, name: &str, ok: bool) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_message(if ok {
                format!("{name} verified")
            } else {
                format!("{name} FAILED")
            });
        }
    }
}

/// A progress sink that prints nothing (`--json`).
pub struct Quiet;

impl Progress for Quiet {}
