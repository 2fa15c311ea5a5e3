//! Finding a model: a diffusers folder, or a Hugging Face model id resolved in the local HF
//! cache; picking each component's weight file; optional sha256 verification against the
//! published hashes.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::SdError;

/// The Hugging Face hub cache directory: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (the order
/// `huggingface_hub` uses).
pub fn hf_hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(p).join("huggingface").join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// Models shipped with splatdream, by name: `(name, folder under the assets directory)`.
/// `toyworld`: the small SD-2.1-architecture prior trained on the procedural toy world
/// (`tools/train_prior.py`; its model card is `assets/toyworld/README.md`).
pub const BUILTIN_MODELS: &[(&str, &str)] = &[("toyworld", "toyworld")];

/// The assets directory: `$SPLATDREAM_ASSETS` when set, else the source checkout's `assets/`
/// (the path this crate was compiled from).
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("SPLATDREAM_ASSETS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets"),
    }
}

/// The folder of a built-in model.
///
/// # Errors
/// [`SdError::Model`] for an unknown name (listing the built-in ones) or a built-in whose folder
/// is missing from the assets directory.
pub fn builtin(name: &str) -> Result<PathBuf, SdError> {
    let names: Vec<&str> = BUILTIN_MODELS.iter().map(|(n, _)| *n).collect();
    let Some((_, folder)) = BUILTIN_MODELS.iter().find(|(n, _)| *n == name) else {
        return Err(SdError::Model(format!(
            "{name}: no such directory and unknown built-in model (built-in models: {}); otherwise pass a diffusers folder or a Hugging Face model id of the form org/name",
            names.join(", ")
        )));
    };
    let dir = assets_dir().join(folder);
    if !dir.join("model_index.json").is_file() {
        return Err(SdError::Model(format!(
            "{name}: built-in model folder {} has no model_index.json (set SPLATDREAM_ASSETS to the assets directory of a splatdream checkout)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Resolve `--model`: an existing directory is used as is; a bare name is a built-in model
/// ([`BUILTIN_MODELS`]); otherwise `org/name` is looked up
/// in the HF cache as `models--org--name/snapshots/<rev>/` (the revision named by
/// `refs/main` first, else any snapshot holding `model_index.json`).
///
/// # Errors
/// [`SdError::Model`] listing where it looked and how to get the weights.
pub fn resolve(spec: &str) -> Result<PathBuf, SdError> {
    let p = PathBuf::from(spec);
    if p.is_dir() {
        return Ok(p);
    }
    let how = "commands that take --model download a missing Hugging Face id unless --offline; \
               or fetch it with `huggingface-cli download stabilityai/stable-diffusion-2-1-base`, \
               or pass the path of a diffusers folder";
    if p.exists() {
        return Err(SdError::Model(format!(
            "{spec}: is a file; --model expects a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) or a Hugging Face model id"
        )));
    }
    if !spec.contains('/') && !spec.contains(std::path::MAIN_SEPARATOR) {
        return builtin(spec);
    }
    let parts: Vec<&str> = spec.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|s| s.is_empty()) {
        return Err(SdError::Model(format!(
            "{spec}: no such directory, and not a Hugging Face model id of the form org/name; {how}"
        )));
    }
    let Some(cache) = hf_hub_cache() else {
        return Err(SdError::Model(format!(
            "{spec}: no HF cache directory (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME and HOME are unset); {how}"
        )));
    };
    let repo = cache.join(format!("models--{}--{}", parts[0], parts[1]));
    let snaps = repo.join("snapshots");
    let main = std::fs::read_to_string(repo.join("refs/main"))
        .ok()
        .map(|s| s.trim().to_string());
    let mut candidates: Vec<PathBuf> = vec![];
    if let Some(rev) = &main {
        candidates.push(snaps.join(rev));
    }
    if let Ok(rd) = std::fs::read_dir(&snaps) {
        let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        candidates.extend(v);
    }
    candidates
        .into_iter()
        .find(|c| c.join("model_index.json").is_file())
        .ok_or_else(|| {
            SdError::Model(format!(
                "{spec}: not found in the Hugging Face cache (looked for {}/*/model_index.json); {how}",
                snaps.display()
            ))
        })
}

/// The weight file of a component folder: `{stem}.safetensors`, else
/// `{stem}.fp16.safetensors` (the two names diffusers writes).
///
/// # Errors
/// [`SdError::Model`] naming the folder and the files looked for (and saying that PyTorch
/// `.bin` pickles are not read, when only those exist).
pub fn component_weights(dir: &Path, stem: &str) -> Result<PathBuf, SdError> {
    for name in [
        format!("{stem}.safetensors"),
        format!("{stem}.fp16.safetensors"),
    ] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let bin = dir.join(format!("{stem}.bin"));
    let extra = if bin.is_file() {
        format!(
            "; {} exists but PyTorch pickles are not read — convert it to safetensors",
            bin.display()
        )
    } else {
        String::new()
    };
    Err(SdError::Model(format!(
        "{}: missing weights: expected {stem}.safetensors or {stem}.fp16.safetensors{extra}",
        dir.display()
    )))
}

/// The sha256 of a file as lowercase hex (streamed, 1 MiB at a time).
///
/// # Errors
/// [`SdError::Model`] naming the file on read errors.
pub fn sha256_file(path: &Path) -> Result<String, SdError> {
    let io = |e: std::io::Error| SdError::Model(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Published sha256 hashes of the SD 2.1 weight files (from the Hugging Face repositories'
/// LFS pointers, `assets/sd21/weight-hashes.txt`): `(repo/component/file, sha256, bytes)`.
pub fn published_hashes() -> Vec<(String, String, u64)> {
    include_str!("../../../assets/sd21/weight-hashes.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// Check `file` (a component's weights) against the published hashes: the entry whose path
/// ends with `component/file_name` and has the same byte size.
///
/// Returns `Ok(Some(entry))` on a match, `Ok(None)` when no published entry has this name and
/// size (an unknown file: not an error, nothing to compare with).
///
/// # Errors
/// [`SdError::Model`] when a published entry of the same name and size has a different hash.
pub fn verify_published(file: &Path) -> Result<Option<String>, SdError> {
    let size = std::fs::metadata(file)
        .map_err(|e| SdError::Model(format!("{}: {e}", file.display())))?
        .len();
    let comp = file
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = file
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let suffix = format!("/{comp}/{name}");
    let entries: Vec<_> = published_hashes()
        .into_iter()
        .filter(|(p, _, s)| p.ends_with(&suffix) && *s == size)
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let got = sha256_file(file)?;
    match entries.iter().find(|(_, h, _)| *h == got) {
        Some((p, _, _)) => Ok(Some(p.clone())),
        None => Err(SdError::Model(format!(
            "{}: sha256 {got} does not match the published {} ({}); the download is corrupt",
            file.display(),
            entries[0].1,
            entries[0].0
        ))),
    }
}
