//! Small fixtures for the tests of training, in this crate and in the command line's: a pool of textured
//! photos and a tiny SANA-SR model that trains in seconds.

use std::path::Path;

use sana_sr_data::io::save_image;
use sana_sr_data::Image;
use sana_sr_pipeline::SrModelConfig;

/// Six photo-like images `pool/0.png` .. `pool/5.png` in `dir` (created), `width + 7·i` by `height` pixels:
/// stripes of texture on a checkerboard, so that crops differ and an SR model has detail to learn.
pub fn write_textured_pool(dir: &Path, width: usize, height: usize) {
    std::fs::create_dir_all(dir.join("pool")).expect("the test folder is writable");
    for i in 0..6usize {
        let w = width + 7 * i;
        let data = (0..w * height * 3)
            .map(|k| {
                let (x, y, c) = ((k / 3) % w, (k / 3) / w, k % 3);
                let v = ((x * (i + 2) + y * 3 + c * 40) % 64) as f32 / 64.0;
                0.2 + 0.6 * v * ((x / 8 + y / 8 + i) % 2) as f32
            })
            .collect();
        save_image(&Image::new(w, height, 3, data), dir.join(format!("pool/{i}.png"))).expect("the pool is written");
    }
}

/// A x4 SANA-SR model of a few thousand parameters (DC-AE of 8 and 16 channels, a 2-block DiT) named `name`.
pub fn tiny_model_config(name: &str) -> SrModelConfig {
    let json = r#"{"name": "", "scale": 4, "scales": [4], "timestep": 500.0, "lr_skip": true, "condition_tokens": 2,
      "vae": {"latent_channels": 4, "attention_head_dim": 4,
              "encoder_block_types": ["ResBlock", "EfficientViTBlock"], "decoder_block_types": ["ResBlock", "EfficientViTBlock"],
              "encoder_block_out_channels": [8, 16], "decoder_block_out_channels": [8, 16],
              "encoder_layers_per_block": [1, 1], "decoder_layers_per_block": [1, 1],
              "encoder_qkv_multiscales": [[], [3]], "decoder_qkv_multiscales": [[], [3]]},
      "transformer": {"in_channels": 4, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 8,
                      "num_layers": 2, "num_cross_attention_heads": 2, "cross_attention_head_dim": 8,
                      "cross_attention_dim": 16, "caption_channels": 8}}"#;
    SrModelConfig { name: name.to_string(), ..serde_json::from_str(json).expect("a valid model config") }
}
