//! The SSIM map as one fused WGSL kernel pair (forward and backward), registered as a burn
//! backend extension with a hand-written autodiff backward, in the manner of the CUDA
//! "fused-ssim" kernels that gsplat-based trainers use: the five Gaussian blurs, the SSIM formula
//! and its derivative run in two launches per call instead of two separable convolutions and
//! a score of element-wise ops (each a launch and a pass over the image).
//!
//! The definition is 3DGS's `ssim()` (Wang et al. 2004 with an 11×11 Gaussian window,
//! σ = 1.5, zero padding); [`crate::loss::ssim`] averages the map. Kernels:
//! `shaders/ssim_forward.wgsl` and `shaders/ssim_backward.wgsl`.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};
use burn::backend::{backend_extension, tensor::FloatTensor};
use burn::tensor::{DType, Shape};
use cubecl::CubeCount;
use cubecl::server::Handle;
use gpu::alloc;
use gpu::launch::launch;

use crate::kernels::{self as k, SsimParams};

/// Side of the Gaussian SSIM window (Wang et al. 2004; 3DGS `ssim()` uses 11, σ = 1.5).
pub const SSIM_WINDOW: usize = 11;
/// σ of the Gaussian SSIM window in pixels.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM stabilisers C₁ = (0.01·L)², C₂ = (0.03·L)² with dynamic range L = 1.
pub(crate) const SSIM_C1: f64 = 0.01 * 0.01;
pub(crate) const SSIM_C2: f64 = 0.03 * 0.03;

/// The normalised 1-D Gaussian window (`SSIM_WINDOW` taps, σ = `SSIM_SIGMA`); the 2-D window
/// is its outer product.
pub(crate) fn gaussian_window() -> Vec<f32> {
    let half = (SSIM_WINDOW / 2) as f64;
    let w: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| (v / s) as f32).collect()
}

/// Output tile side of the SSIM kernels (fixed by the kernels).
const TILE: usize = 16;

/// The SSIM map as a burn backend extension.
#[backend_extension(Cube, Autodiff)]
pub trait SsimBackend: burn::backend::Backend {
    /// Per-pixel, per-channel SSIM of the render `a` against the target `b`, both
    /// `[C, H, W, ch]` float32 (channel-last, values in [0, 1]); returns `[C, H, W, ch]`.
    /// Differentiable in `a` only: `b` is treated as a constant (the photograph), and no
    /// gradient flows into it even if it is tracked.
    fn ssim_map(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// The kernels behind [`SsimBackend`] (implemented for [`CubeBackend`]); the autodiff wrapper
/// keeps [`SsimKernels::State`] from forward to backward.
pub trait SsimKernels: burn::backend::Backend {
    /// What the backward needs: the inputs and the forward's partial derivatives.
    type State: Clone + Send + std::fmt::Debug + 'static;
    /// The SSIM map and the backward state.
    fn ssim_forward(
        a: Self::FloatTensorPrimitive,
        b: Self::FloatTensorPrimitive,
    ) -> (Self::FloatTensorPrimitive, Self::State);
    /// dL/da from dL/d(map), both `[C, H, W, ch]`.
    fn ssim_backward(
        state: Self::State,
        v_map: Self::FloatTensorPrimitive,
    ) -> Self::FloatTensorPrimitive;
}

/// Backward state on the cubecl backend.
#[derive(Clone, Debug)]
pub struct SsimState {
    a: CubeTensor,
    b: CubeTensor,
    params: SsimParams,
    /// ∂S/∂(G∗a), ∂S/∂(G∗a²), ∂S/∂(G∗ab), each `[C, H, W, ch]`.
    partials: [Handle; 3],
}

/// The launch grid: one workgroup per 16×16 tile of every (image, channel) plane.
fn grid(p: &SsimParams) -> CubeCount {
    CubeCount::Static(
        (p.width as usize).div_ceil(TILE) as u32,
        (p.height as usize).div_ceil(TILE) as u32,
        p.images * p.channels,
    )
}

fn window(client: &cubecl::client::Client) -> Handle {
    alloc::upload(client, &gaussian_window())
}

impl SsimKernels for CubeBackend {
    type State = SsimState;

    fn ssim_forward(a: CubeTensor, b: CubeTensor) -> (CubeTensor, SsimState) {
        let a = into_contiguous(a);
        let b = into_contiguous(b);
        debug_assert_eq!(a.dtype, DType::F32, "ssim_map: float32 images");
        let shape = a.meta.shape().clone();
        let dims: [usize; 4] = shape.dims();
        debug_assert_eq!(b.meta.shape().dims::<4>(), dims, "ssim_map: shapes differ");
        let [images, height, width, channels] = dims;
        let params = SsimParams {
            images: images as u32,
            height: height as u32,
            width: width as u32,
            channels: channels as u32,
            c_luminance: SSIM_C1 as f32,
            c_contrast: SSIM_C2 as f32,
            ..Default::default()
        };
        let client = a.client.clone();
        let bytes = shape.num_elements() * 4;
        let map = alloc::empty(&client, bytes);
        let partials = [0, 1, 2].map(|_| alloc::empty(&client, bytes));
        // SAFETY: the grid covers every 16×16 tile of every (image, channel) plane (z <
        // images·channels); the kernel bounds-checks each pixel against width and height, and
        // every buffer holds images·H·W·channels floats.
        launch(
            &client,
            k::SSIM_FORWARD.main,
            grid(&params),
            vec![
                alloc::upload(&client, &[params]),
                window(&client),
                a.handle.clone(),
                b.handle.clone(),
                map.clone(),
                partials[0].clone(),
                partials[1].clone(),
                partials[2].clone(),
            ],
        );
        let out = CubeTensor::new_contiguous(client, a.device.clone(), shape, map, DType::F32);
        (
            out,
            SsimState {
                a,
                b,
                params,
                partials,
            },
        )
    }

    fn ssim_backward(state: SsimState, v_map: CubeTensor) -> CubeTensor {
        let v_map = into_contiguous(v_map);
        let a = &state.a;
        let client = a.client.clone();
        let shape: Shape = a.meta.shape().clone();
        let v_a = alloc::empty(&client, shape.num_elements() * 4);
        let [d1, d2, d3] = state.partials;
        // SAFETY: as the forward; v_map and v_a hold images·H·W·channels floats.
        launch(
            &client,
            k::SSIM_BACKWARD.main,
            grid(&state.params),
            vec![
                alloc::upload(&client, &[state.params]),
                window(&client),
                a.handle.clone(),
                state.b.handle.clone(),
                v_map.handle.clone(),
                d1,
                d2,
                d3,
                v_a.clone(),
            ],
        );
        CubeTensor::new_contiguous(client, a.device.clone(), shape, v_a, DType::F32)
    }
}

impl SsimBackend for CubeBackend {
    fn ssim_map(a: CubeTensor, b: CubeTensor) -> CubeTensor {
        Self::ssim_forward(a, b).0
    }
}

#[derive(Debug)]
struct SsimBackward;

impl<B: SsimBackend + SsimKernels> Backward<B, 1> for SsimBackward {
    type State = <B as SsimKernels>::State;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let v_map = grads.consume::<B>(&ops.node);
        let [parent] = ops.parents;
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::ssim_backward(ops.state, v_map));
        }
    }
}

impl<B: SsimBackend + SsimKernels, C: CheckpointStrategy> SsimBackend for Autodiff<B, C> {
    fn ssim_map(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [a.node()];
        let (a, b) = (a.into_primitive(), b.into_primitive());
        match SsimBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (map, state) = B::ssim_forward(a, b);
                prep.finish(state, map)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ssim_forward(a, b).0),
        }
    }
}
