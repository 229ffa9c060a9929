//! The discriminators of the adversarial term: a small patch discriminator, and Real-ESRGAN's kind, a U-Net
//! with spectral normalisation that scores every pixel.

use sana_sr_core::{nn, no_grad, Kind, Tensor};
use sana_sr_model::layers::{ConvConfig, Layer, Op};
use serde::{Deserialize, Serialize};

/// Which discriminator a run trains (`[discriminator] kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscriminatorKind {
    /// [`PatchDiscriminator`].
    #[default]
    Patch,
    /// [`UNetDiscriminator`]; its crops' sides must be multiples of [`UNET_MULTIPLE`].
    Unet,
}

/// What a U-Net discriminator's input sides must divide by: it halves them three times and adds the
/// upsampled paths back onto the skips.
pub const UNET_MULTIPLE: i64 = 8;

#[derive(Debug)]
pub enum Discriminator {
    Patch(PatchDiscriminator),
    Unet(Box<UNetDiscriminator>),
}

impl Discriminator {
    pub fn new(p: nn::Path, kind: DiscriminatorKind, width: i64) -> Self {
        match kind {
            DiscriminatorKind::Patch => Self::Patch(PatchDiscriminator::new(p, width)),
            DiscriminatorKind::Unet => Self::Unet(Box::new(UNetDiscriminator::new(p, width))),
        }
    }

    /// Realness logits of images in [-1, 1]: one per patch or one per pixel.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Self::Patch(d) => d.forward(x),
            Self::Unet(d) => d.forward(x),
        }
    }
}

/// LeakyReLU with slope 0.2, the GAN discriminators' choice.
fn leaky(h: Tensor) -> Tensor {
    h.maximum(&(&h * 0.2))
}

/// A small patch discriminator: strided 4x4 convolutions with LeakyReLU (pix2pix's PatchGAN shape), one
/// realness logit per patch of the input's 1/8 grid.
#[derive(Debug)]
pub struct PatchDiscriminator {
    layers: Vec<Layer>,
}

impl PatchDiscriminator {
    pub fn new(p: nn::Path, width: i64) -> Self {
        let strided = ConvConfig { stride: 2, padding: 1, ..Default::default() };
        let same = ConvConfig { padding: 1, ..Default::default() };
        let layers = vec![
            Layer::conv2d(&p / "0", 3, width, 4, strided),
            Layer::conv2d(&p / "1", width, 2 * width, 4, strided),
            Layer::conv2d(&p / "2", 2 * width, 4 * width, 4, strided),
            Layer::conv2d(&p / "3", 4 * width, 1, 3, same),
        ];
        Self { layers }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let (last, hidden) = self.layers.split_last().expect("four layers");
        last.forward(&hidden.iter().fold(x.shallow_clone(), |h, layer| leaky(layer.forward(&h))))
    }
}

/// A convolution whose weight is divided by an estimate of its largest singular value (spectral
/// normalisation, as torch's `spectral_norm`: one power iteration per call from the last call's vector), which
/// bounds how steeply the discriminator can change with its input and so keeps its gradients to the generator
/// tame. The iteration's vector is a variable that does not train, saved with the discriminator so that a
/// resumed run continues the same estimate.
#[derive(Debug)]
struct SpectralConv {
    conv: Layer,
    u: Tensor,
}

impl SpectralConv {
    fn new(p: nn::Path, in_ch: i64, out_ch: i64, kernel: i64, stride: i64) -> Self {
        let cfg = ConvConfig { stride, padding: (kernel - stride + 1) / 2, bias: false, ..Default::default() };
        let u = p.zeros_no_train("weight_u", &[out_ch]);
        let conv = Layer::conv2d(p, in_ch, out_ch, kernel, cfg);
        no_grad(|| u.shallow_clone().copy_(&normalized(&Tensor::randn([out_ch], (Kind::Float, u.device())))));
        Self { conv, u }
    }

    /// The estimate of the weight's largest singular value after one more power iteration (which updates `u`);
    /// differentiable in the weight, as torch's is.
    fn sigma(&self) -> Tensor {
        let w = self.conv.weight.view([self.conv.weight.size()[0], -1]);
        let (u, v) = no_grad(|| {
            let v = normalized(&w.tr().mv(&self.u));
            let u = normalized(&w.mv(&v));
            self.u.shallow_clone().copy_(&u);
            (u, v)
        });
        u.dot(&w.mv(&v))
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let Op::Conv2d { stride, padding, .. } = self.conv.op else { unreachable!("built as a convolution") };
        let weight = &self.conv.weight / self.sigma();
        x.to_kind(weight.kind()).conv2d(&weight, None::<Tensor>, [stride, stride], [padding, padding], [1, 1], 1)
    }
}

/// `x / |x|`, guarded as torch's `normalize` is.
fn normalized(x: &Tensor) -> Tensor {
    x / x.norm().clamp_min(1e-12)
}

/// Real-ESRGAN's U-Net discriminator at `width` channels (it uses 64): three strided convolutions down, three
/// bilinear upsamplings back with skip additions, two more convolutions and one logit per input pixel, all but
/// the first and last convolutions spectrally normalised. Per-pixel logits judge texture where it is drawn,
/// which the patch discriminator's 1/8 grid cannot.
#[derive(Debug)]
pub struct UNetDiscriminator {
    first: Layer,
    down: [SpectralConv; 3],
    up: [SpectralConv; 3],
    refine: [SpectralConv; 2],
    last: Layer,
}

impl UNetDiscriminator {
    pub fn new(p: nn::Path, width: i64) -> Self {
        let w = [width, 2 * width, 4 * width, 8 * width];
        let sn = |name: &str, i: i64, o: i64, k: i64, s: i64| SpectralConv::new(&p / name, i, o, k, s);
        Self {
            first: Layer::conv2d_same(&p / "conv0", 3, w[0], 3, true),
            down: [sn("conv1", w[0], w[1], 4, 2), sn("conv2", w[1], w[2], 4, 2), sn("conv3", w[2], w[3], 4, 2)],
            up: [sn("conv4", w[3], w[2], 3, 1), sn("conv5", w[2], w[1], 3, 1), sn("conv6", w[1], w[0], 3, 1)],
            refine: [sn("conv7", w[0], w[0], 3, 1), sn("conv8", w[0], w[0], 3, 1)],
            last: Layer::conv2d_same(&p / "conv9", w[0], 1, 3, true),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let x0 = leaky(self.first.forward(x));
        let mut skips = vec![x0];
        for conv in &self.down {
            let h = leaky(conv.forward(skips.last().expect("the first")));
            skips.push(h);
        }
        let mut h = skips.pop().expect("the deepest");
        for conv in &self.up {
            let size = h.size();
            let up = h.upsample_bilinear2d([size[2] * 2, size[3] * 2], false, None, None);
            h = leaky(conv.forward(&up)) + skips.pop().expect("one skip per level");
        }
        let h = self.refine.iter().fold(h, |h, conv| leaky(conv.forward(&h)));
        self.last.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::Device;

    #[test]
    fn the_patch_discriminator_scores_patches() {
        let vs = nn::VarStore::new(Device::Cpu);
        let d = PatchDiscriminator::new(vs.root() / "disc", 8);
        let out = d.forward(&Tensor::rand([2, 3, 64, 48], (Kind::Float, Device::Cpu)));
        assert_eq!(out.size(), [2, 1, 8, 6]);
    }

    #[test]
    fn the_unet_discriminator_scores_pixels_and_keeps_its_iteration_vectors_untrained() {
        let vs = nn::VarStore::new(Device::Cpu);
        let d = UNetDiscriminator::new(vs.root() / "disc", 4);
        let x = Tensor::rand([2, 3, 48, 32], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let u_before = d.down[0].u.copy();
        let out = d.forward(&x);
        assert_eq!(out.size(), [2, 1, 48, 32]);
        // Eight spectrally normalised convolutions, each with a saved vector that the call moved and no gradient.
        let vars = vs.variables();
        let vectors: Vec<_> = vars.iter().filter(|(name, _)| name.ends_with("weight_u")).collect();
        assert_eq!(vectors.len(), 8);
        assert!(vectors.iter().all(|(_, u)| !u.requires_grad()));
        assert!(!d.down[0].u.equal(&u_before));
        out.sum(Kind::Float).backward();
        assert!(d.down[0].conv.weight.grad().defined() && d.first.weight.grad().defined());
    }

    /// The power iteration converges to the largest singular value that an SVD gives (an independent
    /// computation, `torch.svd`): after 200 iterations the estimate agrees to 1e-4 relative, far looser than the
    /// float32 rounding of a 72-term dot product (~1e-6) and far tighter than an estimate that has not converged
    /// (the first call's is 12-33% low for random weights and starts of this shape).
    #[test]
    fn spectral_normalisation_divides_by_the_largest_singular_value() {
        sana_sr_core::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = SpectralConv::new(vs.root() / "c", 8, 16, 3, 1);
        let w = conv.conv.weight.view([16, -1]);
        let largest = |m: &Tensor| m.svd(true, false).1.max().double_value(&[]);
        let want = largest(&w);
        let sigma = (0..200).map(|_| no_grad(|| conv.sigma())).last().unwrap().double_value(&[]);
        assert!((sigma - want).abs() <= 1e-4 * want, "{sigma} vs {want}");
        let normalised = w / sigma;
        let top = largest(&normalised);
        assert!((top - 1.0).abs() <= 1e-4, "{top}");
    }
}
