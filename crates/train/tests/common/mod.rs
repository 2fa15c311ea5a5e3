//! Shared set-up of the `fit` tests: the shipped Spot-the-cow views, downscaled 4×.

use std::path::PathBuf;

use datasets::{Dataset, LoadOptions};
use train::fit::FitConfig;

/// A `fit` configuration on `assets/spot-cow` at 1/4 resolution (held-out view every 8th),
/// writing into a fresh temporary folder named after `tag` and the process (no turntable),
/// and the dataset it reads. Returns the folder too, for the test to remove.
pub fn spot_cow_fit(tag: &str) -> (FitConfig, Dataset, PathBuf) {
    let out = std::env::temp_dir().join(format!("splatdream-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cfg = FitConfig::default();
    cfg.data.path = testkit::root().join("assets/spot-cow");
    cfg.data.downscale = 4;
    cfg.output.dir = out.clone();
    cfg.output.turntable_frames = 0;
    let dataset = datasets::load(
        &cfg.data.path,
        &LoadOptions {
            downscale: 4,
            eval_every: 8,
            max_views: None,
        },
    )
    .expect("spot-cow");
    (cfg, dataset, out)
}
