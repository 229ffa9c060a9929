//! The loss of one training step: the pixel, edge, teacher and adversarial terms on the model's SR image, and
//! the flow-matching and autoencoder terms on the HR latent.

use sana_sr_core::{no_grad, Device, Kind, Tensor};
use sana_sr_pipeline::condition::Conditioning;
use sana_sr_pipeline::scheduler;
use sana_sr_pipeline::sr_model::seeded_noise;
use sana_sr_pipeline::SrModel;

use crate::config::TrainConfig;
use crate::losses;

use super::{Adversarial, Result, TrainError};

/// The noise level and the noise seed of one step's flow-matching term, drawn from the run's seed and the step
/// alone (ChaCha8, one stream per step), so that a resumed run draws what the unbroken one did. The noise
/// level is uniform over `[train] expert`'s interval, or over [0, 1) when every expert trains.
pub(super) struct FlowDraw {
    pub(super) sigma: f64,
    pub(super) noise_seed: u64,
}

impl FlowDraw {
    pub(super) fn new(config: &TrainConfig, model: &SrModel, step: u64) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        let (low, high) = match config.train.expert {
            None => (0.0, 1.0),
            Some(k) => expert_interval(model, k)?,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.train.seed);
        rng.set_stream(step);
        let sigma = low + (high - low) * rng.gen::<f64>();
        Ok(Self { sigma, noise_seed: rng.gen() })
    }
}

/// The noise levels of expert `k` of `model`, or an error naming what is wrong.
pub(super) fn expert_interval(model: &SrModel, k: usize) -> Result<(f64, f64)> {
    let intervals = model.router.as_ref().map(|r| r.intervals()).unwrap_or_default();
    intervals.get(k).copied().ok_or_else(|| {
        TrainError::Setup(format!(
            "[train] expert = {k}, but model `{}` has {} expert(s)",
            model.config.name,
            intervals.len()
        ))
    })
}

/// Flow matching on the HR latent `x0`: noised to the drawn level (`x_t = (1 - sigma) x0 + sigma noise`), with
/// the LR stem's features when the model has a stem, the routed DiT's velocity against `noise - x0`.
pub(super) fn flow_matching(
    model: &SrModel,
    conditioning: &Conditioning,
    x0: &Tensor,
    lr: &Tensor,
    draw: &FlowDraw,
) -> Result<Tensor> {
    let noise = seeded_noise(&x0.size(), draw.noise_seed).to_kind(x0.kind()).to_device(x0.device());
    let x_t = scheduler::add_noise(x0, &noise, draw.sigma);
    let input = match &model.lr_stem {
        Some(stem) => Tensor::cat(&[x_t, stem.forward(lr)], 1),
        None => x_t,
    };
    let velocity =
        model.velocity_with(&input, draw.sigma * scheduler::NUM_TRAIN_TIMESTEPS, draw.sigma, conditioning)?;
    Ok(losses::l2(&velocity, &scheduler::velocity(x0, &noise)))
}

/// What one step's loss terms read of its batch.
pub(super) struct StepInputs<'a> {
    /// HR in [-1, 1].
    pub(super) hr: &'a Tensor,
    /// LR resized to the HR size, in [-1, 1].
    pub(super) lr: &'a Tensor,
    /// The DiT's condition for each pair.
    pub(super) conditioning: &'a Conditioning,
}

/// The rows of a batch that the adversarial term sees: every pair, or with `clean_pairs` false only the
/// degraded ones; `None` when that leaves none (the term is then 0 and the discriminator rests).
pub(super) fn adversarial_rows(clean: &[bool], clean_pairs: bool, device: Device) -> Option<Tensor> {
    let rows: Vec<i64> = (0..clean.len() as i64).filter(|&i| clean_pairs || !clean[i as usize]).collect();
    (!rows.is_empty()).then(|| Tensor::from_slice(&rows).to_device(device))
}

/// Every loss term (in the order of [`losses::TERMS`]), the inactive ones as zeros. `sr` is the pipeline's output,
/// present when a term on the image is weighted; `adversarial` comes with the rows it scores.
pub(super) fn loss_terms(
    config: &TrainConfig,
    model: &SrModel,
    inputs: &StepInputs,
    sr: Option<&Tensor>,
    adversarial: Option<(&Adversarial, &Tensor)>,
    flow: &FlowDraw,
) -> Result<Vec<Tensor>> {
    let StepInputs { hr, lr, conditioning } = *inputs;
    let zero = || Tensor::zeros([], (Kind::Float, hr.device()));
    let w = &config.loss;
    // The HR latent, encoded once for the terms that take it: with its gradient for the autoencoder's
    // reconstruction, detached as the latent and velocity targets.
    let hr_latent = match (w.autoencoder > 0.0, w.latent_mse > 0.0 || w.flow_matching > 0.0) {
        (true, _) => Some(model.encode(hr)?),
        (false, true) => Some(no_grad(|| model.encode(hr))?),
        (false, false) => None,
    };
    let target = || hr_latent.as_ref().expect("encoded for the terms that take it").detach();
    let latent = if w.latent_mse > 0.0 {
        let start = model.with_start_noise(model.encode_lr(lr)?, 0);
        losses::l2(&model.sample_with(&start, model.config.sampler.steps, conditioning)?, &target())
    } else {
        zero()
    };
    let on_image = |term: fn(&Tensor, &Tensor) -> Tensor, weight: f64| match sr {
        Some(sr) if weight > 0.0 => term(sr, hr),
        _ => zero(),
    };
    let adv = match (adversarial, sr) {
        (Some((a, rows)), Some(sr)) if w.adversarial > 0.0 => {
            losses::generator_adversarial(&a.disc.forward(&sr.index_select(0, rows)))
        }
        _ => zero(),
    };
    Ok(vec![
        on_image(losses::l1, w.pixel_l1),
        on_image(losses::l2, w.pixel_l2),
        on_image(losses::edge, w.edge),
        latent,
        adv,
        if w.flow_matching > 0.0 { flow_matching(model, conditioning, &target(), lr, flow)? } else { zero() },
        match (&hr_latent, w.autoencoder > 0.0) {
            (Some(latent), true) => losses::l1(&model.decode(latent)?, hr),
            _ => zero(),
        },
    ])
}
