//! The viewer's guard against a surface reconfiguration racing the training thread (issue 25).

use super::{App, ViewerError};

impl App {
    /// Check what the error scope over the last paint and window events caught. A surface
    /// reconfiguration that lost the race against the training thread's submissions (wgpu's
    /// `GpuWaitTimeout` on `Surface::configure` after a resize: it waits for the queue to go
    /// idle and fails when another thread submitted meanwhile) is harmless: the surface keeps
    /// its old configuration and egui-wgpu reconfigures it when the next acquire reports it
    /// suboptimal or outdated. Until then egui paints at the new window size into the old
    /// surface texture, which wgpu rejects (a scissor rectangle outside the target), so the
    /// errors of up to [`RACE_GRACE_FRAMES`] frames after a race only drop those frames. Without
    /// the scope the race reached the device's uncaptured-error handler, which cubecl makes
    /// panic (issue 25). Any other error ends the viewer with [`ViewerError::Gpu`].
    pub(crate) fn check_surface_scope(&mut self, ctx: &egui::Context) {
        let Some(scope) = self.surface_scope.take() else {
            return;
        };
        let Some(err) = pollster::block_on(scope.pop()) else {
            self.race_grace = 0;
            return;
        };
        let text = err.to_string();
        if is_surface_wait_race(&text) {
            tracing::warn!("surface reconfiguration raced the training thread; retrying: {text}");
            self.race_grace = RACE_GRACE_FRAMES;
            ctx.request_repaint();
        } else if self.race_grace > 0 {
            tracing::debug!("frame dropped while the surface is reconfigured: {text}");
            self.race_grace -= 1;
            ctx.request_repaint();
        } else {
            tracing::error!("wgpu error in the viewer: {text}");
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(ViewerError::Gpu(text));
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// Frames after a lost surface-reconfiguration race whose wgpu errors only drop the frame.
const RACE_GRACE_FRAMES: u32 = 30;

/// Whether a wgpu error is `Surface::configure`'s `GpuWaitTimeout` (wgpu-core's
/// `ConfigureSurfaceError::GpuWaitTimeout`, reported as a validation error).
fn is_surface_wait_race(text: &str) -> bool {
    text.contains("Surface::configure") && text.contains("come idle")
}

#[cfg(test)]
mod tests {
    use super::is_surface_wait_race;

    /// wgpu 30 reports `ConfigureSurfaceError::GpuWaitTimeout` as a validation error whose text
    /// is `format_error` of `ContextError { fn_ident: "Surface::configure", … }`; only that one
    /// is tolerated, not another configuration error nor the same text from another call.
    #[test]
    fn only_the_surface_wait_race_is_tolerated() {
        let race = "Validation Error\n\nCaused by:\n  In Surface::configure\n    Failed to wait for GPU to come idle before reconfiguring the Surface\n";
        assert!(is_surface_wait_race(race));
        let zero = "Validation Error\n\nCaused by:\n  In Surface::configure\n    Both `Surface` width and height must be non-zero. Wait to recreate the `Surface` until the window has non-zero area.\n";
        assert!(!is_surface_wait_race(zero));
        let other = "Validation Error\n\nCaused by:\n  In Queue::submit\n    Buffer is destroyed\n";
        assert!(!is_surface_wait_race(other));
    }
}
