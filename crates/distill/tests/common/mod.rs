//! The committed tiny random-weight SD models (`tests/cases/sd/tiny-eps`, `tiny-v`) and the
//! tensor plumbing the guidance tests share.

use burn::tensor::{Tensor, TensorData};
use sd::scheduler::NoiseSchedule;
use sd::{Precision, UNet};
use testkit::{gpu, host, root};

/// The folder of the tiny model `name`.
pub fn model_dir(name: &str) -> std::path::PathBuf {
    root().join("tests/cases/sd").join(name)
}

/// The tiny model `name`'s U-Net (f32), noise schedule and text-embedding width.
pub fn load(name: &str) -> (UNet, NoiseSchedule, usize) {
    let dir = model_dir(name);
    let unet = UNet::from_dir(
        &dir.join("unet"),
        &gpu().burn,
        Precision::F32,
        sd::nn::ConvAlgorithm::Direct,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let schedule = NoiseSchedule::from_file(dir.join("scheduler/scheduler_config.json"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let d = unet.arch.config.cross_attention_dim;
    (unet, schedule, d)
}

/// Host f64 values to an f32 device tensor of `shape`.
pub fn upload<const D: usize>(v: &[f64], shape: [usize; D]) -> Tensor<D> {
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), &gpu().burn)
}

/// A device tensor's values as f64.
pub fn host64<const D: usize>(t: &Tensor<D>) -> Vec<f64> {
    host(t)
        .expect("readback")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// What arrives at autodiff latents when `g` is injected with `distill::inject`.
pub fn injected(latents: &Tensor<4>, g: Tensor<4>) -> Vec<f32> {
    let z = latents.clone().autodiff().require_grad();
    let loss = distill::inject(z.clone(), g);
    let grads = loss.backward();
    host(&z.grad(&grads).expect("latent gradient")).expect("readback")
}
