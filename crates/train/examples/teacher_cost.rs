//! The cost of a teacher per training step against the student's step, on the CPU (docs/decisions.md,
//! "Teachers"): sana-sr-tiny's forward and backward on a batch of 8 96-pixel crops, and each imported peer's
//! forward on their 24-pixel LR crops as the trainer runs it (`forward_batch`, no gradient), 2 threads:
//!
//!     SANA_SR_MODELS=$PWD/data/peers/models cargo run --release -p sana-sr-train --example teacher_cost
use std::time::Instant;

use sana_sr_core::{no_grad, Device, Kind, Tensor};
use sana_sr_pipeline::upscaler::forward_batch;
use sana_sr_pipeline::ModelSource;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    sana_sr_core::set_num_threads(2);
    let (batch, crop) = (8i64, 96i64);
    let lr = Tensor::rand([batch, 3, crop / 4, crop / 4], (Kind::Float, Device::Cpu));
    let (student, _vs) = ModelSource::resolve("sana-sr-tiny").unwrap().load(Device::Cpu).unwrap();
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let x = student.resize_input(&lr, crop, crop) * 2.0 - 1.0;
        let sr = student.forward(&x).unwrap();
        let loss = (sr - &x).abs().mean(Kind::Float);
        loss.backward();
        times.push(t.elapsed().as_secs_f64());
    }
    println!("student forward+backward, batch {batch} crop {crop}: median {:.3} s", median(times));
    for name in ["realesr-general-x4v3", "realesrgan-x4plus"] {
        let (net, _vs) = ModelSource::resolve(name).unwrap().load_network(Device::Cpu).unwrap();
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let _ = no_grad(|| forward_batch(&net, &lr, 4)).unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        println!("{name} forward (no grad), batch {batch} LR {}: median {:.3} s", crop / 4, median(times));
    }
}
