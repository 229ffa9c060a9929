//! The Real-ESRGAN pipeline end to end: config, draw statistics, reproducibility.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sana_sr_core::{Device, Kind, Tensor};
use sana_sr_data::degradations::noise::NoiseKind;
use sana_sr_data::degradations::pipeline::pair_rng;
use sana_sr_data::degradations::{Degradation, DegradeError, RealEsrganConfig};
use sana_sr_data::resize::interpolate::Mode;

fn config_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/realesrgan_x4plus.toml")
}

/// A 256x256 colour texture with edges and smooth areas.
fn hr_image() -> Tensor {
    let n = 256;
    let y = Tensor::arange(n, (Kind::Float, Device::Cpu)).view([1, 1, n, 1]) / n as f64;
    let x = Tensor::arange(n, (Kind::Float, Device::Cpu)).view([1, 1, 1, n]) / n as f64;
    let r = ((&x * 40.0).sin() * (&y * 7.0).cos() * 0.4 + 0.5).clamp(0.0, 1.0);
    let g = ((&x + &y) * 0.5).clamp(0.0, 1.0);
    let b = ((&x - &y).abs().ge(0.3).to_kind(Kind::Float) * 0.6 + 0.2).clamp(0.0, 1.0);
    Tensor::cat(&[r, g, b], 1)
}

#[test]
fn the_config_file_is_the_x4plus_default() {
    let config = RealEsrganConfig::from_toml_file(config_path()).unwrap();
    assert_eq!(config, RealEsrganConfig::default());
    let partial: RealEsrganConfig = toml::from_str("jpeg_range = [60.0, 95.0]").unwrap();
    assert_eq!(partial.jpeg_range, [60.0, 95.0]);
    assert_eq!(partial.noise_range, [1.0, 30.0]);
    assert!(toml::from_str::<RealEsrganConfig>("jpeg_rnage = [60.0, 95.0]").is_err(), "typos are errors");
    let bad: RealEsrganConfig = toml::from_str("gray_noise_prob = 1.5").unwrap();
    assert!(bad.validate().is_err());
}

#[test]
fn same_seed_same_pair_other_seed_other_pair() {
    let degradation = Degradation::new(RealEsrganConfig::default()).unwrap();
    let hr = hr_image();
    let lr = |seed, index| degradation.degrade(&hr, &mut pair_rng(seed, index)).unwrap();
    let a = lr(1, 0);
    assert_eq!(a.size(), [1, 3, 64, 64]);
    assert!(a.equal(&lr(1, 0)));
    assert!(!a.equal(&lr(2, 0)));
    assert!(!a.equal(&lr(1, 1)));
    // 8-bit levels in [0, 1], as the reference's final rounding leaves them: k/255 in float32 times 255 is
    // within a rounding or two of k (255·2·2^-24 ≈ 3e-5), where a value off the levels would be up to 0.5 away.
    let levels = &a * 255.0;
    assert!((&levels - levels.round()).abs().max().double_value(&[]) < 1e-4);
    assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
}

#[test]
fn the_lr_is_a_degraded_view_of_the_hr() {
    // Whatever the draw, the LR must still show the HR's content: close to its area downscale.
    let degradation = Degradation::new(RealEsrganConfig::default()).unwrap();
    let hr = hr_image();
    let reference = hr.adaptive_avg_pool2d([64, 64]);
    for index in 0..8 {
        let lr = degradation.degrade(&hr, &mut pair_rng(9, index)).unwrap();
        let mse = (&lr - &reference).square().mean(Kind::Double).double_value(&[]);
        let psnr = 10.0 * (1.0 / mse).log10();
        assert!(psnr > 12.0 && psnr < 60.0, "pair {index}: PSNR {psnr:.1} dB against the area downscale");
    }
}

#[test]
fn draws_follow_the_configured_odds_and_ranges() {
    let config = RealEsrganConfig::default();
    let degradation = Degradation::new(config.clone()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 4000;
    let (mut up, mut down, mut gaussian, mut gray, mut second_blur, mut sinc, mut jpeg_last) = (0, 0, 0, 0, 0, 0, 0);
    let mut modes = [0; 3];
    for _ in 0..n {
        let p = degradation.sample(&mut rng);
        let s = p.first.resize_scale;
        assert!((config.resize_range[0]..config.resize_range[1]).contains(&s));
        up += (s > 1.0) as usize;
        down += (s < 1.0) as usize;
        modes[Mode::REAL_ESRGAN.iter().position(|&m| m == p.first.resize_mode).unwrap()] += 1;
        assert!((config.resize_range2[0]..config.resize_range2[1]).contains(&p.second.resize_scale));
        for (quality, range) in [(p.first.jpeg_quality, config.jpeg_range), (p.second.jpeg_quality, config.jpeg_range2)]
        {
            assert!((range[0]..range[1]).contains(&quality));
        }
        match p.first.noise.kind {
            NoiseKind::Gaussian { sigma } => {
                gaussian += 1;
                assert!((config.noise_range[0]..config.noise_range[1]).contains(&sigma));
            }
            NoiseKind::Poisson { scale } => {
                assert!((config.poisson_scale_range[0]..config.poisson_scale_range[1]).contains(&scale))
            }
        }
        if let NoiseKind::Gaussian { sigma } = p.second.noise.kind {
            assert!((config.noise_range2[0]..config.noise_range2[1]).contains(&sigma));
        }
        gray += p.first.noise.gray as usize;
        second_blur += p.second.blur.is_some() as usize;
        sinc += p.final_sinc.is_some() as usize;
        jpeg_last += p.jpeg_last as usize;
        assert!(p.second_order, "x4plus always degrades twice");
        for kernel in [&p.first.blur, &p.second.blur, &p.final_sinc].into_iter().flatten() {
            assert_eq!(kernel.size, 21);
            assert!((kernel.weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
    // Binomial counts: 4 standard deviations at n = 4000 is at most 0.032.
    let near = |count: usize, p: f64, what: &str| {
        let f = count as f64 / n as f64;
        assert!((f - p).abs() < 0.032, "{what}: {f:.3} vs {p}");
    };
    near(up, config.resize_prob[0], "up");
    near(down, config.resize_prob[1], "down");
    near(gaussian, config.gaussian_noise_prob, "gaussian noise");
    near(gray, config.gray_noise_prob, "gray noise");
    near(second_blur, config.second_blur_prob, "second blur");
    near(sinc, config.final_sinc_prob, "final sinc");
    near(jpeg_last, 0.5, "JPEG last");
    for count in modes {
        near(count, 1.0 / 3.0, "resize mode");
    }
}

#[test]
fn resshift_settings_skip_the_second_stage_half_the_time() {
    let path = config_path().with_file_name("resshift_realesrgan.toml");
    let config = RealEsrganConfig::from_toml_file(path).unwrap();
    assert_eq!(config, RealEsrganConfig { second_order_prob: 0.5, ..RealEsrganConfig::default() });
    let degradation = Degradation::new(config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 4000;
    let twice = (0..n).filter(|_| degradation.sample(&mut rng).second_order).count();
    assert!((twice as f64 / n as f64 - 0.5).abs() < 0.032, "{twice} of {n} degraded twice");

    // Without the second stage its blur, resize and noise have no effect; with it they do.
    let hr = hr_image();
    let mut p = degradation.sample(&mut pair_rng(5, 0));
    p.second_order = false;
    let once = degradation.apply(&hr, &p).unwrap();
    let mut heavier = p.clone();
    heavier.second.noise.kind = NoiseKind::Gaussian { sigma: 25.0 };
    heavier.second.resize_scale = 0.5;
    assert!(degradation.apply(&hr, &heavier).unwrap().equal(&once));
    heavier.second_order = true;
    assert!(!degradation.apply(&hr, &heavier).unwrap().equal(&once));
    assert_eq!(once.size(), [1, 3, 64, 64]);
}

#[test]
fn images_too_small_for_the_kernels_are_refused() {
    let degradation = Degradation::new(RealEsrganConfig::default()).unwrap();
    assert_eq!(degradation.min_hr_size(), 74);
    let small = Tensor::zeros([1, 3, 73, 200], (Kind::Float, Device::Cpu));
    let err = degradation.degrade(&small, &mut pair_rng(0, 0)).unwrap_err();
    assert!(matches!(err, DegradeError::TooSmall { .. }), "{err}");
    let gray = Tensor::zeros([1, 1, 128, 128], (Kind::Float, Device::Cpu));
    assert!(matches!(degradation.degrade(&gray, &mut pair_rng(0, 0)), Err(DegradeError::Shape(_))));
    // Every draw works at the minimum size.
    let tiny = Tensor::full([1, 3, 74, 74], 0.5, (Kind::Float, Device::Cpu));
    for index in 0..100 {
        let lr = degradation.degrade(&tiny, &mut pair_rng(3, index)).unwrap();
        assert_eq!(lr.size(), [1, 3, 18, 18]);
    }
}

#[test]
fn resshift_test_settings_draw_only_mild_degradations() {
    let path = config_path().with_file_name("resshift_imagenet_test.toml");
    let config = RealEsrganConfig::from_toml_file(path).unwrap();
    let degradation = Degradation::new(config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for _ in 0..2000 {
        let p = degradation.sample(&mut rng);
        assert!(!p.second_order, "ResShift's test pairs were degraded once");
        match p.first.noise.kind {
            NoiseKind::Gaussian { sigma } => assert!((1.0..=15.0).contains(&sigma), "noise sigma {sigma}"),
            NoiseKind::Poisson { scale } => assert!((0.05..=0.3).contains(&scale), "Poisson scale {scale}"),
        }
        assert!((0.5..=1.5).contains(&p.first.resize_scale), "resize {}", p.first.resize_scale);
        assert!((70.0..=95.0).contains(&p.first.jpeg_quality), "JPEG {}", p.first.jpeg_quality);
        assert!((80.0..=100.0).contains(&p.second.jpeg_quality), "last JPEG {}", p.second.jpeg_quality);
        assert!(p.first.blur.as_ref().is_none_or(|k| k.size <= 11), "kernels up to 11 taps");
    }
}

#[test]
fn clean_pairs_are_the_benchmarks_bicubic_downscale() {
    use sana_sr_data::resize::matlab::imresize_uint8;
    use sana_sr_data::tensor::{to_image, to_tensor};

    let path = config_path().with_file_name("realesrgan_x4plus_clean.toml");
    let config = RealEsrganConfig::from_toml_file(path).unwrap();
    assert_eq!(config, RealEsrganConfig { clean_prob: 0.3, ..RealEsrganConfig::default() });
    let degradation = Degradation::new(config).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let n = 4000;
    let clean = (0..n).filter(|_| degradation.sample(&mut rng).clean).count();
    // Binomial: 4 standard deviations at n = 4000 and p = 0.3 is 0.029.
    assert!((clean as f64 / n as f64 - 0.3).abs() < 0.029, "{clean} of {n} clean");
    assert!(toml::from_str::<RealEsrganConfig>("clean_prob = 1.5").unwrap().validate().is_err());

    // A clean pair is MATLAB's uint8 imresize of the 8-bit HR image, whatever else was drawn.
    let hr = (hr_image() * 255.0).round() / 255.0;
    let mut p = degradation.sample(&mut pair_rng(7, 0));
    p.clean = true;
    let lr = degradation.apply(&hr, &p).unwrap();
    let reference = to_tensor(&imresize_uint8(&to_image(&hr).unwrap(), 0.25).unwrap(), Device::Cpu);
    assert!(lr.equal(&reference));
    p.clean = false;
    assert!(!degradation.apply(&hr, &p).unwrap().equal(&reference));

    // A config without clean pairs draws exactly what it drew before the option existed.
    let plain = Degradation::new(RealEsrganConfig::default()).unwrap();
    assert!((0..200).all(|i| !plain.sample(&mut pair_rng(8, i)).clean));
}
