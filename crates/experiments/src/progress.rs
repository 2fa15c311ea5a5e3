//! Terminal progress of the training loops: one bar style, and the handlers that turn a
//! trainer's typed events (`train::fit::Event`, `train::generate::Event`) into the bar's
//! message, plain lines when no terminal shows the bar, and the live viewer's plots.

use indicatif::{ProgressBar, ProgressStyle};
use live::control::Control;

/// A progress bar of `len` steps in the style every command uses (elapsed, bar, position,
/// message, ETA). Hidden when stderr is not a terminal.
pub fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Print a line above the bar, or plainly when the bar is hidden.
pub fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Progress of one `fit` run: loss, last held-out PSNR and splat count on the bar; each
/// evaluation as a line; losses and PSNRs to the live viewer when one is attached.
pub struct FitProgress<'a> {
    /// The bar (finish it after the run).
    pub bar: ProgressBar,
    control: &'a Control,
    last_loss: f32,
    last_psnr: f64,
    splats: usize,
}

impl<'a> FitProgress<'a> {
    /// A bar of `steps` steps reporting to `control`'s live viewer, if any.
    pub fn new(steps: u64, control: &'a Control) -> Self {
        Self {
            bar: bar(steps),
            control,
            last_loss: f32::NAN,
            last_psnr: f64::NAN,
            splats: 0,
        }
    }

    /// Handle one event of `train::fit::fit`.
    pub fn on_event(&mut self, e: train::fit::Event) {
        use train::fit::Event;
        let live = self.control.live();
        match e {
            Event::Step {
                step, loss, splats, ..
            } => {
                if let Some(l) = loss {
                    self.last_loss = l;
                    if let Some(v) = &live {
                        v.record_loss(step, l as f64);
                    }
                }
                self.splats = splats;
                let (loss, psnr) = (self.last_loss, self.last_psnr);
                if self.bar.is_hidden() && step % 100 == 0 {
                    eprintln!("step {step}: loss {loss:.4}, {splats} splats");
                }
                self.bar.set_position(step);
                self.bar.set_message(format!(
                    "loss {loss:.4} | PSNR {psnr:.2} dB | {splats} splats"
                ));
            }
            Event::Eval(r) => {
                self.last_psnr = r.psnr;
                if let Some(v) = &live {
                    v.record_psnr(r.step, r.psnr);
                }
                say(
                    &self.bar,
                    format!(
                        "step {}: eval PSNR {:.2} dB, SSIM {:.4} on {} views, {} splats, {:.1} s training",
                        r.step, r.psnr, r.ssim, r.views, r.splats, r.train_seconds
                    ),
                );
            }
            Event::Message(m) => {
                if let Some(v) = &live {
                    v.message(m.clone());
                }
                say(&self.bar, m)
            }
        }
    }
}

/// Progress of one `generate` run: loss, mean timestep, splat count and step time on the bar;
/// messages as lines; losses to the live viewer when one is attached.
pub struct GenerateProgress<'a> {
    /// The bar (finish it after the run).
    pub bar: ProgressBar,
    control: &'a Control,
    msg: String,
}

impl<'a> GenerateProgress<'a> {
    /// A bar of `steps` steps reporting to `control`'s live viewer, if any.
    pub fn new(steps: u64, control: &'a Control) -> Self {
        Self {
            bar: bar(steps),
            control,
            msg: String::new(),
        }
    }

    /// Handle one event of `train::generate::generate`.
    pub fn on_event(&mut self, e: train::generate::Event) {
        use train::generate::Event;
        let live = self.control.live();
        match e {
            Event::Step {
                step,
                record,
                splats,
                ..
            } => {
                if let Some(r) = record {
                    if let Some(v) = &live {
                        v.record_loss(step, r.loss);
                    }
                    self.msg = format!(
                        "loss {:.4} | t {:.0} | {splats} splats | {:.0} ms/step",
                        r.loss, r.t_mean, r.step_ms
                    );
                    if self.bar.is_hidden() {
                        eprintln!("step {}: {}", r.step, self.msg);
                    }
                }
                self.bar.set_position(step);
                self.bar.set_message(self.msg.clone());
            }
            Event::Message(m) => {
                if let Some(v) = &live {
                    v.message(m.clone());
                }
                say(&self.bar, m)
            }
        }
    }
}
