//! Structured pruning (`sana_sr_model::prune`) on the tiny parity models: a network built from a plan, at its
//! per-block widths and with its sliced weights, computes what the unpruned one computes with the removed
//! units' readers zeroed; its count (`cost`) is what its layers record; a plan that keeps everything changes
//! nothing; depth-only plans leave diffusers configs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sana_sr_core::{nn, no_grad, Device, Kind, Tensor};
use sana_sr_model::autoencoders::{AutoencoderDc, AutoencoderDcConfig, Side};
use sana_sr_model::checkpoint::{self, Pretrained};
use sana_sr_model::cost::{self, dc_ae, sana_transformer};
use sana_sr_model::prune::{ae_units, dit_units, Plan, Unit};
use sana_sr_model::transformers::{SanaTransformer2DModel, SanaTransformerConfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn variables(vs: &nn::VarStore) -> HashMap<String, Tensor> {
    vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect()
}

/// Zeroes the readers of `units` in `vs` (paths inside the network).
fn zero_readers(vs: &nn::VarStore, units: &[Unit], dit: &SanaTransformerConfig, ae: &AutoencoderDcConfig) {
    let vars = vs.variables();
    no_grad(|| {
        for unit in units {
            for slice in unit.readers(dit, ae) {
                let _ = slice.of(&vars[&slice.var]).zero_();
            }
        }
    });
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn a_pruned_dit_computes_what_the_zeroed_one_does() {
    for name in ["p1_plain", "p2_qknorm_posembed", "sprint"] {
        let dir = fixtures().join("sana_transformer").join(name);
        let (dit, vs) = SanaTransformer2DModel::from_pretrained(&dir, Device::Cpu).unwrap();
        let cfg = dit.config.clone();
        let ae = AutoencoderDcConfig::default();
        let units = dit_units(&cfg, 3);
        // One of each kind, and a whole block (when there are two or more).
        let removed: Vec<Unit> = [
            units.iter().find(|u| matches!(u, Unit::DitHead(0, 1))),
            units.iter().find(|u| matches!(u, Unit::DitCrossHead(0, 0))),
            units.iter().find(|u| matches!(u, Unit::DitFf(0, _))),
            units.iter().rfind(|u| matches!(u, Unit::DitBlock(_))),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        let mut plan = Plan::full(&cfg, &ae);
        removed.iter().for_each(|u| plan.remove(u));
        assert!(removed.iter().all(|u| !plan.keeps(u)));

        let pruned_cfg = plan.dit_config(&cfg);
        assert_eq!(pruned_cfg.num_layers, cfg.num_layers - 1);
        assert!(pruned_cfg.block_widths.is_some());
        let pruned_vs = nn::VarStore::new(Device::Cpu);
        let pruned = SanaTransformer2DModel::new(pruned_vs.root(), &pruned_cfg).unwrap();
        checkpoint::copy_into(&pruned_vs, plan.dit_weights(&cfg, &variables(&vs))).unwrap();
        zero_readers(&vs, &removed, &cfg, &ae);

        let x = Tensor::randn([2, cfg.in_channels, 6, 10], (Kind::Float, Device::Cpu));
        let text = Tensor::randn([2, 5, cfg.caption_channels], (Kind::Float, Device::Cpu));
        let t = Tensor::from_slice(&[300.0f32, 700.0]);
        let g = cfg.guidance_embeds.then(|| Tensor::from_slice(&[0.5f32, 0.2]));
        let want = no_grad(|| dit.forward(&x, &text, &t, None, g.as_ref()).unwrap());
        let (got, traced) = cost::count_macs(|| no_grad(|| pruned.forward(&x, &text, &t, None, g.as_ref()).unwrap()));
        assert!(max_diff(&got, &want) < 1e-5 * want.abs().max().double_value(&[]).max(1.0), "{name}");
        let counted = cost::total(&sana_transformer::transformer(&pruned_cfg, (6, 10), 5));
        // The count is per image; the batch holds two.
        assert_eq!(traced, 2 * counted.macs, "{name}");
        let params: u64 = pruned_vs.variables().values().map(|t| t.numel() as u64).sum();
        assert_eq!(params, counted.params, "{name}");
    }
}

#[test]
fn a_pruned_autoencoder_computes_what_the_zeroed_one_does() {
    for name in ["unshuffle", "lpb0_conv", "lpb0_unshuffle"] {
        let (ae, vs) = AutoencoderDc::from_pretrained(&fixtures().join("dc_ae").join(name), Device::Cpu).unwrap();
        let cfg = ae.config.clone();
        let dit = SanaTransformerConfig::default();
        let units = ae_units(&cfg, 2);
        // A hidden group of every block, and a block of every stage with two or more.
        let mut removed: Vec<Unit> =
            units.iter().filter(|u| matches!(u, Unit::AeHidden(.., r) if r.start == 0)).cloned().collect();
        for side in [Side::Encoder, Side::Decoder] {
            for (s, &blocks) in cfg.side(side).layers.iter().enumerate() {
                if blocks >= 2 {
                    removed.push(Unit::AeBlock(side, s, blocks - 1));
                }
            }
        }
        let mut plan = Plan::full(&dit, &cfg);
        removed.iter().for_each(|u| plan.remove(u));
        let pruned_cfg = plan.ae_config(&cfg);
        pruned_cfg.validate().unwrap();
        let pruned_vs = nn::VarStore::new(Device::Cpu);
        let pruned = AutoencoderDc::new(pruned_vs.root(), &pruned_cfg).unwrap();
        let mut weights = plan.ae_weights(&cfg, &variables(&vs));
        // BatchNorm's running statistics and counters are copied as they are.
        weights.retain(|k, _| pruned_vs.variables().contains_key(k));
        checkpoint::copy_into(&pruned_vs, weights).unwrap();
        zero_readers(&vs, &removed, &dit, &cfg);

        let image = Tensor::rand([1, 3, 16, 24], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let want = no_grad(|| ae.decode(&ae.encode(&image).unwrap()).unwrap());
        let latent = no_grad(|| pruned.encode(&image).unwrap());
        let (got, traced) = cost::count_macs(|| no_grad(|| pruned.decode(&latent).unwrap()));
        assert!(max_diff(&got, &want) < 1e-4, "{name}: {}", max_diff(&got, &want));
        let latent_size = (latent.size()[2], latent.size()[3]);
        assert_eq!(traced, cost::total(&dc_ae::decoder(&pruned_cfg, latent_size).0).macs, "{name}");
        let smaller = cost::total(&dc_ae::decoder(&pruned_cfg, latent_size).0).macs;
        assert!(smaller < cost::total(&dc_ae::decoder(&cfg, latent_size).0).macs);
    }
}

#[test]
fn keeping_everything_changes_nothing_and_depth_only_stays_diffusers() {
    let dir = fixtures().join("sana_transformer/p1_plain");
    let (_, vs) = SanaTransformer2DModel::from_pretrained(&dir, Device::Cpu).unwrap();
    let cfg: SanaTransformerConfig = checkpoint::read_config(&dir).unwrap();
    let ae: AutoencoderDcConfig = checkpoint::read_config(&fixtures().join("dc_ae/unshuffle")).unwrap();
    let full = Plan::full(&cfg, &ae);
    assert_eq!(full.dit_config(&cfg), cfg);
    assert_eq!(full.ae_config(&ae), ae);
    let weights = variables(&vs);
    let same = full.dit_weights(&cfg, &weights);
    assert!(weights.iter().all(|(k, v)| same[k].equal(v)));
    assert!(full.is_depth_only(&cfg, &ae));

    let mut plan = full.clone();
    plan.remove(&Unit::DitBlock(1));
    plan.remove(&Unit::AeBlock(Side::Decoder, 0, 1));
    assert!(plan.is_depth_only(&cfg, &ae));
    let json = serde_json::to_value(plan.dit_config(&cfg)).unwrap();
    assert!(json.get("block_widths").is_none() && json["num_layers"] == 2);
    let json = serde_json::to_value(plan.ae_config(&ae)).unwrap();
    assert!(json.get("decoder_block_hidden").is_none() && json["decoder_layers_per_block"][0] == 1);
    plan.remove(&Unit::DitHead(0, 0));
    assert!(!plan.is_depth_only(&cfg, &ae));
}
