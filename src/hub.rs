//! `--model` as a folder or a Hugging Face hub id: hub models are downloaded once into the
//! standard cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`) and
//! read from there afterwards; `HF_HUB_OFFLINE=1` never touches the network.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::model::weights::shard_files;

/// The files a model folder needs.
pub const MODEL_FILES: [&str; 3] = [
    "config.json",
    "preprocessor_config.json",
    "model.safetensors",
];

/// The default model: the real checkpoint.
pub const DEFAULT_MODEL: &str = "google/vit-hybrid-base-bit-384";

/// The hub cache folder, as `huggingface_hub` chooses it.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("huggingface").join("hub")
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// `owner/name` with the characters the hub allows.
fn is_hub_id(s: &str) -> bool {
    let mut parts = s.split('/');
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if ok(a) && ok(b))
}

/// The local folder holding `model`'s files: `model` itself if it is a folder, else the hub
/// cache's snapshot of hub id `model` (downloaded unless offline).
pub fn resolve(model: &str) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.is_file() {
        bail!(
            "model {model:?} is a file; --model takes the folder holding config.json, \
             preprocessor_config.json and model.safetensors, or a hub id (owner/name)"
        );
    }
    if !is_hub_id(model) {
        bail!("model {model:?} is neither a folder nor a Hugging Face hub id (owner/name)");
    }
    let cache_root = cache_dir();
    let cache = hf_hub::Cache::new(cache_root.clone());
    let repo = hf_hub::Repo::model(model.to_string());
    let cached = cache.repo(repo.clone());
    if let Some(dir) = cached_folder(&cached) {
        return Ok(dir);
    }
    if offline() {
        bail!(
            "model {model} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set \
             (download it once with the network on, or pass a folder)",
            cache_root.display()
        );
    }
    let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(true);
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder
        .build()
        .context("setting up the Hugging Face hub client")?;
    let api_repo = api.repo(repo);
    let get = |f: &str| {
        api_repo.get(f).with_context(|| {
            format!(
                "could not get {f} of {model} from the Hugging Face hub (no network, or no such \
                 model or file?); looked in the cache {} first",
                cache_root.display()
            )
        })
    };
    let config = get(MODEL_FILES[0])?;
    get(MODEL_FILES[1])?;
    if let Err(single) = get(MODEL_FILES[2]) {
        // A sharded checkpoint has an index instead; without one the single file's error says
        // what went wrong.
        let Ok(index) = api_repo.get(SHARD_INDEX) else {
            return Err(single);
        };
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("reading {}", index.display()))?;
        for shard in shard_files(&text).with_context(|| format!("in {}", index.display()))? {
            get(&shard)?;
        }
    }
    snapshot_dir(&config)
}

/// The index of a sharded checkpoint, beside its shards.
const SHARD_INDEX: &str = "model.safetensors.index.json";

/// The snapshot folder of a model whose files are all in the cache: `model.safetensors`, or a
/// sharded checkpoint's index and every shard it names.
fn cached_folder(cached: &hf_hub::CacheRepo) -> Option<PathBuf> {
    let config = cached.get(MODEL_FILES[0])?;
    cached.get(MODEL_FILES[1])?;
    if cached.get(MODEL_FILES[2]).is_none() {
        let index = cached.get(SHARD_INDEX)?;
        let shards = shard_files(&std::fs::read_to_string(index).ok()?).ok()?;
        if !shards.iter().all(|f| cached.get(f).is_some()) {
            return None;
        }
    }
    snapshot_dir(&config).ok()
}

fn snapshot_dir(file: &Path) -> Result<PathBuf> {
    file.parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("{} has no parent folder", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths() {
        assert!(is_hub_id("google/vit-hybrid-base-bit-384"));
        assert!(is_hub_id("a_b/c.d"));
        for bad in [
            "google",
            "/abs/path",
            "a/b/c",
            "../x",
            "a/",
            "./model",
            "a b/c",
        ] {
            assert!(!is_hub_id(bad), "{bad}");
        }
    }
}
