//! The protocol between a training run and a front end on another thread: the run's control
//! handle ([`control::Control`]: stop, pause, save now), the live view it may carry
//! ([`live::Live`]: scene snapshots as device handles, the guidance view, status, loss and
//! PSNR samples) and the error a stopped run returns ([`stop::Interrupted`]). The viewer
//! depends on this crate, not on the training loops; the loops take a `Control` as an
//! argument (no process-global state).

pub mod control;
pub mod live;
pub mod stop;
