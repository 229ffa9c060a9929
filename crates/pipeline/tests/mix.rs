//! Network interpolation (`sana_sr_pipeline::mix`) on the built-in models: two fine-tunes of one network (the
//! faithful and the textured GAN models) and a network of another shape.

use std::collections::HashMap;

use sana_sr_core::{Device, Kind, Tensor};
use sana_sr_pipeline::mix::{mix, MixError, Part};
use sana_sr_pipeline::ModelSource;

const FAITHFUL: &str = "sana-sr-compact-pruned-gan-real";
const TEXTURED: &str = "sana-sr-compact-pruned-gan-extrapolated";

fn part(name: &str, weight: f64) -> Part {
    let (network, vars) = ModelSource::resolve(name).unwrap().load_network(Device::Cpu).unwrap();
    Part { label: name.to_string(), network, vars, weight }
}

/// A model's weights by name, as loaded.
fn weights(name: &str) -> HashMap<String, Tensor> {
    part(name, 1.0).vars.variables()
}

/// Every weight of the mix of the two GAN models against `a·faithful + b·textured` computed in float32: the
/// mix sums in float64 and rounds once, the reference rounds each product and the sum, so they differ by at
/// most four roundings of the magnitudes involved (2⁻²⁴ each, relative).
fn assert_weighted_sum(a: f64, b: f64) {
    let (mixed, vars) = mix(vec![part(FAITHFUL, a), part(TEXTURED, b)]).unwrap();
    assert_eq!(mixed.name(), FAITHFUL, "the first part's network, labels and all, until renamed");
    let (faithful, textured, mixed) = (weights(FAITHFUL), weights(TEXTURED), vars.variables());
    assert_eq!(mixed.len(), faithful.len());
    let mut moved = 0.0f64;
    for (name, got) in &mixed {
        let (x, y) = (&faithful[name], &textured[name]);
        let reference = x * a + y * b;
        let scale = (x * a).abs() + (y * b).abs();
        let excess = ((got - &reference).abs() - scale * 4.0 * 2f64.powi(-24)).max().double_value(&[]);
        assert!(excess <= 0.0, "{name}: off by {excess} beyond the bound at weights {a}, {b}");
        assert_eq!(got.kind(), Kind::Float);
        moved = moved.max((got - x).abs().max().double_value(&[]));
    }
    assert!(moved > 1e-3, "the mix moved the weights by {moved} at most: the second part was not summed in");
}

#[test]
fn a_mix_is_the_weighted_sum_of_its_parts() {
    assert_weighted_sum(0.25, 0.75);
    // Past the textured model along the difference.
    assert_weighted_sum(-0.5, 1.5);
}

#[test]
fn the_whole_weight_on_one_part_is_that_part() {
    let (_, vars) = mix(vec![part(FAITHFUL, 0.0), part(TEXTURED, 1.0)]).unwrap();
    let textured = weights(TEXTURED);
    for (name, got) in vars.variables() {
        assert!(got.equal(&textured[&name]), "{name}");
    }
}

#[test]
fn only_weights_summing_to_one_of_models_of_one_network_mix() {
    let err = |parts| mix(parts).map(drop).expect_err("refused").to_string();
    let sum = err(vec![part(FAITHFUL, 0.5), part(TEXTURED, 0.6)]);
    assert!(sum.contains("sum to 1.1") && sum.contains("not 1"), "{sum}");
    // Decimal weights that are not exact in binary still sum to 1.
    assert!(mix(vec![part(FAITHFUL, 0.1), part(TEXTURED, 0.2), part(FAITHFUL, 0.7)]).is_ok());

    let other = err(vec![part(TEXTURED, 0.5), part("sana-sr-compact", 0.5)]);
    assert!(
        other.contains("sana-sr-compact is not the same network as sana-sr-compact-pruned-gan-extrapolated"),
        "{other}"
    );
    let peerless = err(vec![part(TEXTURED, 0.5), part("sana-sr-tiny", 0.5)]);
    assert!(peerless.contains("not the same network"), "{peerless}");

    assert!(matches!(mix(vec![part(TEXTURED, 1.0)]), Err(MixError::TooFew(1))));
    let nan = err(vec![part(FAITHFUL, f64::NAN), part(TEXTURED, 1.0)]);
    assert!(nan.contains("of sana-sr-compact-pruned-gan-real is not a finite number"), "{nan}");
}
