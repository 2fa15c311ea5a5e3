//! Named version presets: the published architecture configs of the SD 2.1 models, compiled
//! in. Each is the model repository's own file, copied unchanged into `assets/sd21/`:
//! [`Version::Sd21Base`] is `stabilityai/stable-diffusion-2-1-base` (512², ε-prediction),
//! [`Version::Sd21`] is `stabilityai/stable-diffusion-2-1` (768², v-prediction); the U-Net is
//! `unet/config.json`, the VAE `vae/config.json` of the repository. Used where the full-size
//! architecture is wanted without weights (random-weight benchmarks and tests).

use std::path::Path;

use crate::config::{ConfigError, UNetArch, UNetConfig, VaeConfig};

/// A published Stable Diffusion version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `stabilityai/stable-diffusion-2-1-base`.
    Sd21Base,
    /// `stabilityai/stable-diffusion-2-1` (768-v).
    Sd21,
}

impl Version {
    /// The Hugging Face repository the configs are copied from.
    pub fn repo(self) -> &'static str {
        match self {
            Self::Sd21Base => "stabilityai/stable-diffusion-2-1-base",
            Self::Sd21 => "stabilityai/stable-diffusion-2-1",
        }
    }

    /// The shipped copy of the repository's `unet/config.json`, and its path in the workspace
    /// (for error messages).
    fn unet_json(self) -> (&'static str, &'static str) {
        match self {
            Self::Sd21Base => (
                include_str!("../../../assets/sd21/base/unet/config.json"),
                "assets/sd21/base/unet/config.json",
            ),
            Self::Sd21 => (
                include_str!("../../../assets/sd21/768v/unet/config.json"),
                "assets/sd21/768v/unet/config.json",
            ),
        }
    }

    /// The shipped copy of the repository's `vae/config.json` and its path.
    fn vae_json(self) -> (&'static str, &'static str) {
        match self {
            Self::Sd21Base => (
                include_str!("../../../assets/sd21/base/vae/config.json"),
                "assets/sd21/base/vae/config.json",
            ),
            Self::Sd21 => (
                include_str!("../../../assets/sd21/768v/vae/config.json"),
                "assets/sd21/768v/vae/config.json",
            ),
        }
    }

    /// The U-Net architecture (validated like a config read from disk).
    ///
    /// # Errors
    /// [`ConfigError`] naming the shipped file, should it not parse (a unit test guards this).
    pub fn unet(self) -> Result<UNetArch, ConfigError> {
        let (text, name) = self.unet_json();
        let c: UNetConfig = parse(text, name)?;
        c.check(Path::new(name))
    }

    /// The VAE config.
    ///
    /// # Errors
    /// [`ConfigError`] naming the shipped file, should it not parse (a unit test guards this).
    pub fn vae(self) -> Result<VaeConfig, ConfigError> {
        let (text, name) = self.vae_json();
        parse(text, name)
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, name: &str) -> Result<T, ConfigError> {
    serde_json::from_str(text).map_err(|e| ConfigError::Parse {
        file: name.into(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_match_the_files_on_disk() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for v in [Version::Sd21Base, Version::Sd21] {
            let unet = v.unet().unwrap();
            let disk = UNetConfig::from_file(&root.join(v.unet_json().1)).unwrap();
            assert_eq!(unet.config.sample_size, disk.config.sample_size);
            assert_eq!(unet.config.cross_attention_dim, 1024);
            let vae = v.vae().unwrap();
            let disk = VaeConfig::from_file(&root.join(v.vae_json().1)).unwrap();
            assert_eq!(vae.block_out_channels, disk.block_out_channels);
        }
        assert_eq!(
            Version::Sd21Base.unet().unwrap().config.sample_size,
            Some(64)
        );
        assert_eq!(Version::Sd21.unet().unwrap().config.sample_size, Some(96));
    }
}
