//! Teachers: frozen models whose outputs on the student's LR batch are targets beside the HR image
//! (`[[teacher]]` in the config). A teacher runs in-process on the run's device, through the pipeline's own
//! untiled forward ([`forward_batch`]: a peer on the LR image mirrored at the border, a SANA-SR model on its
//! own resize of it), so its target is the image the upscaler gives untiled.
//!
//! A teacher has no state to save: it is loaded again on resume, and its output is a function of the batch,
//! which is a function of (seed, index).

use sana_sr_core::{no_grad, Device, Kind, Tensor};
use sana_sr_data::loader::Batch;
use sana_sr_pipeline::upscaler::forward_batch;
use sana_sr_pipeline::{ModelSource, Network};

use crate::config::{PixelTerm, TeacherConfig};
use crate::losses;
use crate::trainer::TrainError;

/// A loaded, frozen teacher.
pub struct Teacher {
    pub config: TeacherConfig,
    /// Its name in the log and in messages.
    pub label: String,
    network: Network,
    /// Holds the weights, none of which requires a gradient.
    vs: sana_sr_core::nn::VarStore,
    scale: u32,
}

impl Teacher {
    /// Loads the teacher onto `device`, frozen, for a run at `scale`; an unknown or unreadable model, or one
    /// that does not upscale by `scale`, is refused naming the teacher.
    pub fn load(config: &TeacherConfig, scale: u32, device: Device) -> Result<Self, TrainError> {
        let label = config.label();
        let fail = |reason: String| TrainError::Teacher { name: label.clone(), reason };
        let source = ModelSource::resolve(&config.model).map_err(|e| fail(e.to_string()))?;
        let (network, vs) = source.load_network(device).map_err(|e| fail(e.to_string()))?;
        let scales = network.config().scales();
        if !scales.contains(&scale) {
            let by = scales.iter().map(|s| format!("{s}x")).collect::<Vec<_>>().join(", ");
            return Err(fail(format!("it upscales by {by}, the student is trained at {scale}x")));
        }
        // Frozen: no variable takes part in autograd, so no gradient can reach it. There is nothing else to
        // switch to evaluation mode: these networks have no dropout or batch statistics (the DiT's `dropout`
        // is 0 and never applied), so a forward pass is the same function in training and inference.
        for (_, var) in vs.variables() {
            if var.is_floating_point() {
                let _ = var.set_requires_grad(false);
            }
        }
        Ok(Self { config: config.clone(), label, network, vs, scale })
    }

    /// The teacher's image of a batch's LR images in [0, 1], in [-1, 1] terms and clamped as the upscaler
    /// clamps, float32, outside autograd; for a clean pair (the HR's bicubic downscale, nothing destroyed) the
    /// HR image itself, the exact answer a teacher trained on degraded inputs would only smooth. Call it under
    /// the student's compute kind: a teacher that is the student's copy then computes the student's numbers
    /// exactly.
    pub fn target(&self, batch: &Batch) -> Result<Tensor, TrainError> {
        let sr = no_grad(|| forward_batch(&self.network, &batch.lr, self.scale))
            .map_err(|e| TrainError::Teacher { name: self.label.clone(), reason: e.to_string() })?;
        let target = sr.to_kind(Kind::Float).clamp(-1.0, 1.0);
        if !batch.clean.contains(&true) {
            return Ok(target);
        }
        let clean = Tensor::from_slice(&batch.clean).view([-1, 1, 1, 1]).to_device(target.device());
        Ok((&batch.hr * 2.0 - 1.0).to_kind(Kind::Float).where_self(&clean, &target))
    }

    /// The names of its weighted terms in the log, in the order [`Self::terms`] returns them.
    pub fn columns(&self) -> Vec<String> {
        let weighted = self.config.weights().into_iter().filter(|(_, w)| *w > 0.0);
        weighted.map(|(term, _)| format!("teacher_{}_{}", self.label, term.name())).collect()
    }

    /// The weighted terms' `(value, weight)`: the student's SR image `sr` (in [-1, 1] terms, float32)
    /// against `target`, this teacher's image of the same batch.
    pub fn terms(&self, sr: &Tensor, target: &Tensor) -> Vec<(Tensor, f64)> {
        let sr = losses::seen_as_target(sr, target);
        let weighted = self.config.weights().into_iter().filter(|(_, w)| *w > 0.0);
        weighted
            .map(|(term, w)| {
                let value = match term {
                    PixelTerm::L1 => losses::l1(&sr, target),
                    PixelTerm::L2 => losses::l2(&sr, target),
                    PixelTerm::Edge => losses::edge(&sr, target),
                };
                (value, w)
            })
            .collect()
    }

    /// Its weights, for tests: none may change or receive a gradient.
    pub fn variables(&self) -> Vec<(String, Tensor)> {
        self.vs.variables().into_iter().collect()
    }
}
