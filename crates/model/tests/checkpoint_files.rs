//! Checkpoint reading and writing on small stores: round trips in every dtype, sharded indexes, and each
//! kind of broken checkpoint giving an error that names the problem.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{tensor::TensorView, Dtype};
use sana_sr_core::{nn, Device, Kind, Tensor};
use sana_sr_model::checkpoint::{self, CheckpointError};
use sana_sr_model::layers::{ConvConfig, Layer};

/// A store holding one linear and one convolution, under nested names like a real model's.
fn tiny_store() -> nn::VarStore {
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = Layer::linear(vs.root() / "proj", 3, 4, true);
    let _ = Layer::conv2d(vs.root() / "blocks" / "0" / "conv", 2, 5, 3, ConvConfig::default());
    vs
}

fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, &None).unwrap()).unwrap();
}

fn assert_same_values(a: &nn::VarStore, b: &nn::VarStore, tolerance: f64) {
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len());
    for (name, ta) in va {
        let diff = (&ta - &vb[&name]).abs().max().double_value(&[]);
        assert!(diff <= tolerance, "{name}: max abs difference {diff} > {tolerance}");
    }
}

#[test]
fn round_trip_in_every_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_store();
    // Relative error of f16 is 2^-11 and of bf16 2^-8; the weights here are below 1 in magnitude.
    for (kind, tolerance) in [(Kind::Float, 0.0), (Kind::Half, 1e-3), (Kind::BFloat16, 4e-3)] {
        let path = dir.path().join(format!("{kind:?}.safetensors"));
        checkpoint::save(&src, &path, kind).unwrap();
        let dst = tiny_store();
        checkpoint::load_into(&dst, &path).unwrap();
        assert_same_values(&src, &dst, tolerance);
        assert!(dst.variables().values().all(|t| t.kind() == Kind::Float), "values are converted to the model's dtype");
    }
}

#[test]
fn one_store_saved_twice_gives_the_same_bytes() {
    // A model file is known by its SHA-256, so its metadata must not be written in a hash map's order: each map
    // hashes with keys of its own, so two maps of twelve entries iterate differently in all but a vanishing
    // share of runs.
    let dir = tempfile::tempdir().unwrap();
    let store = tiny_store();
    let keys: Vec<String> = (0..12).map(|i| format!("key{i}")).collect();
    let metadata = || keys.iter().map(|k| (k.clone(), format!("value of {k}"))).collect();
    let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    checkpoint::save_with_metadata(&store, &a, Kind::Float, metadata()).unwrap();
    checkpoint::save_with_metadata(&store, &b, Kind::Float, metadata()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let bytes = std::fs::read(&a).unwrap();
    let read = safetensors::SafeTensors::read_metadata(&bytes).unwrap().1;
    assert_eq!(read.metadata().as_ref().unwrap()["key7"], "value of key7");
    let dst = tiny_store();
    checkpoint::load_into(&dst, &a).unwrap();
    assert_same_values(&store, &dst, 0.0);
}

#[test]
fn saving_in_a_kind_checkpoints_do_not_hold_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ints.safetensors");
    let err = checkpoint::save(&tiny_store(), &path, Kind::Int).unwrap_err();
    assert!(matches!(err, CheckpointError::SaveKind { kind: Kind::Int }), "{err}");
    assert!(!path.exists());
}

#[test]
fn sharded_index_loads_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_store();
    let whole = dir.path().join("whole.safetensors");
    checkpoint::save(&src, &whole, Kind::Float).unwrap();
    let tensors = checkpoint::read_tensors(&[whole]).unwrap();

    // Split the keys over two shards and list them in a diffusers index.
    let mut weight_map = HashMap::new();
    let mut shards: [Vec<(String, Tensor)>; 2] = Default::default();
    for (i, (name, t)) in tensors.into_iter().enumerate() {
        let shard = format!("diffusion_pytorch_model-0000{}-of-00002.safetensors", i % 2 + 1);
        weight_map.insert(name.clone(), shard);
        shards[i % 2].push((name, t));
    }
    for (i, shard) in shards.iter().enumerate() {
        let bufs: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = shard
            .iter()
            .map(|(n, t)| {
                let mut bytes = vec![0u8; t.numel() * 4];
                t.copy_data_u8(&mut bytes, t.numel());
                (n.as_str(), Dtype::F32, t.size().iter().map(|&d| d as usize).collect(), bytes)
            })
            .collect();
        write_safetensors(
            &dir.path().join(format!("diffusion_pytorch_model-0000{}-of-00002.safetensors", i + 1)),
            &bufs,
        );
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.path().join(checkpoint::INDEX_FILE), index.to_string()).unwrap();

    let dst = tiny_store();
    checkpoint::load_into(&dst, dir.path()).unwrap();
    assert_same_values(&src, &dst, 0.0);
}

#[test]
fn truncated_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&tiny_store(), &path, Kind::Float).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let err = checkpoint::load_into(&tiny_store(), &path).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

#[test]
fn unsupported_dtype_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ints.safetensors");
    write_safetensors(&path, &[("proj.weight", Dtype::I32, vec![4, 3], vec![0; 48])]);
    let err = checkpoint::load_into(&tiny_store(), &path).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::UnsupportedDtype { key, dtype: Dtype::I32, .. } if key == "proj.weight"),
        "{err}"
    );
}

/// Writes the tiny store's checkpoint after letting `edit` change its tensors.
fn edited_checkpoint(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> std::path::PathBuf {
    let path = dir.join("edited.safetensors");
    checkpoint::save(&tiny_store(), &path, Kind::Float).unwrap();
    let mut tensors = checkpoint::read_tensors(std::slice::from_ref(&path)).unwrap();
    edit(&mut tensors);
    let vs = nn::VarStore::new(Device::Cpu);
    for (name, t) in &tensors {
        // Variable names may not contain dots: walk the nested path instead.
        let (parents, leaf) = name.rsplit_once('.').unwrap();
        let path = parents.split('.').fold(vs.root(), |p, part| p / part);
        let _ = path.var_copy(leaf, t);
    }
    checkpoint::save(&vs, &path, Kind::Float).unwrap();
    path
}

#[test]
fn missing_and_unexpected_keys_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_checkpoint(dir.path(), |t| {
        t.remove("proj.bias");
        t.remove("blocks.0.conv.bias");
        t.insert("extra.weight".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu)));
    });
    let err = checkpoint::load_into(&tiny_store(), &path).unwrap_err();
    match &err {
        CheckpointError::Keys { missing, unexpected } => {
            assert_eq!(missing, &["blocks.0.conv.bias", "proj.bias"]);
            assert_eq!(unexpected, &["extra.weight"]);
        }
        other => panic!("expected a key mismatch, got {other}"),
    }
    assert!(err.to_string().contains("2 missing key(s) [blocks.0.conv.bias, proj.bias]"), "{err}");
}

#[test]
fn wrong_shape_names_the_key_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = edited_checkpoint(dir.path(), |t| {
        t.insert("proj.weight".into(), Tensor::zeros([4, 7], (Kind::Float, Device::Cpu)));
    });
    let err = checkpoint::load_into(&tiny_store(), &path).unwrap_err();
    assert!(
        err.to_string().contains("`proj.weight` has shape [4, 7] in the checkpoint but the model expects [4, 3]"),
        "{err}"
    );
}

#[test]
fn missing_files_and_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = checkpoint::load_into(&tiny_store(), &dir.path().join("nope.safetensors")).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }) && err.to_string().contains("nope.safetensors"), "{err}");

    let err = checkpoint::load_into(&tiny_store(), dir.path()).unwrap_err();
    assert!(matches!(err, CheckpointError::NoWeights { .. }), "{err}");

    std::fs::write(dir.path().join(checkpoint::INDEX_FILE), r#"{"weight_map": {"a": "gone.safetensors"}}"#).unwrap();
    let err = checkpoint::load_into(&tiny_store(), dir.path()).unwrap_err();
    assert!(err.to_string().contains("gone.safetensors"), "{err}");

    std::fs::write(dir.path().join(checkpoint::INDEX_FILE), "{ not json").unwrap();
    let err = checkpoint::load_into(&tiny_store(), dir.path()).unwrap_err();
    assert!(matches!(err, CheckpointError::Index { .. }), "{err}");
}

#[test]
fn a_header_of_a_million_keys_gives_an_error_of_one_short_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.safetensors");
    // Empty tensors: valid, and a header of 600 000 keys in a few megabytes.
    let empty: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        (0..600_000).map(|i| (format!("junk.{i}"), Dtype::F32, vec![0], Vec::new())).collect();
    let views: Vec<(String, TensorView)> =
        empty.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(&path, safetensors::serialize(views, &None).unwrap()).unwrap();
    let err = checkpoint::load_into(&tiny_store(), &path).unwrap_err().to_string();
    assert!(err.len() < 2_000, "{} bytes: {}", err.len(), &err[..2_000]);
    assert!(err.contains("600000 unexpected key(s) [junk.0, junk.1, junk.10, "), "{err}");
    assert!(err.contains(&format!("... and {} more]", 600_000 - checkpoint::MAX_LISTED_KEYS)), "{err}");
}

#[test]
fn weights_holding_nan_or_infinity_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [f64::NAN, f64::INFINITY] {
        let path = edited_checkpoint(dir.path(), |t| {
            let _ = t.get_mut("blocks.0.conv.weight").unwrap().get(1).fill_(bad);
        });
        let vs = tiny_store();
        let before = vs.variables()["proj.weight"].copy();
        let err = checkpoint::load_into(&vs, &path).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::NotFinite { key, count: 18 } if key == "blocks.0.conv.weight"),
            "{err}"
        );
        assert!(err.to_string().contains("NaN or infinite"), "{err}");
        assert!(vs.variables()["proj.weight"].equal(&before), "nothing is copied from a broken file");
    }
}
