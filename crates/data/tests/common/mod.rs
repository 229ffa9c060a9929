//! Reading the fixtures that tools/reference/make_degradation_fixtures.py writes.

use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

pub struct Fixture {
    bytes: Vec<u8>,
}

/// A reference array: its shape and values (as f64).
pub struct Array {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

impl Fixture {
    pub fn open(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { bytes }
    }

    /// The JSON list of cases in the metadata.
    pub fn cases(&self) -> Vec<serde_json::Value> {
        let (_, metadata) = SafeTensors::read_metadata(&self.bytes).unwrap();
        let cases = metadata.metadata().as_ref().unwrap()["cases"].clone();
        serde_json::from_str(&cases).unwrap()
    }

    pub fn array(&self, name: &str) -> Array {
        let tensors = SafeTensors::deserialize(&self.bytes).unwrap();
        let view = tensors.tensor(name).unwrap();
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
            Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        Array { shape: view.shape().to_vec(), values }
    }
}
