//! From a rasterizer image on the device to the texture egui draws, with no CPU copy: the
//! real `wgpu::Buffer` behind the burn tensor is bound to a small compute kernel
//! (`shaders/viewer_blit.wgsl`) that writes an `rgba8unorm` storage texture (sRGB-encoded values, as egui expects), submitted on the
//! one shared queue after burn's pending work.

use std::num::NonZeroU64;

use burn::backend::wgpu::{AutoCompiler, CubeBackend, CubeTensor};
use burn::tensor::{DType, Tensor};
use cubecl::wgpu::WgpuServer;

/// The image handed to [`Blit::draw`] cannot be drawn (wrong shape or dtype, not on burn's
/// wgpu backend, or its buffer unreachable); the text says which.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BlitError(pub String);

/// Texture format of the viewer image: egui-wgpu's native-texture format (it treats the values
/// as gamma-encoded), and a storage format every WebGPU device supports.
pub const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// What the display kernel shows (its `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlitMode {
    /// Channels 0..2 as sRGB colour.
    Rgb = 0,
    /// Expected depth from channel 0 (Σ zᵢαᵢTᵢ) and channel 1 (alpha), colour ramp.
    Depth = 1,
    /// Channel 0 as grey.
    Alpha = 2,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    mode: u32,
    _pad: u32,
    near: f32,
    far: f32,
    _pad1: [f32; 2],
    background: [f32; 4],
}

/// The display kernel and its output texture.
pub struct Blit {
    pipeline: wgpu::ComputePipeline,
    params: wgpu::Buffer,
    target: Option<Target>,
}

/// The output texture of one size.
pub struct Target {
    /// The texture (`FORMAT`, storage + sampled).
    pub texture: wgpu::Texture,
    /// Its view (what egui registers).
    pub view: wgpu::TextureView,
    /// `[width, height]` in pixels.
    pub size: [u32; 2],
}

impl Blit {
    /// Compile the kernel on `device`.
    pub fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("viewer_blit"),
            source: wgpu::ShaderSource::Wgsl(crate::kernels::VIEWER_BLIT.main.source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("viewer_blit"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("viewer_blit params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            pipeline,
            params,
            target: None,
        }
    }

    /// The current output texture, if any image was drawn.
    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// Draw `image` (`[H, W, 4]` f32, plain (non-autodiff) tensor on the wgpu device whose
    /// handles are `device`/`queue`) into the output texture, recreating it when the size
    /// changed. Returns `true` when the texture is new (the caller re-registers it with egui).
    ///
    /// `near`/`far` bound the depth ramp (camera-space z, world units); `background` is the
    /// sRGB colour of empty pixels in depth mode.
    ///
    /// # Errors
    /// [`BlitError`] when the tensor is not a `[H, W, 4]` f32 tensor on burn's wgpu backend or its
    /// buffer cannot be reached.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        image: Tensor<3>,
        mode: BlitMode,
        near: f32,
        far: f32,
        background: [f32; 3],
    ) -> Result<bool, BlitError> {
        let [h, w, c] = image.dims();
        if c != 4 || image.dtype() != DType::F32 {
            return Err(BlitError(format!(
                "viewer image is {:?} {:?}, expected [H, W, 4] F32",
                image.dims(),
                image.dtype()
            )));
        }
        let (w, h) = (w as u32, h as u32);
        let ct: CubeTensor = image
            .try_into_primitive::<CubeBackend>()
            .map_err(|e| BlitError(format!("viewer image is not on the wgpu backend: {e:?}")))?;
        // `cat`/arithmetic outputs are contiguous; make sure (a no-op then).
        let ct = burn::backend::wgpu::into_contiguous(ct);
        let bytes = (w as u64) * (h as u64) * 16;
        let resource = ct
            .client
            .get_resource::<WgpuServer<AutoCompiler>>(ct.handle.clone())
            .map_err(|e| BlitError(format!("viewer image buffer: {e:?}")))?;
        // Burn's queued work (the render) goes onto the shared queue before ours.
        ct.client
            .flush()
            .map_err(|e| BlitError(format!("flushing the render: {e:?}")))?;
        let r = resource.resource();
        if r.size < bytes {
            return Err(BlitError(format!(
                "viewer image buffer holds {} bytes, {bytes} needed",
                r.size
            )));
        }

        let mut fresh = false;
        if self.target.as_ref().is_none_or(|t| t.size != [w, h]) {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("viewer image"),
                size: wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: FORMAT,
                usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            });
            let view = texture.create_view(&Default::default());
            self.target = Some(Target {
                texture,
                view,
                size: [w, h],
            });
            fresh = true;
        }
        let target = self.target.as_ref().expect("created above");
        let p = Params {
            width: w,
            height: h,
            mode: mode as u32,
            _pad: 0,
            near,
            far,
            _pad1: [0.0; 2],
            background: [background[0], background[1], background[2], 1.0],
        };
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&p));
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("viewer_blit"),
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    // Only this tensor's bytes of the pool page.
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &r.buffer,
                        offset: r.offset,
                        size: NonZeroU64::new(bytes),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&target.view),
                },
            ],
        });
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("viewer_blit"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("viewer_blit"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            // SAFETY (bounds): the kernel returns for gid outside width × height, and reads
            // `image[(y·W + x)·4 + k]`, k < 4, inside the `bytes` = W·H·16 bound bound above
            // (checked against the resource size); every texel inside is written.
            pass.dispatch_workgroups(w.div_ceil(16), h.div_ceil(16), 1);
        }
        queue.submit([enc.finish()]);
        // The allocation stays pinned until our work is queued; later burn work that reuses
        // it is submitted after ours on the same queue.
        drop(resource);
        drop(ct);
        Ok(fresh)
    }
}
