//! Getting a diffusers model from the Hugging Face Hub into the local HF cache when
//! `--model org/name` is not there yet: the `hf-hub` crate's blocking client (progress bars,
//! downloads resumed from their `.part` files, the cache layout `huggingface_hub` reads:
//! `models--org--name/{blobs/<etag>, snapshots/<commit>/<file> → blob, refs/main}`), then each
//! weight file's sha256 checked against the one the Hub publishes (a large-file blob's etag is
//! its sha256).
//!
//! Only what a pipeline reads is fetched: `model_index.json`, and for each of `scheduler/`,
//! `text_encoder/`, `tokenizer/`, `unet/`, `vae/` its `.json`/`.txt` files and one weight file
//! (`*.safetensors`, else `*.fp16.safetensors`); never `.bin`/`.ckpt` pickles or the
//! repository's top-level checkpoints. `model_index.json` comes last, so a cache that
//! [`crate::model::resolve`] accepts holds a complete download.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use sha2::{Digest, Sha256};

use crate::SdError;
use crate::model::{hf_hub_cache, resolve};

/// Whether a missing model may be downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// Download what the cache lacks.
    Allowed,
    /// Use the cache only (`--offline`, or `HF_HUB_OFFLINE=1` as `huggingface_hub` reads it).
    Offline,
}

/// The Hub endpoint: `$HF_ENDPOINT`, else `https://huggingface.co`.
#[must_use]
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into())
}

fn offline_env() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes"))
}

/// The repository files a diffusers pipeline needs, from the Hub's file list, in download
/// order (`model_index.json` last).
#[must_use]
pub fn wanted_files(files: &[String]) -> Vec<String> {
    let mut out = vec![];
    for comp in ["scheduler", "text_encoder", "tokenizer", "unet", "vae"] {
        let prefix = format!("{comp}/");
        let inside: Vec<&String> = files
            .iter()
            .filter(|f| f.starts_with(&prefix) && !f[prefix.len()..].contains('/'))
            .collect();
        out.extend(
            inside
                .iter()
                .filter(|f| f.ends_with(".json") || f.ends_with(".txt"))
                .map(|f| (*f).clone()),
        );
        let weights: Vec<&&String> = inside
            .iter()
            .filter(|f| f.ends_with(".safetensors"))
            .collect();
        let full = weights
            .iter()
            .find(|f| f.matches('.').count() == 1)
            .or_else(|| weights.iter().find(|f| f.ends_with(".fp16.safetensors")));
        if let Some(w) = full {
            out.push((**w).clone());
        }
    }
    if files.iter().any(|f| f == "model_index.json") {
        out.push("model_index.json".into());
    }
    out
}

/// sha256 of a file, lowercase hex.
fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

/// Download `repo_id` (`org/name`) into `cache` (the hub cache folder) from `endpoint`.
/// Returns the snapshot folder.
///
/// # Errors
/// [`SdError::Model`] naming the repository (and the file): unreachable Hub, unknown
/// repository, no `model_index.json`, an interrupted transfer (rerun to resume it), or a
/// weight whose sha256 differs from the published one (the bad blob is deleted).
pub fn download(
    repo_id: &str,
    cache: &Path,
    endpoint: &str,
    progress: bool,
) -> Result<PathBuf, SdError> {
    let fail = |what: String| SdError::Model(format!("{repo_id}: {what}"));
    let api = ApiBuilder::new()
        .with_cache_dir(cache.to_path_buf())
        .with_endpoint(endpoint.to_string())
        .with_progress(progress)
        .build()
        .map_err(|e| fail(format!("starting the Hub client: {e}")))?;
    let repo = api.model(repo_id.to_string());
    let info = repo
        .info()
        .map_err(|e| fail(format!("listing its files at {endpoint}: {e}")))?;
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let files = wanted_files(&names);
    if !files.iter().any(|f| f == "model_index.json") {
        return Err(fail(format!(
            "not a diffusers model: the repository at {endpoint} has no model_index.json"
        )));
    }
    let mut snapshot = None;
    for file in &files {
        let path = repo
            .get(file)
            .map_err(|e| fail(format!("downloading {file}: {e} (run again to resume)")))?;
        if file.ends_with(".safetensors") {
            verify_blob(&path).map_err(|m| fail(format!("{file}: {m}")))?;
        }
        let depth = file.matches('/').count() + 1;
        snapshot = path.ancestors().nth(depth).map(Path::to_path_buf);
    }
    snapshot.ok_or_else(|| fail("nothing downloaded".into()))
}

/// Check a downloaded file against its blob's name, the sha256 the Hub published (large-file
/// blobs are named by it); on a mismatch delete the blob and the snapshot's link.
fn verify_blob(path: &Path) -> Result<(), String> {
    let blob = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(published) = blob
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
    else {
        return Err(format!(
            "the Hub published no sha256 for it (its etag {} is not a large-file hash)",
            blob.display()
        ));
    };
    let got = sha256_file(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    if got != published.to_ascii_lowercase() {
        let _ = std::fs::remove_file(&blob);
        let _ = std::fs::remove_file(path);
        return Err(format!(
            "sha256 {got} of the download differs from the published {published}; the file \
             was deleted"
        ));
    }
    Ok(())
}

/// [`resolve`] `spec`, downloading an `org/name` model into the HF cache first when the cache
/// lacks it and `network` (and `HF_HUB_OFFLINE`) allow.
///
/// # Errors
/// As [`resolve`] and [`download`]; offline with the model missing, a message saying so.
pub fn resolve_or_download(spec: &str, network: Network) -> Result<PathBuf, SdError> {
    match resolve(spec) {
        Ok(dir) => return Ok(dir),
        Err(e) => {
            let is_id = spec.split('/').count() == 2
                && !spec.split('/').any(str::is_empty)
                && !Path::new(spec).exists();
            if !is_id {
                return Err(e);
            }
            if network == Network::Offline || offline_env() {
                return Err(SdError::Model(format!(
                    "{e}; not downloading it: offline (--offline or HF_HUB_OFFLINE)"
                )));
            }
        }
    }
    let cache = hf_hub_cache().ok_or_else(|| {
        SdError::Model(format!(
            "{spec}: no HF cache directory (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME are unset)"
        ))
    })?;
    eprintln!(
        "{spec}: not in {}; downloading from {}",
        cache.display(),
        endpoint()
    );
    download(spec, &cache, &endpoint(), true).map_err(|e| {
        SdError::Model(format!(
            "{e} (the model is not in the Hugging Face cache {}; --offline never downloads)",
            cache.display()
        ))
    })?;
    resolve(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_pipeline_reads_is_fetched() {
        let files: Vec<String> = [
            ".gitattributes",
            "README.md",
            "v2-1_512-ema-pruned.safetensors",
            "v2-1_512-ema-pruned.ckpt",
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.safetensors",
            "text_encoder/model.fp16.safetensors",
            "text_encoder/pytorch_model.bin",
            "tokenizer/merges.txt",
            "tokenizer/vocab.json",
            "tokenizer/tokenizer_config.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.bin",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
            "vae/diffusion_flax_model.msgpack",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            wanted_files(&files),
            [
                "scheduler/scheduler_config.json",
                "text_encoder/config.json",
                "text_encoder/model.safetensors",
                "tokenizer/merges.txt",
                "tokenizer/vocab.json",
                "tokenizer/tokenizer_config.json",
                "unet/config.json",
                "unet/diffusion_pytorch_model.fp16.safetensors",
                "vae/config.json",
                "vae/diffusion_pytorch_model.safetensors",
                "model_index.json",
            ]
        );
    }
}
