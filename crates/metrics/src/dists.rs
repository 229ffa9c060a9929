//! DISTS (Ding et al. 2020, "Image Quality Assessment: Unifying Structure and Texture Similarity"), matched to the
//! PyPI package `DISTS_pytorch` 0.1 (`DISTS_pytorch/DISTS_pt.py`).
//!
//! The weights are not bundled and cannot be downloaded by this crate: the user supplies a safetensors file of
//! `DISTS_pytorch.DISTS().state_dict()` (the ImageNet VGG16 trunk plus the learned `alpha`/`beta` of the wheel's
//! `weights.pt`), e.g. `safetensors.torch.save_file(DISTS().state_dict(), 'dists.safetensors')` (f32, f16 or
//! bf16). The keys it must hold ([`checkpoint_layout`] lists them with their shapes):
//!
//! - `stageS.I.{weight,bias}`: the 3×3 convolutions of torchvision's VGG16 `features`, `I` their index there
//!   (stage 1: 0, 2; stage 2: 5, 7; stage 3: 10, 12, 14; stage 4: 17, 19, 21; stage 5: 24, 26, 28);
//! - `alpha`, `beta`: `[1, 1475, 1, 1]`, the per-channel weights of the structure and texture terms.
//!
//! `mean`, `std` and the `stageS.I.filter` buffers of the L2 pooling (fixed constants, see [`MEAN`] and
//! `l2_pool`) are accepted and ignored; any other extra or missing key, or a wrong shape, is the checkpoint
//! loader's error.

use std::collections::HashSet;
use std::path::Path;

use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_data::{tensor::to_tensor, Image};
use sana_sr_model::checkpoint::CheckpointError;
use sana_sr_model::layers::{ConvConfig, Layer};

use crate::MetricError;

/// ImageNet normalisation of the trunk input (`DISTS.mean`/`DISTS.std`); the stage-0 features are the raw image.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// The stabilising constants `c1` (structure, i.e. means) and `c2` (texture, i.e. (co)variances) of `forward`.
const C1: f64 = 1e-6;
const C2: f64 = 1e-6;
/// Added under the square root of the L2 pooling (`L2pooling.forward`).
const L2_POOL_EPS: f64 = 1e-12;

/// One stage of the trunk: an L2 pooling (except stage 1) then ReLU-activated 3×3 convolutions (padding 1).
struct Stage {
    /// Key prefix `stageS`.
    name: &'static str,
    /// Index in VGG16 `features` of the max-pool this stage replaces by an L2 pooling (its `filter` buffer key).
    pool: Option<&'static str>,
    /// (index in VGG16 `features`, output channels) of each convolution.
    convs: &'static [(&'static str, i64)],
}

/// VGG16 `features` cut as `DISTS.__init__` cuts it; each stage's output is one compared feature map.
#[rustfmt::skip] // one stage a line reads as the table it is
const STAGES: [Stage; 5] = [
    Stage { name: "stage1", pool: None, convs: &[("0", 64), ("2", 64)] },
    Stage { name: "stage2", pool: Some("4"), convs: &[("5", 128), ("7", 128)] },
    Stage { name: "stage3", pool: Some("9"), convs: &[("10", 256), ("12", 256), ("14", 256)] },
    Stage { name: "stage4", pool: Some("16"), convs: &[("17", 512), ("19", 512), ("21", 512)] },
    Stage { name: "stage5", pool: Some("23"), convs: &[("24", 512), ("26", 512), ("28", 512)] },
];
/// Channels of the six compared feature maps (`DISTS.chns`): the image, then each stage's output.
const CHANNELS: [i64; 6] = [3, 64, 128, 256, 512, 512];

#[derive(Debug, thiserror::Error)]
pub enum DistsError {
    #[error("DISTS weights: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Images(#[from] MetricError),
    #[error("DISTS takes RGB images, got {0} channels")]
    NotRgb(usize),
}

/// The DISTS network with weights from a user-supplied file.
pub struct Dists {
    stages: Vec<(bool, Vec<Layer>)>,
    /// `alpha` and `beta` divided by their joint sum (as `forward` does), split per compared feature map.
    alpha: Vec<Tensor>,
    beta: Vec<Tensor>,
    device: Device,
}

/// The variables of the network under their checkpoint keys: the trunk, then `alpha` and `beta`.
fn variables(root: &nn::Path) -> (Vec<(bool, Vec<Layer>)>, Tensor, Tensor) {
    let mut in_ch = 3;
    let stages = STAGES
        .iter()
        .map(|stage| {
            let convs = stage
                .convs
                .iter()
                .map(|&(index, out_ch)| {
                    let cfg = ConvConfig { padding: 1, ..Default::default() };
                    let conv = Layer::conv2d(root / stage.name / index, in_ch, out_ch, 3, cfg);
                    in_ch = out_ch;
                    conv
                })
                .collect();
            (stage.pool.is_some(), convs)
        })
        .collect();
    let total: i64 = CHANNELS.iter().sum();
    let alpha = root.var("alpha", &[1, total, 1, 1], nn::Init::Const(0.0));
    let beta = root.var("beta", &[1, total, 1, 1], nn::Init::Const(0.0));
    (stages, alpha, beta)
}

/// The keys and shapes a DISTS weights file must hold (besides the ignored buffers named in the module docs).
pub fn checkpoint_layout() -> Vec<(String, Vec<i64>)> {
    let vs = nn::VarStore::new(Device::Cpu);
    let _registered = variables(&vs.root());
    let mut layout: Vec<_> = vs.variables().into_iter().map(|(key, var)| (key, var.size())).collect();
    layout.sort();
    layout
}

impl Dists {
    /// Loads the weights from the safetensors file at `path` (keys in the module docs) onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self, DistsError> {
        let mut vs = nn::VarStore::new(device);
        let (stages, alpha, beta) = variables(&vs.root());
        let ignored: HashSet<String> = ["mean".to_string(), "std".to_string()]
            .into_iter()
            .chain(STAGES.iter().filter_map(|s| s.pool.map(|pool| format!("{}.{pool}.filter", s.name))))
            .collect();
        crate::load_user_weights(&mut vs, path, |key| ignored.contains(key))?;
        let (alpha, beta) = no_grad(|| {
            let sum = alpha.sum(Kind::Float) + beta.sum(Kind::Float);
            ((&alpha / &sum).split_with_sizes(CHANNELS, 1), (&beta / &sum).split_with_sizes(CHANNELS, 1))
        });
        Ok(Self { stages, alpha, beta, device })
    }

    /// The DISTS distance between two RGB images of the same size with samples in `[0, 1]` (what
    /// `DISTS.forward` takes). About 0 for identical images (not exactly: the texture term's variance and
    /// covariance are computed differently, as in the reference).
    pub fn distance(&self, a: &Image, b: &Image) -> Result<f64, DistsError> {
        crate::check_pair(a, b)?;
        if a.channels != 3 {
            return Err(DistsError::NotRgb(a.channels));
        }
        if a.width == 0 || a.height == 0 {
            let (width, height) = (a.width, a.height);
            return Err(MetricError::TooSmall { metric: "DISTS", min: 1, width, height }.into());
        }
        Ok(no_grad(|| {
            let features_a = self.features(a);
            let features_b = self.features(b);
            let spatial = [2i64, 3].as_slice();
            let mut structure = Tensor::zeros([1, 1, 1, 1], (Kind::Float, self.device));
            let mut texture = Tensor::zeros([1, 1, 1, 1], (Kind::Float, self.device));
            for (k, (x, y)) in features_a.iter().zip(&features_b).enumerate() {
                let x_mean = x.mean_dim(spatial, true, None);
                let y_mean = y.mean_dim(spatial, true, None);
                let s1 = (&x_mean * 2.0 * &y_mean + C1) / (x_mean.square() + y_mean.square() + C1);
                structure += (&self.alpha[k] * s1).sum_dim_intlist([1i64].as_slice(), true, None);
                let x_var = (x - &x_mean).square().mean_dim(spatial, true, None);
                let y_var = (y - &y_mean).square().mean_dim(spatial, true, None);
                let xy_cov = (x * y).mean_dim(spatial, true, None) - &x_mean * &y_mean;
                let s2 = (xy_cov * 2.0 + C2) / (x_var + y_var + C2);
                texture += (&self.beta[k] * s2).sum_dim_intlist([1i64].as_slice(), true, None);
            }
            let similarity: Tensor = structure + texture;
            1.0 - similarity.double_value(&[0, 0, 0, 0])
        }))
    }

    /// The six compared feature maps of an image: the image itself, then the five stage outputs.
    fn features(&self, image: &Image) -> Vec<Tensor> {
        let image = to_tensor(image, self.device);
        let mean = Tensor::from_slice(&MEAN).view([1, 3, 1, 1]).to_device(self.device);
        let std = Tensor::from_slice(&STD).view([1, 3, 1, 1]).to_device(self.device);
        let mut x = (&image - mean) / std;
        let mut features = vec![image];
        for (pooled, convs) in &self.stages {
            if *pooled {
                x = l2_pool(&x);
            }
            for conv in convs {
                x = conv.forward(&x).relu();
            }
            features.push(x.shallow_clone());
        }
        features
    }
}

/// `L2pooling` (filter_size 5): per channel `sqrt(conv(x², g) + 1e-12)` at stride 2, padding 1, where `g` is the
/// outer product of `np.hanning(5)[1:-1] = [0.5, 1, 0.5]` with itself normalised to sum 1, i.e. `[1, 2, 1]ᵀ[1, 2,
/// 1] / 16`. It replaces VGG's max-pooling to avoid aliasing.
fn l2_pool(x: &Tensor) -> Tensor {
    let channels = x.size()[1];
    let taps = Tensor::from_slice(&[1.0f32, 2.0, 1.0]).to_device(x.device());
    let window = (taps.view([3, 1]) * taps.view([1, 3]) / 16.0).view([1, 1, 3, 3]).repeat([channels, 1, 1, 1]);
    (x.square().conv2d(&window, None::<Tensor>, [2, 2], [1, 1], [1, 1], channels) + L2_POOL_EPS).sqrt()
}
