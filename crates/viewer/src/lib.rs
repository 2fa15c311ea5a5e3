//! The splatdream viewer: an eframe/egui window on the **same** wgpu device as burn and the
//! splat kernels (`egui_wgpu::WgpuSetup::Existing` with the handles of [`gpu::GpuContext`]).
//!
//! Each redraw renders the scene with [`splat::render::render`] on the device and turns the
//! rasterizer output into an egui texture with a compute kernel ([`blit`]), so the splats
//! never visit the CPU. A viewer shows either a fixed scene (`splatdream view scene.ply`) or a
//! training run ([`live::live`]): then training runs on its own thread and the UI draws the
//! latest snapshot it offered, re-rendering only when the snapshot, the camera or a setting
//! changed and redrawing at most [`LIVE_REPAINT`] apart.
//!
//! Layout: a top bar (render mode, SH degree, background, navigation), the scene in the middle
//! (orbit: left drag, right/middle drag pans, wheel zooms; fly: left drag looks, W/A/S/D/Q/E
//! move, wheel sets the speed) and, for a run, a training panel on the right (progress, loss
//! and PSNR plots, splat count, step rate, `generate`'s guidance view and timestep, and
//! pause/resume, save-now and stop).

pub mod blit;
pub mod camera;
mod panel;
mod surface;

/// The display kernel, composed from `shaders/` by `build.rs` (plus the generated mirrors of
/// `shaders/lib/types.wgsl`, unused here).
#[allow(dead_code)]
mod kernels {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use glam::Vec3;
use gpu::GpuContext;
use live::live::{Live, Snapshot};
use splat::render::{RenderOptions, render};
use splat::scene::Splats;

use blit::{Blit, BlitMode};
use camera::{Navigation, ViewCamera};

/// Longest time between redraws while watching a run.
pub const LIVE_REPAINT: Duration = Duration::from_millis(200);

/// Between two redraws caused only by a new training snapshot, the viewer waits this many
/// times the last render's duration, measured from submission to the queue reporting it done
/// (so it takes at most about 1/10 of the device's time while the camera is still; moving the
/// camera or changing a setting redraws at once).
pub const SCENE_RENDER_GAP: u32 = 9;

/// What the viewer shows (one value per window, so the size difference of the variants does
/// not matter).
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A fixed scene (plain device tensors), framed by `centre` and `radius` (world units).
    Scene {
        /// The splats.
        splats: Splats,
        /// Where to look.
        centre: Vec3,
        /// Scene radius (sets the initial distance).
        radius: f32,
    },
    /// A training run.
    Live(Arc<Live>),
}

/// A screenshot taken by the viewer itself (used by tests and for documentation): after
/// `after_frames` frames — and for a run, once `min_step` steps are done — the window's pixels
/// are saved as PNG to `path`, a JSON sidecar `path.json` records what was on screen
/// (frame, step, total, splats, loss points, the scene and panel rectangles in pixels), and
/// the window closes. A run keeps training after its window closes.
#[derive(Clone, Debug)]
pub struct Screenshot {
    /// PNG output path.
    pub path: PathBuf,
    /// Frames to draw first (≥ 1).
    pub after_frames: u64,
    /// For a run: completed steps to wait for.
    pub min_step: u64,
}

/// Viewer settings.
#[derive(Clone, Debug)]
pub struct ViewerOptions {
    /// Window title.
    pub title: String,
    /// Window inner size in logical points.
    pub window: [f32; 2],
    /// Background colour, sRGB in [0, 1].
    pub background: [f32; 3],
    /// World up for the initial view (for runs with cameras it is derived from them).
    pub up: Vec3,
    /// Longest side of the rendered image in pixels (the texture is scaled to the panel).
    pub max_side: u32,
    /// The same while a run is training (paused or finished runs use `max_side`).
    pub training_max_side: u32,
    /// Take a screenshot and close.
    pub screenshot: Option<Screenshot>,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        Self {
            title: "splatdream".into(),
            window: [1024.0, 640.0],
            background: [0.0; 3],
            up: -Vec3::Y,
            max_side: 1600,
            training_max_side: 640,
            screenshot: None,
        }
    }
}

/// Errors of [`run`].
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The window could not be opened (no display, no suitable surface).
    #[error(
        "could not open the viewer window: {0} (is a display available? Under a headless machine use `xvfb-run -a splatdream …`)"
    )]
    Window(String),
    /// The window's GPU work (egui's painting, the surface) reported a wgpu error.
    #[error("the viewer's GPU work failed: {0}")]
    Gpu(String),
    /// The screenshot could not be written.
    #[error("{path}: could not write the screenshot: {message}")]
    Screenshot {
        /// The PNG path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// What a frame shows, for re-rendering only on change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderMode {
    /// Colour.
    Rgb,
    /// Expected depth.
    Depth,
    /// Accumulated opacity.
    Alpha,
    /// Each splat as a small opaque dot at its mean.
    Centres,
}

#[derive(Clone, Debug, PartialEq)]
struct RenderKey {
    camera: ViewCamera,
    size: [u32; 2],
    mode: RenderMode,
    sh_degree: u32,
    background: [f32; 3],
    version: u64,
}

/// Open the viewer window and block until it is closed.
///
/// # Errors
/// [`ViewerError::Window`] when no window can be opened, [`ViewerError::Screenshot`] when a
/// requested screenshot cannot be written.
pub fn run(gpu: &GpuContext, source: Source, opts: ViewerOptions) -> Result<(), ViewerError> {
    let native = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title(opts.title.clone())
            .with_inner_size(opts.window),
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: egui_wgpu::WgpuSetup::Existing(egui_wgpu::WgpuSetupExisting {
                instance: gpu.instance.clone(),
                adapter: gpu.adapter.clone(),
                device: gpu.device.clone(),
                queue: gpu.queue.clone(),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let failure: Arc<Mutex<Option<ViewerError>>> = Arc::default();
    let fail = failure.clone();
    let gpu = gpu.clone();
    let title = opts.title.clone();
    eframe::run_native(
        &title,
        native,
        Box::new(move |_cc| {
            // eframe calls this after the window's surface is configured: the run may start.
            if let Source::Live(l) = &source {
                l.set_front_end_ready();
            }
            Ok(Box::new(App::new(gpu, source, opts, fail)))
        }),
    )
    .map_err(|e| ViewerError::Window(e.to_string()))?;
    match failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct App {
    gpu: GpuContext,
    source: Source,
    opts: ViewerOptions,
    blit: Blit,
    texture: Option<egui::TextureId>,
    guidance_blit: Blit,
    guidance_texture: Option<egui::TextureId>,
    guidance_step: u64,
    camera: Option<ViewCamera>,
    home: Option<ViewCamera>,
    mode: RenderMode,
    sh_degree: u32,
    background: [f32; 3],
    last: Option<RenderKey>,
    centres: Option<(u64, Splats)>,
    render_ms: f64,
    render_started: Instant,
    render_done: Arc<Mutex<Option<Instant>>>,
    error: Option<String>,
    frames: u64,
    shot: ShotState,
    failure: Arc<Mutex<Option<ViewerError>>>,
    /// The main thread's wgpu error scope over egui's painting and window events (surface
    /// reconfiguration on resize), from the end of one frame's `ui` to the start of the next.
    surface_scope: Option<wgpu::ErrorScopeGuard>,
    /// Frames left in which errors follow a lost reconfiguration race (see
    /// [`App::check_surface_scope`]).
    race_grace: u32,
    live: Snapshot,
    scene_rect: egui::Rect,
    panel_rect: Option<egui::Rect>,
}

#[derive(Clone, Debug, PartialEq)]
enum ShotState {
    None,
    Waiting,
    Requested,
    Done,
}

impl App {
    fn new(
        gpu: GpuContext,
        source: Source,
        opts: ViewerOptions,
        failure: Arc<Mutex<Option<ViewerError>>>,
    ) -> Self {
        let blit = Blit::new(&gpu.device);
        let guidance_blit = Blit::new(&gpu.device);
        let home = match &source {
            Source::Scene { centre, radius, .. } => Some(initial_view(*centre, *radius, opts.up)),
            Source::Live(_) => None,
        };
        let sh_degree = match &source {
            Source::Scene { splats, .. } => splats.sh_degree,
            Source::Live(_) => 3,
        };
        Self {
            shot: if opts.screenshot.is_some() {
                ShotState::Waiting
            } else {
                ShotState::None
            },
            background: opts.background,
            gpu,
            source,
            blit,
            texture: None,
            guidance_blit,
            guidance_texture: None,
            guidance_step: 0,
            camera: home.clone(),
            home,
            mode: RenderMode::Rgb,
            sh_degree,
            last: None,
            centres: None,
            render_ms: 0.0,
            render_started: Instant::now(),
            render_done: Arc::new(Mutex::new(Some(Instant::now()))),
            error: None,
            frames: 0,
            failure,
            surface_scope: None,
            race_grace: 0,
            live: Snapshot::default(),
            scene_rect: egui::Rect::NOTHING,
            panel_rect: None,
            opts,
        }
    }

    /// The scene to draw and its version.
    fn scene(&self) -> Option<(Splats, u64)> {
        match &self.source {
            Source::Scene { splats, .. } => Some((splats.clone(), 0)),
            Source::Live(_) => self
                .live
                .scene
                .clone()
                .map(|s| (s, self.live.scene_version)),
        }
    }

    /// For a run: frame the scene once, from the training cameras (fit) or the origin
    /// (generate: objects at the origin, z up).
    fn frame_live_scene(&mut self) {
        if self.camera.is_some() || self.live.scene.is_none() {
            return;
        }
        let home = if let Some(f) = splat::framing::Framing::of(&self.live.cameras) {
            let cam0 = self.live.cameras[0].position();
            ViewCamera::looking_at(f.centre, cam0 - f.centre, f.radius, f.up)
        } else if self.live.job == "generate" {
            ViewCamera::looking_at(Vec3::ZERO, Vec3::new(1.0, 0.3, 0.4), 4.0, Vec3::Z)
        } else {
            initial_view(Vec3::ZERO, 1.0, self.opts.up)
        };
        self.camera = Some(home.clone());
        self.home = Some(home);
    }

    fn image_for(
        &mut self,
        splats: &Splats,
        version: u64,
        cam: &ViewCamera,
        size: [u32; 2],
    ) -> Result<Tensor<3>, String> {
        let splats = if self.mode == RenderMode::Centres {
            if self.centres.as_ref().is_none_or(|c| c.0 != version) {
                self.centres = Some((version, centre_dots(splats, cam.distance)));
            }
            self.centres
                .as_ref()
                .map(|c| c.1.clone())
                .expect("set above")
        } else {
            splats.clone()
        };
        let opts = RenderOptions {
            background: self.background,
            sh_degree: Some(self.sh_degree.min(splats.sh_degree)),
            ..Default::default()
        };
        let out =
            render(&splats, &[cam.camera(size[0], size[1])], &opts).map_err(|e| e.to_string())?;
        let (w, h) = (size[0] as usize, size[1] as usize);
        let rgb = out.rgb.reshape([h, w, 3]);
        let alpha = out.alpha.reshape([h, w, 1]);
        let depth = out.depth.reshape([h, w, 1]);
        Ok(match self.mode {
            RenderMode::Rgb | RenderMode::Centres => Tensor::cat(vec![rgb, alpha], 2),
            RenderMode::Depth => Tensor::cat(vec![depth, alpha.clone(), alpha.clone(), alpha], 2),
            RenderMode::Alpha => {
                Tensor::cat(vec![alpha.clone(), alpha.clone(), alpha.clone(), alpha], 2)
            }
        })
    }

    /// Re-render the scene into the texture when something changed.
    fn update_texture(&mut self, frame: &eframe::Frame, size: [u32; 2]) {
        let (Some((splats, version)), Some(cam)) = (self.scene(), self.camera.clone()) else {
            return;
        };
        let key = RenderKey {
            camera: cam.clone(),
            size,
            mode: self.mode,
            sh_degree: self.sh_degree,
            background: self.background,
            version,
        };
        if self.last.as_ref() == Some(&key) {
            return;
        }
        // Only a new training snapshot: keep the viewer's share of the device to about
        // 1/(1 + SCENE_RENDER_GAP) by waiting that many render times between such redraws.
        let only_version = self.last.as_ref().is_some_and(|l| {
            RenderKey {
                version,
                ..l.clone()
            } == key
        });
        if only_version {
            // The previous render's device time, once the queue reports it done.
            let done = *self.render_done.lock().unwrap_or_else(|e| e.into_inner());
            match done {
                Some(end) => {
                    let took = end.saturating_duration_since(self.render_started);
                    self.render_ms = took.as_secs_f64() * 1e3;
                    let next = end + (took * SCENE_RENDER_GAP).max(LIVE_REPAINT);
                    if Instant::now() < next {
                        return;
                    }
                }
                None => return,
            }
        }
        let t0 = Instant::now();
        let result = self
            .image_for(&splats, version, &cam, size)
            .and_then(|image| {
                let blit_mode = match self.mode {
                    RenderMode::Rgb | RenderMode::Centres => BlitMode::Rgb,
                    RenderMode::Depth => BlitMode::Depth,
                    RenderMode::Alpha => BlitMode::Alpha,
                };
                let span = cam.distance.max(1e-3);
                self.blit
                    .draw(
                        &self.gpu.device,
                        &self.gpu.queue,
                        image,
                        blit_mode,
                        (cam.distance - span).max(0.0),
                        cam.distance + span,
                        self.background,
                    )
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(fresh) => {
                self.error = None;
                if let (Some(rs), Some(t)) = (frame.wgpu_render_state(), self.blit.target()) {
                    register(rs, &t.view, fresh, &mut self.texture);
                }
            }
            Err(e) => self.error = Some(e),
        }
        self.render_started = t0;
        let done = self.render_done.clone();
        *done.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.gpu.queue.on_submitted_work_done(move || {
            *done.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        });
        self.last = Some(key);
    }

    /// `generate`'s guidance view into its own texture when a new one arrived.
    fn update_guidance(&mut self, frame: &eframe::Frame) {
        let Some(g) = self.live.guidance.clone() else {
            return;
        };
        if g.step == self.guidance_step && self.guidance_texture.is_some() {
            return;
        }
        self.guidance_step = g.step;
        let [h, w, _] = g.image.dims();
        let ones = Tensor::<3>::ones([h, w, 1], &g.image.device());
        let image = Tensor::cat(vec![g.image, ones], 2);
        match self.guidance_blit.draw(
            &self.gpu.device,
            &self.gpu.queue,
            image,
            BlitMode::Rgb,
            0.0,
            1.0,
            [0.0; 3],
        ) {
            Ok(fresh) => {
                if let (Some(rs), Some(t)) =
                    (frame.wgpu_render_state(), self.guidance_blit.target())
                {
                    register(rs, &t.view, fresh, &mut self.guidance_texture);
                }
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Render:");
            for (m, name) in [
                (RenderMode::Rgb, "RGB"),
                (RenderMode::Depth, "Depth"),
                (RenderMode::Alpha, "Alpha"),
                (RenderMode::Centres, "Centres"),
            ] {
                ui.selectable_value(&mut self.mode, m, name);
            }
            ui.separator();
            ui.add(egui::Slider::new(&mut self.sh_degree, 0..=3).text("SH degree"));
            ui.separator();
            ui.label("Background");
            ui.color_edit_button_rgb(&mut self.background);
            ui.separator();
            if let Some(cam) = &mut self.camera {
                ui.selectable_value(&mut cam.navigation, Navigation::Orbit, "Orbit");
                ui.selectable_value(&mut cam.navigation, Navigation::Fly, "Fly");
            }
            if ui.button("Reset view").clicked() {
                self.camera = self.home.clone();
            }
            ui.separator();
            ui.label(format!("{:.1} ms/render", self.render_ms));
        });
    }

    fn scene_panel(&mut self, ui: &mut egui::Ui, frame: &eframe::Frame) {
        let rect = ui.available_rect_before_wrap();
        self.scene_rect = rect;
        let response = ui.allocate_rect(rect, egui::Sense::click_and_drag());
        let ppp = ui.ctx().pixels_per_point();
        let mut size = [
            (rect.width() * ppp).round().max(1.0),
            (rect.height() * ppp).round().max(1.0),
        ];
        let longest = size[0].max(size[1]);
        let training = matches!(&self.source, Source::Live(l) if !l.paused())
            && matches!(self.live.status, live::live::Status::Running);
        let cap = if training {
            self.opts.training_max_side.min(self.opts.max_side)
        } else {
            self.opts.max_side
        } as f32;
        if longest > cap {
            let k = cap / longest;
            size = [
                (size[0] * k).round().max(1.0),
                (size[1] * k).round().max(1.0),
            ];
        }
        if let Some(cam) = &mut self.camera {
            let h = rect.height().max(1.0);
            let d = response.drag_delta();
            if response.dragged_by(egui::PointerButton::Primary) {
                cam.rotate(d.x, d.y, h);
            } else if response.dragged_by(egui::PointerButton::Secondary)
                || response.dragged_by(egui::PointerButton::Middle)
            {
                cam.pan(d.x, d.y, h);
            }
            if response.hovered() {
                let (scroll, dt, keys) = ui.input(|i| {
                    let k = |key| if i.key_down(key) { 1.0 } else { 0.0 };
                    (
                        i.smooth_scroll_delta.y,
                        i.stable_dt.min(0.1),
                        Vec3::new(
                            k(egui::Key::D) - k(egui::Key::A),
                            k(egui::Key::E) - k(egui::Key::Q),
                            k(egui::Key::W) - k(egui::Key::S),
                        ),
                    )
                });
                if scroll != 0.0 {
                    cam.scroll(scroll / 50.0);
                }
                if cam.navigation == Navigation::Fly && keys != Vec3::ZERO {
                    cam.fly(keys, dt);
                    ui.ctx().request_repaint();
                }
            }
        }
        self.update_texture(frame, [size[0] as u32, size[1] as u32]);
        let painter = ui.painter_at(rect);
        let bg = egui::Color32::from_rgb(
            (self.background[0] * 255.0) as u8,
            (self.background[1] * 255.0) as u8,
            (self.background[2] * 255.0) as u8,
        );
        painter.rect_filled(rect, 0.0, bg);
        if let Some(id) = self.texture {
            painter.image(
                id,
                rect,
                egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                egui::Color32::WHITE,
            );
        } else {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "waiting for the first scene…",
                egui::FontId::proportional(16.0),
                egui::Color32::GRAY,
            );
        }
        if let Some(e) = &self.error {
            painter.text(
                rect.left_top() + egui::vec2(8.0, 8.0),
                egui::Align2::LEFT_TOP,
                e,
                egui::FontId::proportional(14.0),
                egui::Color32::RED,
            );
        }
    }

    /// Screenshot automation (see [`Screenshot`]).
    fn screenshot(&mut self, ui: &mut egui::Ui) {
        let Some(shot) = self.opts.screenshot.clone() else {
            return;
        };
        let ctx = ui.ctx().clone();
        if self.shot == ShotState::Waiting {
            // A run repaints on its own schedule; a fixed scene needs frames to count.
            match &self.source {
                Source::Live(_) => ctx.request_repaint_after(LIVE_REPAINT),
                Source::Scene { .. } => ctx.request_repaint(),
            }
            let live_ready = match &self.source {
                Source::Live(_) => {
                    self.live.step >= shot.min_step
                        && self.texture.is_some()
                        && !self.live.loss.is_empty()
                }
                Source::Scene { .. } => self.texture.is_some(),
            };
            if self.frames >= shot.after_frames.max(1) && live_ready {
                self.shot = ShotState::Requested;
                let ppp = ctx.pixels_per_point();
                let px =
                    |r: egui::Rect| [r.min.x * ppp, r.min.y * ppp, r.max.x * ppp, r.max.y * ppp];
                let sidecar = serde_json::json!({
                    "frame": self.frames,
                    "job": self.live.job,
                    "step": self.live.step,
                    "total": self.live.total,
                    "splats": match &self.source {
                        Source::Scene { splats, .. } => splats.len(),
                        Source::Live(_) => self.live.splats,
                    },
                    "loss_points": self.live.loss.len(),
                    "psnr_points": self.live.psnr.len(),
                    "status": format!("{:?}", self.live.status),
                    "scene_rect": px(self.scene_rect),
                    "panel_rect": self.panel_rect.map(px),
                    "background": self.background,
                    "loss_colour": panel::LOSS_COLOUR.to_array(),
                    "pixels_per_point": ppp,
                });
                let failure = self.failure.clone();
                let ctx2 = ctx.clone();
                ctx.request_screenshot(move |image| {
                    if let Err(message) = save_screenshot(&shot.path, &image, &sidecar) {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(ViewerError::Screenshot {
                                path: shot.path.clone(),
                                message,
                            });
                    }
                    ctx2.send_viewport_cmd(egui::ViewportCommand::Close);
                });
            }
        } else if self.shot == ShotState::Requested {
            ctx.request_repaint_after(LIVE_REPAINT);
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.check_surface_scope(ui.ctx());
        self.frames += 1;
        if let Source::Live(live) = &self.source {
            self.live = live.snapshot();
            self.frame_live_scene();
            ui.ctx().request_repaint_after(LIVE_REPAINT);
        }
        egui::Panel::top("settings").show(ui, |ui| self.top_bar(ui));
        if let Source::Live(live) = &self.source {
            let live = live.clone();
            self.update_guidance(frame);
            let r = egui::Panel::right("training")
                .resizable(true)
                .default_size(320.0)
                .show(ui, |ui| {
                    egui::ScrollArea::vertical().show(ui, |ui| {
                        panel::training(ui, &live, &self.live, self.guidance_texture)
                    })
                });
            self.panel_rect = Some(r.response.rect);
        }
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| self.scene_panel(ui, frame));
        self.screenshot(ui);
        if self.shot == ShotState::Requested
            && self.frames > self.opts.screenshot.as_ref().map_or(0, |s| s.after_frames) + 600
        {
            // The integration never answered; give up rather than hang a test.
            self.shot = ShotState::Done;
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
        // Errors of this frame's painting and of the window events before the next frame
        // (a resize reconfigures the surface there) go to this scope, not to the device's
        // uncaptured-error handler.
        self.surface_scope = Some(
            self.gpu
                .device
                .push_error_scope(wgpu::ErrorFilter::Validation),
        );
    }
}

/// Register (or re-point) an egui texture id at a native texture view.
fn register(
    rs: &egui_wgpu::RenderState,
    view: &wgpu::TextureView,
    fresh: bool,
    id: &mut Option<egui::TextureId>,
) {
    let mut renderer = rs.renderer.write();
    match *id {
        Some(existing) if fresh => renderer.update_egui_texture_from_wgpu_texture(
            &rs.device,
            view,
            wgpu::FilterMode::Linear,
            existing,
        ),
        Some(_) => {}
        None => {
            *id = Some(renderer.register_native_texture(&rs.device, view, wgpu::FilterMode::Linear))
        }
    }
}

/// The initial orbit: looking at `centre` from 20° above, at a distance that fits `radius`
/// in a 50° field of view.
fn initial_view(centre: Vec3, radius: f32, up: Vec3) -> ViewCamera {
    let up = up.normalize_or(Vec3::Z);
    let side = if up.x.abs() < 0.9 { Vec3::X } else { Vec3::Y };
    let a = up.cross(side).normalize();
    let e = 20f32.to_radians();
    let from = a * e.cos() + up * e.sin();
    let distance = radius.max(1e-3) / 25f32.to_radians().tan() * 1.1;
    ViewCamera::looking_at(centre, from, distance, up)
}

/// The scene as small opaque dots at the splat means (`Centres` mode): isotropic scales of
/// 0.4 % of the viewing distance and opacity logit 6, colours kept (device-side, no copy).
fn centre_dots(s: &Splats, distance: f32) -> Splats {
    let scale = (distance * 0.004).max(1e-6).ln();
    Splats {
        means: s.means.clone(),
        quats: s.quats.clone(),
        log_scales: s.log_scales.zeros_like() + scale,
        opacity_logits: s.opacity_logits.zeros_like() + 6.0,
        sh: s.sh.clone(),
        sh_degree: s.sh_degree,
    }
}

/// Write the screenshot atomically (temp file + rename) and its JSON sidecar.
fn save_screenshot(
    path: &std::path::Path,
    image: &egui::ColorImage,
    sidecar: &serde_json::Value,
) -> Result<(), String> {
    let [w, h] = image.size;
    let mut rgba = Vec::with_capacity(w * h * 4);
    for p in &image.pixels {
        rgba.extend_from_slice(&p.to_array());
    }
    let img = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| "screenshot size does not match its pixels".to_string())?;
    files::write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
    .map_err(|e| e.to_string())?;
    let mut side = sidecar.clone();
    side["width"] = w.into();
    side["height"] = h.into();
    let json_path = PathBuf::from(format!("{}.json", path.display()));
    let text = serde_json::to_string_pretty(&side).map_err(|e| e.to_string())?;
    files::write_bytes(&json_path, text.as_bytes()).map_err(|e| e.to_string())
}
