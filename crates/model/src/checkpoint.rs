//! Reading and writing diffusers-format checkpoints: `config.json` beside
//! `diffusion_pytorch_model.safetensors`, or shards listed in `diffusion_pytorch_model.safetensors.index.json`.
//! A transformers folder (the text encoder's: `model.safetensors` or its index) reads the same way.
//!
//! Weights go into a [`nn::VarStore`] whose variable names are the checkpoint's keys (the model code builds
//! its paths with the reference's module names), so no renaming table exists. f32, f16 and bf16 on disk are
//! converted to the store's dtype. Every problem is reported with the key and both shapes, and all key
//! mismatches are listed at once.
//!
//! A checkpoint holds the base network only: the LoRA adapter variables of a store (`*.lora_A.weight`,
//! `*.lora_B.weight`, see [`crate::layers::lora`]) are neither read nor written here, so a pretrained
//! checkpoint loads, strictly, into a network built with adapters, and a store whose adapters were merged
//! saves as a plain checkpoint. Adapters have files of their own ([`crate::layers::lora::save_adapters`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use sana_sr_core::{nn, Kind, Tensor};
use serde::{de::DeserializeOwned, Serialize};

use crate::layers::{lora, variables};

/// File names of the diffusers layout.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";
pub const INDEX_FILE: &str = "diffusion_pytorch_model.safetensors.index.json";
/// The same two of the transformers layout.
pub const TRANSFORMERS_WEIGHTS_FILE: &str = "model.safetensors";
pub const TRANSFORMERS_INDEX_FILE: &str = "model.safetensors.index.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid safetensors file ({reason}); is it truncated or of another format?")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: bad shard index: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("{path}: bad config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: no `{WEIGHTS_FILE}`, `{TRANSFORMERS_WEIGHTS_FILE}` nor their `.index.json` in this folder")]
    NoWeights { path: PathBuf },
    #[error("{path}: no plain weights but the variants {} (`{WEIGHTS_FILE}` as `.<variant>.safetensors`); give the file of one instead of the folder", variants.join(", "))]
    Variants { path: PathBuf, variants: Vec<String> },
    #[error("{path}: weight `{key}` is stored as {dtype:?}; only F32, F16, BF16 (and I64 counters) are supported")]
    UnsupportedDtype { path: PathBuf, key: String, dtype: Dtype },
    #[error("weight `{key}` has shape {found:?} in the checkpoint but the model expects {expected:?}; is this a checkpoint of another model or config?")]
    ShapeMismatch { key: String, expected: Vec<i64>, found: Vec<i64> },
    #[error(transparent)]
    Write(#[from] sana_sr_core::fs::AtomicWriteError),
    #[error("checkpoints are saved as F32, F16 or BF16, not {kind:?}")]
    SaveKind { kind: Kind },
    #[error("checkpoint does not fit the model: {} missing key(s) [{}], {} unexpected key(s) [{}]", missing.len(), key_list(missing), unexpected.len(), key_list(unexpected))]
    Keys { missing: Vec<String>, unexpected: Vec<String> },
    #[error("the config asks for over {} variables the checkpoint does not store ([{}]); is the checkpoint of another model or config?", missing.len(), key_list(missing))]
    TooManyMissing { missing: Vec<String> },
    #[error("weight `{key}` holds {count} NaN or infinite value(s): the model is numerically broken")]
    NotFinite { key: String, count: i64 },
    #[error("the config asks for a network of {} parameters, over the limit of {} for a network no file stores (`variables::MAX_NEW_PARAMETERS`)", if *parameters == u64::MAX { "more than 2^64".to_string() } else { parameters.to_string() }, limit)]
    TooManyParameters { parameters: u64, limit: u64 },
}

/// Keys named in one error at most; the rest are counted (a header can hold a million keys).
pub const MAX_LISTED_KEYS: usize = 20;

/// `keys` joined, the first [`MAX_LISTED_KEYS`] of them and a count of the rest.
pub fn key_list(keys: &[String]) -> String {
    let shown = keys.iter().take(MAX_LISTED_KEYS).map(String::as_str).collect::<Vec<_>>().join(", ");
    match keys.len().saturating_sub(MAX_LISTED_KEYS) {
        0 => shown,
        more => format!("{shown}, ... and {more} more"),
    }
}

type Result<T> = std::result::Result<T, CheckpointError>;

/// Stored tensor shapes by name, as a header lists them.
pub type Shapes = HashMap<String, Vec<i64>>;

/// The weight files of a checkpoint: a `.safetensors` file, an `.index.json`, or a diffusers or transformers
/// model folder. A folder without plain weights may hold one variant of them (diffusers' and transformers'
/// `variant`: `diffusion_pytorch_model.bf16.safetensors`, `model.safetensors.index.fp16.json`), which is read;
/// of several variants none is chosen.
pub fn weight_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        for (single, index) in [(WEIGHTS_FILE, INDEX_FILE), (TRANSFORMERS_WEIGHTS_FILE, TRANSFORMERS_INDEX_FILE)] {
            if path.join(single).is_file() {
                return Ok(vec![path.join(single)]);
            }
            if path.join(index).is_file() {
                return shards_of_index(&path.join(index));
            }
        }
        let mut variants = variant_files(path)?;
        return match variants.len() {
            0 => Err(CheckpointError::NoWeights { path: path.to_path_buf() }),
            1 => match variants.pop_first().expect("one variant").1 {
                index if index.to_string_lossy().ends_with(".json") => shards_of_index(&index),
                single => Ok(vec![single]),
            },
            _ => Err(CheckpointError::Variants { path: path.to_path_buf(), variants: variants.into_keys().collect() }),
        };
    }
    if path.to_string_lossy().ends_with(".index.json") {
        return shards_of_index(path);
    }
    if !path.exists() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder");
        return Err(CheckpointError::Io { path: path.to_path_buf(), source });
    }
    Ok(vec![path.to_path_buf()])
}

/// The variants of a folder's weights, by name, each its single file or its shard index.
fn variant_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|source| CheckpointError::Io { path: dir.into(), source })?;
    let mut variants = BTreeMap::new();
    for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
        for stem in ["diffusion_pytorch_model", "model"] {
            let index = name.strip_prefix(&format!("{stem}.safetensors.index.")).and_then(|v| v.strip_suffix(".json"));
            // A shard of a sharded variant (`model.fp16-00001-of-00002.safetensors`) is not a variant itself.
            let single = name
                .strip_prefix(&format!("{stem}."))
                .and_then(|v| v.strip_suffix(".safetensors"))
                .filter(|v| !v.contains('.') && !v.contains("-of-"));
            if let Some(variant) = index.or(single) {
                variants.insert(variant.to_string(), dir.join(&name));
            }
        }
    }
    Ok(variants)
}

fn shards_of_index(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text =
        sana_sr_core::fs::read_text(index).map_err(|source| CheckpointError::Io { path: index.into(), source })?;
    let parsed: Index = serde_json::from_str(&text)
        .map_err(|e| CheckpointError::Index { path: index.into(), reason: e.to_string() })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let shards: BTreeSet<&String> = parsed.weight_map.values().collect();
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

/// A safetensors file's bytes, memory-mapped (read-only): reading the header touches only its pages. The
/// file must be a regular file ([`sana_sr_core::fs::open_file`]: a folder, FIFO or device is refused).
pub fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let io = |source| CheckpointError::Io { path: path.into(), source };
    let file = sana_sr_core::fs::open_file(path).map_err(io)?;
    // SAFETY: read-only mapping, dropped by the caller before it returns; a file changed underneath could
    // only yield wrong numbers, which the shape and key checks then report.
    unsafe { memmap2::Mmap::map(&file) }.map_err(io)
}

/// Reads every tensor of the given safetensors files onto the CPU, in the dtype they are stored in.
pub fn read_tensors(files: &[PathBuf]) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for path in files {
        out.extend(read_tensors_from_bytes(&map_file(path)?, path)?.0);
    }
    Ok(out)
}

/// The stored shape of every tensor of the given safetensors files, from their headers alone (what
/// [`crate::layers::variables::with_stored_shapes`] builds a network at).
pub fn read_shapes(files: &[PathBuf]) -> Result<Shapes> {
    let mut out = HashMap::new();
    for path in files {
        out.extend(read_header(&map_file(path)?, path)?.0);
    }
    Ok(out)
}

/// The stored shapes by name and the `__metadata__` of safetensors bytes, from the header alone.
pub fn read_header(bytes: &[u8], origin: &Path) -> Result<(Shapes, HashMap<String, String>)> {
    let corrupt = |reason: String| CheckpointError::Corrupt { path: origin.into(), reason };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut shapes = HashMap::new();
    for (key, info) in header.tensors() {
        let shape = info.shape.iter().map(|&d| i64::try_from(d)).collect::<std::result::Result<Vec<i64>, _>>();
        let shape = shape.map_err(|_| corrupt(format!("tensor `{key}` has a dimension over 2^63")))?;
        shapes.insert(key, shape);
    }
    Ok((shapes, header.metadata().clone().unwrap_or_default()))
}

/// The tensors (on the CPU, in their stored dtype) and the `__metadata__` of safetensors bytes, e.g. a file
/// embedded in a binary; `origin` names them in errors.
pub fn read_tensors_from_bytes(
    bytes: &[u8],
    origin: &Path,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let corrupt =
        |e: safetensors::SafeTensorError| CheckpointError::Corrupt { path: origin.into(), reason: e.to_string() };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
    let st = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let mut out = HashMap::new();
    for (key, view) in st.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            // torch's BatchNorm step counter `num_batches_tracked`.
            Dtype::I64 => Kind::Int64,
            dtype => return Err(CheckpointError::UnsupportedDtype { path: origin.into(), key, dtype }),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        out.insert(key, Tensor::from_data_size(view.data(), &shape, kind));
    }
    Ok((out, header.metadata().clone().unwrap_or_default()))
}

/// Copies a checkpoint into the base variables of `vs`, converting dtypes; strict: the key sets must be equal.
pub fn load_into(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let tensors = read_tensors(&weight_files(path)?)?;
    copy_into(vs, tensors)
}

/// Copies named tensors into the base variables of `vs`; every one must be given once, with its shape.
pub fn copy_into(vs: &nn::VarStore, tensors: HashMap<String, Tensor>) -> Result<()> {
    copy_into_variables(base_variables(vs), tensors)
}

/// The variables of `vs` that make up the network itself, its LoRA adapters left out.
fn base_variables(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables().into_iter().filter(|(name, _)| !lora::is_adapter_variable(name)).collect()
}

/// Copies named tensors into `variables`, as strictly as [`copy_into`]; a tensor holding a NaN or an
/// infinity is refused by name ([`CheckpointError::NotFinite`]) before anything is copied.
pub fn copy_into_variables(variables: HashMap<String, Tensor>, mut tensors: HashMap<String, Tensor>) -> Result<()> {
    let mut missing = Vec::new();
    let mut pending = Vec::new();
    for (key, var) in &variables {
        match tensors.remove(key) {
            None => missing.push(key.clone()),
            Some(src) if src.size() != var.size() => {
                return Err(CheckpointError::ShapeMismatch {
                    key: key.clone(),
                    expected: var.size(),
                    found: src.size(),
                })
            }
            Some(src) => pending.push((key, var, src)),
        }
    }
    let mut unexpected: Vec<String> = tensors.into_keys().collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        missing.sort();
        unexpected.sort();
        return Err(CheckpointError::Keys { missing, unexpected });
    }
    for (key, _, src) in &pending {
        if src.is_floating_point() {
            let count = src.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]);
            if count > 0 {
                return Err(CheckpointError::NotFinite { key: key.to_string(), count });
            }
        }
    }
    sana_sr_core::no_grad(|| {
        for (_, var, src) in pending {
            let mut var = var.shallow_clone();
            var.copy_(&src.to_device(var.device()).to_kind(var.kind()));
        }
    });
    Ok(())
}

/// Writes the base variables of `vs` as one safetensors file in `kind` (F32, F16 or BF16), atomically; integer
/// counters (BatchNorm's `num_batches_tracked`) stay I64 as torch saves them.
pub fn save(vs: &nn::VarStore, path: &Path, kind: Kind) -> Result<()> {
    save_with_metadata(vs, path, kind, HashMap::new())
}

/// [`save`] with extra `__metadata__` entries (beside torch's `format: pt`), e.g. a model's own config.
pub fn save_with_metadata(vs: &nn::VarStore, path: &Path, kind: Kind, metadata: HashMap<String, String>) -> Result<()> {
    save_variables(base_variables(vs), path, kind, metadata)
}

/// Writes named tensors as [`save_with_metadata`] does.
pub fn save_variables(
    variables: HashMap<String, Tensor>,
    path: &Path,
    kind: Kind,
    metadata: HashMap<String, String>,
) -> Result<()> {
    if !matches!(kind, Kind::Float | Kind::Half | Kind::BFloat16) {
        return Err(CheckpointError::SaveKind { kind });
    }
    let cast = variables
        .into_iter()
        .map(|(name, t)| {
            let t = if t.kind() == Kind::Int64 { t } else { t.to_kind(kind) };
            (name, t)
        })
        .collect();
    save_tensors(cast, path, metadata, true)
}

/// Writes named tensors each in its own dtype (F32, F16, BF16 or I64) as one safetensors file with
/// `metadata` (beside `format: pt`), atomically; an existing file is replaced only with `overwrite`.
pub fn save_tensors(
    tensors: HashMap<String, Tensor>,
    path: &Path,
    mut metadata: HashMap<String, String>,
    overwrite: bool,
) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(named.len());
    for (name, t) in named {
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Half => Dtype::F16,
            Kind::BFloat16 => Dtype::BF16,
            Kind::Int64 => Dtype::I64,
            kind => return Err(CheckpointError::SaveKind { kind }),
        };
        let t = t.detach().to_device(sana_sr_core::Device::Cpu).contiguous();
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, numel);
        let shape = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name, dtype, shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .expect("buffer length matches shape by construction");
            (name.clone(), view)
        })
        .collect();
    metadata.insert("format".to_string(), "pt".to_string());
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.into(), reason };
    let mut bytes = safetensors::serialize(views, &Some(metadata)).map_err(|e| corrupt(e.to_string()))?;
    sort_header(&mut bytes).map_err(corrupt)?;
    Ok(sana_sr_core::fs::write_atomically(path, overwrite, |file| file.write_all(&bytes))?)
}

/// Rewrites a serialized file's JSON header with its keys in sorted order. safetensors writes `__metadata__` in a
/// `HashMap`'s order, which differs from run to run, while one model saved twice must give the same bytes: a
/// model file is known by its SHA-256 (an evaluation keys its scores by it). The entries are the same, so the
/// header keeps its length and the data offsets stay valid.
fn sort_header(bytes: &mut [u8]) -> std::result::Result<(), String> {
    #[derive(serde::Deserialize, Serialize)]
    struct Header {
        #[serde(rename = "__metadata__", default, skip_serializing_if = "Option::is_none")]
        metadata: Option<BTreeMap<String, String>>,
        #[serde(flatten)]
        tensors: BTreeMap<String, serde_json::Value>,
    }
    let len_bytes: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or("no header length")?;
    let len = u64::from_le_bytes(len_bytes) as usize;
    let region = bytes.get_mut(8..8 + len).ok_or("header longer than the file")?;
    let header: Header = serde_json::from_slice(region.trim_ascii_end()).map_err(|e| e.to_string())?;
    let sorted = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    if sorted.len() > region.len() {
        return Err(format!("sorted header is {} bytes, the written one {}", sorted.len(), region.len()));
    }
    // safetensors pads its header with spaces to an 8-byte boundary; the same padding follows the sorted one.
    region.fill(b' ');
    region[..sorted.len()].copy_from_slice(&sorted);
    Ok(())
}

/// A network that lives in a diffusers model folder: built from its `config.json`, weights in a store.
pub trait Pretrained: Sized {
    type Config: DeserializeOwned + Serialize;
    type Error: From<CheckpointError>;

    /// Builds the network under `p`, randomly initialised as torch would.
    fn build(p: nn::Path, config: &Self::Config) -> std::result::Result<Self, Self::Error>;

    fn config(&self) -> &Self::Config;

    /// Loads a diffusers model folder (`config.json` + weights) onto `device`, in float32 unless the store
    /// is cast afterwards; the store is returned for saving or casting.
    fn from_pretrained(
        dir: &Path,
        device: sana_sr_core::Device,
    ) -> std::result::Result<(Self, nn::VarStore), Self::Error> {
        let config: Self::Config = read_config(dir)?;
        let files = weight_files(dir)?;
        let vs = nn::VarStore::new(device);
        let model = variables::with_stored_shapes(read_shapes(&files)?, || Self::build(vs.root(), &config))?;
        copy_into(&vs, read_tensors(&files)?)?;
        Ok((model, vs))
    }

    /// Writes a diffusers model folder; `vs` must be the store the model was built in, at its root.
    fn save_pretrained(&self, vs: &nn::VarStore, dir: &Path, kind: Kind) -> std::result::Result<(), Self::Error> {
        Ok(save_pretrained(dir, self.config(), vs, kind)?)
    }
}

/// Reads a model's `config.json` (a folder's, or the file itself). Python's non-standard numbers are read as
/// `null` ([`python_json`]).
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let file = if path.is_dir() { path.join(CONFIG_FILE) } else { path.to_path_buf() };
    let text =
        sana_sr_core::fs::read_text(&file).map_err(|source| CheckpointError::Io { path: file.clone(), source })?;
    serde_json::from_str(&python_json(&text)).map_err(|e| CheckpointError::Config { path: file, reason: e.to_string() })
}

/// `text` with the bare `NaN`, `Infinity` and `-Infinity` that Python's `json.dump` writes (diffusers' scheduler
/// configs hold `"lambda_min_clipped": -Infinity`) replaced by `null`, which JSON has; strings are left as they are.
fn python_json(text: &str) -> std::borrow::Cow<'_, str> {
    const LITERALS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    if !LITERALS.iter().any(|literal| text.contains(literal)) {
        return text.into();
    }
    let (mut out, mut rest) = (String::with_capacity(text.len()), text);
    let (mut in_string, mut escaped) = (false, false);
    'scan: while let Some(c) = rest.chars().next() {
        if !in_string {
            for literal in LITERALS {
                if let Some(after) = rest.strip_prefix(literal) {
                    out.push_str("null");
                    rest = after;
                    continue 'scan;
                }
            }
        }
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

/// Saves a model folder in the diffusers layout: `config.json` and the weights.
pub fn save_pretrained<C: Serialize>(dir: &Path, config: &C, vs: &nn::VarStore, kind: Kind) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io { path: dir.into(), source })?;
    let json = serde_json::to_vec_pretty(config).expect("model configs always serialize");
    write_atomically(&dir.join(CONFIG_FILE), &json)?;
    save(vs, &dir.join(WEIGHTS_FILE), kind)
}

/// Saving replaces an earlier save of the same file (a training run's periodic checkpoint), atomically.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(sana_sr_core::fs::write_atomically(path, true, |file| file.write_all(bytes))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_of_one_weights_variant_reads_it_and_of_several_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str| std::fs::write(dir.path().join(name), b"").unwrap();
        write("config.json");
        write("diffusion_pytorch_model.bf16.safetensors");
        assert_eq!(weight_files(dir.path()).unwrap(), [dir.path().join("diffusion_pytorch_model.bf16.safetensors")]);
        write("model.fp16-00001-of-00002.safetensors");
        write("model.fp16-00002-of-00002.safetensors");
        let index = r#"{"weight_map": {"a": "model.fp16-00001-of-00002.safetensors", "b": "model.fp16-00002-of-00002.safetensors"}}"#;
        std::fs::write(dir.path().join("model.safetensors.index.fp16.json"), index).unwrap();
        let error = weight_files(dir.path()).unwrap_err().to_string();
        assert!(error.contains("variants bf16, fp16"), "{error}");
        std::fs::remove_file(dir.path().join("diffusion_pytorch_model.bf16.safetensors")).unwrap();
        assert_eq!(weight_files(dir.path()).unwrap().len(), 2, "the sharded variant's shards");
        write("diffusion_pytorch_model.safetensors");
        assert_eq!(weight_files(dir.path()).unwrap(), [dir.path().join("diffusion_pytorch_model.safetensors")]);
    }

    #[test]
    fn python_json_reads_its_non_standard_numbers_as_null_outside_strings() {
        let text = r#"{"a": -Infinity, "b": [NaN, Infinity, 1.5], "c": "NaN \" Infinity", "d": "x\\", "e": NaN}"#;
        let value: serde_json::Value = serde_json::from_str(&python_json(text)).unwrap();
        let want =
            serde_json::json!({"a": null, "b": [null, null, 1.5], "c": "NaN \" Infinity", "d": "x\\", "e": null});
        assert_eq!(value, want);
        assert!(matches!(python_json(r#"{"a": 1}"#), std::borrow::Cow::Borrowed(_)));
    }
}
