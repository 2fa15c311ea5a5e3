//! The training panel: progress, live plots, guidance view and run controls.

use egui::{Color32, Pos2, Rect, Stroke, Ui, Vec2};
use live::live::{Live, Snapshot, Status};

/// Colour of the loss curve (the screenshot test looks for it).
pub const LOSS_COLOUR: Color32 = Color32::from_rgb(255, 140, 0);
/// Colour of the PSNR curve.
pub const PSNR_COLOUR: Color32 = Color32::from_rgb(80, 200, 255);

/// Draw the panel for `snap`; buttons act on `live`.
pub fn training(ui: &mut Ui, live: &Live, snap: &Snapshot, guidance: Option<egui::TextureId>) {
    ui.heading(format!("Training: {}", snap.job));
    let status = match &snap.status {
        Status::Starting => "starting".to_string(),
        Status::Running => "running".to_string(),
        Status::Paused if live.holding() => format!("paused after step {}", snap.step),
        Status::Paused => "pausing after the current step".to_string(),
        Status::Finished => "finished".to_string(),
        Status::Stopped => "stopped (checkpoint saved)".to_string(),
        Status::Failed(m) => format!("failed: {m}"),
    };
    ui.label(format!("Status: {status}"));
    let frac = if snap.total > 0 {
        snap.step as f32 / snap.total as f32
    } else {
        0.0
    };
    ui.add(egui::ProgressBar::new(frac).text(format!("step {} / {}", snap.step, snap.total)));
    egui::Grid::new("stats").num_columns(2).show(ui, |ui| {
        ui.label("Splats");
        ui.label(format!("{}", snap.splats));
        ui.end_row();
        ui.label("Steps/s");
        ui.label(format!("{:.2}", snap.steps_per_s));
        ui.end_row();
        if snap.job == "fit" {
            ui.label("SH degree");
            ui.label(format!("{}", snap.sh_degree));
            ui.end_row();
        }
        if let Some(&[_, l]) = snap.loss.last() {
            ui.label("Loss");
            ui.label(format!("{l:.5}"));
            ui.end_row();
        }
        if let Some(&[_, p]) = snap.psnr.last() {
            ui.label("PSNR");
            ui.label(format!("{p:.2} dB"));
            ui.end_row();
        }
    });
    let running = matches!(
        snap.status,
        Status::Running | Status::Paused | Status::Starting
    );
    ui.add_enabled_ui(running, |ui| {
        ui.horizontal(|ui| {
            if live.paused() {
                if ui.button("Resume").clicked() {
                    live.set_paused(false);
                }
            } else if ui.button("Pause").clicked() {
                live.set_paused(true);
            }
            if ui.button("Save now").clicked() {
                live.request_save();
                live.message("checkpoint requested");
            }
            if ui.button("Stop").clicked() {
                live.request_stop();
                live.message("stop requested: saving a checkpoint");
            }
        });
    });
    ui.separator();
    ui.label("Loss");
    plot(ui, &snap.loss, LOSS_COLOUR, true);
    if snap.job == "fit" {
        ui.label("Validation PSNR (dB)");
        plot(ui, &snap.psnr, PSNR_COLOUR, false);
    }
    if let Some(g) = &snap.guidance {
        ui.separator();
        ui.label(format!(
            "Guidance view: step {}, t = {:.0}, azimuth {:.0}°, elevation {:.0}°",
            g.step, g.timestep, g.azimuth_deg, g.elevation_deg
        ));
        if let Some(id) = guidance {
            let side = ui.available_width().min(256.0);
            ui.image(egui::load::SizedTexture::new(id, [side, side]));
        }
    }
    if !snap.messages.is_empty() {
        ui.separator();
        for m in &snap.messages {
            ui.small(m);
        }
    }
}

/// A line plot of `(x, y)` points (log y for the loss), with its range printed.
fn plot(ui: &mut Ui, points: &[[f64; 2]], colour: Color32, log_y: bool) {
    let width = ui.available_width().max(100.0);
    let (rect, _) = ui.allocate_exact_size(Vec2::new(width, 110.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let ys: Vec<f64> = points
        .iter()
        .map(|p| if log_y { p[1].max(1e-12).log10() } else { p[1] })
        .collect();
    if points.len() == 1 {
        painter.circle_filled(rect.center(), 3.0, colour);
        painter.text(
            rect.center() + Vec2::new(0.0, 8.0),
            egui::Align2::CENTER_TOP,
            format!("{:.4} at step {}", points[0][1], points[0][0]),
            egui::FontId::monospace(10.0),
            Color32::GRAY,
        );
        return;
    }
    if points.is_empty() {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no data yet",
            egui::FontId::proportional(12.0),
            Color32::GRAY,
        );
        return;
    }
    let (x0, x1) = (
        points[0][0],
        points[points.len() - 1][0].max(points[0][0] + 1.0),
    );
    let (mut y0, mut y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if y1 - y0 < 1e-9 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let inner = rect.shrink(6.0);
    let to_screen = |x: f64, y: f64| -> Pos2 {
        Pos2::new(
            inner.left() + ((x - x0) / (x1 - x0)) as f32 * inner.width(),
            inner.bottom() - ((y - y0) / (y1 - y0)) as f32 * inner.height(),
        )
    };
    // At most ~2 points per horizontal pixel.
    let stride = (points.len() / (2 * inner.width() as usize).max(1)).max(1);
    let line: Vec<Pos2> = points
        .iter()
        .zip(&ys)
        .step_by(stride)
        .map(|(p, &y)| to_screen(p[0], y))
        .collect();
    painter.add(egui::Shape::line(line, Stroke::new(2.0, colour)));
    let fmt = |y: f64| if log_y { 10f64.powf(y) } else { y };
    painter.text(
        Rect::from_min_max(inner.min, inner.max).left_top(),
        egui::Align2::LEFT_TOP,
        format!("{:.4}", fmt(y1)),
        egui::FontId::monospace(10.0),
        Color32::GRAY,
    );
    painter.text(
        inner.left_bottom(),
        egui::Align2::LEFT_BOTTOM,
        format!("{:.4}", fmt(y0)),
        egui::FontId::monospace(10.0),
        Color32::GRAY,
    );
}
