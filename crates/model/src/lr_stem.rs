//! LinearSR's LR conditioning: a small convolutional stem that maps the (resized) LR image onto the latent grid,
//! whose features are concatenated with the noisy latent on channels, so that the DiT sees the LR image at every
//! noise level, including a sampler that starts from pure noise.
//!
//! Each layer is a strided convolution followed by SiLU. A stride `s` convolution pads by `p = ⌊s/2⌋` and has a
//! `s + 2p` kernel: on a side that is a multiple of `s` it gives exactly `side / s` outputs, each seeing its own
//! `s × s` cell and `p` pixels around it on every side (stride 2: a 4×4 kernel). The strides multiply to the
//! autoencoder's compression, so the features land on the latent grid of the same image.

use sana_sr_core::{nn, Tensor};
use serde::{Deserialize, Serialize};

use crate::layers::{variables, ConvConfig, Layer};

/// The stem's layers: output channels and stride of each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrStemConfig {
    /// Output channels of each convolution; the last is what the DiT's input gains.
    pub channels: Vec<i64>,
    /// Stride of each convolution; their product is the image-to-latent compression.
    pub strides: Vec<i64>,
}

impl LrStemConfig {
    /// Checks the layers against the compression they must reach.
    pub fn validate(&self, compression: i64) -> Result<(), String> {
        if self.channels.is_empty() || self.channels.len() != self.strides.len() {
            return Err(format!(
                "the LR stem needs one stride per layer and at least one layer: channels {:?}, strides {:?}",
                self.channels, self.strides
            ));
        }
        for (i, (&c, &s)) in self.channels.iter().zip(&self.strides).enumerate() {
            variables::check_sizes(&[(&format!("lr_stem.channels[{i}]"), c), (&format!("lr_stem.strides[{i}]"), s)])?;
        }
        let product = self.strides.iter().try_fold(1i64, |p, &s| p.checked_mul(s)).unwrap_or(i64::MAX);
        if product != compression {
            return Err(format!(
                "the LR stem's strides {:?} multiply to {product}, not to the image-to-latent compression {compression}",
                self.strides
            ));
        }
        Ok(())
    }

    /// Channels the stem adds to the DiT's input.
    pub fn out_channels(&self) -> i64 {
        *self.channels.last().expect("a validated stem has layers")
    }
}

/// The stem network, layers `layers.{i}` under its path.
#[derive(Debug)]
pub struct LrStem {
    layers: Vec<Layer>,
}

impl LrStem {
    /// Builds the stem for 3-channel images; `config` must be validated.
    pub fn new(p: nn::Path, config: &LrStemConfig) -> Self {
        let mut in_ch = 3;
        let layers = config
            .channels
            .iter()
            .zip(&config.strides)
            .enumerate()
            .map(|(i, (&out_ch, &stride))| {
                let padding = stride / 2;
                let cfg = ConvConfig { stride, padding, ..Default::default() };
                let layer = Layer::conv2d(&p / "layers" / i, in_ch, out_ch, stride + 2 * padding, cfg);
                in_ch = out_ch;
                layer
            })
            .collect();
        Self { layers }
    }

    /// `[N, 3, H, W]` (H and W multiples of the compression) to `[N, out_channels, H/c, W/c]`.
    pub fn forward(&self, image: &Tensor) -> Tensor {
        self.layers.iter().fold(image.shallow_clone(), |x, layer| layer.forward(&x).silu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::{Device, Kind};

    fn config() -> LrStemConfig {
        LrStemConfig { channels: vec![8, 8, 6], strides: vec![4, 2, 2] }
    }

    #[test]
    fn the_stem_lands_on_the_latent_grid() {
        let vs = nn::VarStore::new(Device::Cpu);
        let stem = LrStem::new(vs.root(), &config());
        let out = stem.forward(&Tensor::randn([2, 3, 32, 48], (Kind::Float, Device::Cpu)));
        assert_eq!(out.size(), [2, 6, 2, 3]);
        assert_eq!(vs.variables()["layers.0.weight"].size(), [8, 3, 8, 8]);
        assert_eq!(vs.variables()["layers.2.weight"].size(), [6, 8, 4, 4]);
    }

    #[test]
    fn a_stem_that_misses_the_compression_is_refused() {
        assert!(config().validate(16).is_ok());
        let err = config().validate(32).unwrap_err();
        assert!(err.contains("multiply to 16") && err.contains("compression 32"), "{err}");
        let uneven = LrStemConfig { channels: vec![8, 8], strides: vec![16] };
        assert!(uneven.validate(16).unwrap_err().contains("one stride per layer"));
        let zero = LrStemConfig { channels: vec![0], strides: vec![16] };
        assert!(zero.validate(16).unwrap_err().contains("lr_stem.channels[0]"));
    }

    #[test]
    fn each_output_sees_its_own_cell_and_a_margin_around_it() {
        // One stride-4 layer (kernel 8, padding 2): output (1, 1) depends on inputs 2..=9 of each side, its cell
        // 4..=7 and 2 pixels on either side, and on nothing further.
        let mut vs = nn::VarStore::new(Device::Cpu);
        let stem = LrStem::new(vs.root(), &LrStemConfig { channels: vec![2], strides: vec![4] });
        vs.double();
        let image = Tensor::randn([1, 3, 16, 16], (Kind::Double, Device::Cpu));
        let base = stem.forward(&image);
        let poke = |y: i64, x: i64| {
            let poked = image.copy();
            let _ = poked.get(0).get(0).get(y).get(x).fill_(10.0);
            (stem.forward(&poked) - &base).get(0).get(0).get(1).get(1).abs().double_value(&[]) > 0.0
        };
        assert!(poke(2, 2) && poke(9, 9) && poke(5, 2) && poke(9, 6));
        assert!(!poke(1, 5) && !poke(10, 5) && !poke(5, 1) && !poke(5, 10));
    }
}
