//! LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
//! Perceptual Metric"), matched to the PyPI package `lpips` 0.1.4 (`lpips/lpips.py`,
//! `lpips/pretrained_networks.py`).
//!
//! The weights are not bundled and cannot be downloaded by this crate: the user supplies a safetensors file of
//! `lpips.LPIPS(net='alex').state_dict()`, e.g.
//! `safetensors.torch.save_file(lpips.LPIPS(net='alex').state_dict(), 'lpips_alex.safetensors')`
//! (f32, f16 or bf16). The keys it must hold:
//!
//! - `net.slice1.0.{weight,bias}`, `net.slice2.3.*`, `net.slice3.6.*`, `net.slice4.8.*`, `net.slice5.10.*`: the
//!   convolutions of torchvision's ImageNet AlexNet `features` (the numbers are their indices there);
//! - `lin0.model.1.weight` … `lin4.model.1.weight`: the calibrated 1×1 `NetLinLayer`s (no bias).
//!
//! `scaling_layer.shift`/`scaling_layer.scale` (fixed constants, see [`SHIFT`]) and the `lins.N.*` entries (torch's
//! aliases of `linN.*`) of that `state_dict` are accepted and ignored; any other extra or missing key, or a wrong
//! shape, is the checkpoint loader's error.

use std::path::Path;

use sana_sr_core::{nn, no_grad, Device, Tensor};
use sana_sr_data::{tensor::to_tensor, Image};
use sana_sr_model::checkpoint::CheckpointError;
use sana_sr_model::layers::{ConvConfig, Layer};

use crate::MetricError;

/// `ScalingLayer` of `lpips/lpips.py`: the trunk sees `(x - SHIFT) / SCALE` per RGB channel, `x` in `[-1, 1]`.
pub const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
pub const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
/// `lpips.normalize_tensor`'s guard added to the channel norm.
const NORM_EPS: f64 = 1e-10;
/// The smallest side the trunk accepts: the second max-pool needs a 3×3 input (checked against the reference).
pub const MIN_SIDE: usize = 31;
/// Entries of the reference `state_dict` that carry no weight of their own.
const IGNORED_PREFIXES: [&str; 2] = ["scaling_layer.", "lins."];

/// One slice of `pretrained_networks.alexnet`: an optional 3×3/2 max-pool, then a ReLU-activated convolution.
struct TrunkSlice {
    /// Key prefix `net.sliceN.<index in AlexNet.features>`, one path segment each.
    path: [&'static str; 3],
    pool_first: bool,
    in_ch: i64,
    out_ch: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
}

/// torchvision's `AlexNet.features` cut as `lpips` cuts it; each slice's output is one compared feature map.
#[rustfmt::skip] // one slice a line reads as the table it is
const TRUNK: [TrunkSlice; 5] = [
    TrunkSlice { path: ["net", "slice1", "0"], pool_first: false, in_ch: 3, out_ch: 64, kernel: 11, stride: 4, padding: 2 },
    TrunkSlice { path: ["net", "slice2", "3"], pool_first: true, in_ch: 64, out_ch: 192, kernel: 5, stride: 1, padding: 2 },
    TrunkSlice { path: ["net", "slice3", "6"], pool_first: true, in_ch: 192, out_ch: 384, kernel: 3, stride: 1, padding: 1 },
    TrunkSlice { path: ["net", "slice4", "8"], pool_first: false, in_ch: 384, out_ch: 256, kernel: 3, stride: 1, padding: 1 },
    TrunkSlice { path: ["net", "slice5", "10"], pool_first: false, in_ch: 256, out_ch: 256, kernel: 3, stride: 1, padding: 1 },
];

#[derive(Debug, thiserror::Error)]
pub enum LpipsError {
    #[error("LPIPS weights: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Images(#[from] MetricError),
    #[error("LPIPS takes RGB images, got {0} channels")]
    NotRgb(usize),
    #[error("LPIPS (AlexNet) needs at least {MIN_SIDE}x{MIN_SIDE} pixels, got {width}x{height}")]
    TooSmall { width: usize, height: usize },
}

/// The LPIPS-Alex network with weights from a user-supplied file.
pub struct Lpips {
    trunk: Vec<(bool, Layer)>,
    lins: Vec<Layer>,
    device: Device,
}

impl Lpips {
    /// Loads the weights from the safetensors file at `path` (keys in the module docs) onto `device`.
    pub fn load(path: &Path, device: Device) -> Result<Self, LpipsError> {
        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let trunk = TRUNK
            .iter()
            .map(|s| {
                let cfg = ConvConfig { stride: s.stride, padding: s.padding, ..Default::default() };
                (
                    s.pool_first,
                    Layer::conv2d(
                        s.path.iter().fold(root.clone(), |p, segment| p / *segment),
                        s.in_ch,
                        s.out_ch,
                        s.kernel,
                        cfg,
                    ),
                )
            })
            .collect();
        let no_bias = ConvConfig { bias: false, ..Default::default() };
        let lins = TRUNK
            .iter()
            .enumerate()
            .map(|(k, s)| Layer::conv2d(&root / format!("lin{k}") / "model" / "1", s.out_ch, 1, 1, no_bias))
            .collect();
        crate::load_user_weights(&mut vs, path, |key| IGNORED_PREFIXES.iter().any(|prefix| key.starts_with(prefix)))?;
        Ok(Self { trunk, lins, device })
    }

    /// The LPIPS distance between two RGB images of the same size with samples in `[0, 1]` (rescaled to the
    /// `[-1, 1]` LPIPS expects, as `lpips.LPIPS.forward(..., normalize=True)`). 0 for identical images.
    pub fn distance(&self, a: &Image, b: &Image) -> Result<f64, LpipsError> {
        crate::check_pair(a, b)?;
        if a.channels != 3 {
            return Err(LpipsError::NotRgb(a.channels));
        }
        if a.width < MIN_SIDE || a.height < MIN_SIDE {
            return Err(LpipsError::TooSmall { width: a.width, height: a.height });
        }
        Ok(no_grad(|| {
            let features_a = self.features(a);
            let features_b = self.features(b);
            let mut total = Tensor::zeros([1], (sana_sr_core::Kind::Float, self.device));
            for ((fa, fb), lin) in features_a.iter().zip(&features_b).zip(&self.lins) {
                let diff = (unit_channels(fa) - unit_channels(fb)).square();
                total += lin.forward(&diff).mean_dim([2i64, 3].as_slice(), false, None).view([1]);
            }
            total.double_value(&[0])
        }))
    }

    /// The five trunk outputs (`relu1` … `relu5`) of an image.
    fn features(&self, image: &Image) -> Vec<Tensor> {
        let shift = Tensor::from_slice(&SHIFT).view([1, 3, 1, 1]).to_device(self.device);
        let scale = Tensor::from_slice(&SCALE).view([1, 3, 1, 1]).to_device(self.device);
        let mut x = ((to_tensor(image, self.device) * 2.0 - 1.0) - shift) / scale;
        self.trunk
            .iter()
            .map(|(pool_first, conv)| {
                if *pool_first {
                    x = x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false);
                }
                x = conv.forward(&x).relu();
                x.shallow_clone()
            })
            .collect()
    }
}

/// `lpips.normalize_tensor`: each pixel's feature vector divided by its L2 norm over channels (plus eps).
fn unit_channels(x: &Tensor) -> Tensor {
    x / (x.square().sum_dim_intlist([1i64].as_slice(), true, None).sqrt() + NORM_EPS)
}
