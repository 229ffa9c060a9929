//! `sana-sr models import` and a peer network through `upscale`: a tiny SRVGGNetCompact written here as ncnn
//! files (the layout of Upscayl's realesrgan-x4fast), imported into a temporary models folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::sana_sr;
use sana_sr_data::io::{read_image, save_image};
use sana_sr_data::Image;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `tiny.param` + `tiny.bin`: 3 -> 4 -> 4 -> 48 channels with PReLUs, pixel shuffle x4, plus the input
/// upsampled by nearest; float32 weights (tag 0) from a fixed sequence.
fn write_tiny_srvgg(dir: &Path) -> PathBuf {
    let param = "7767517\n10 11\n\
        Input in 0 1 data 0=0\n\
        Split sp 1 2 data d0 d1\n\
        Convolution c0 1 1 d1 b0 0=4 1=3 4=1 5=1 6=108\n\
        PReLU p0 1 1 b0 b1 0=4\n\
        Convolution c1 1 1 b1 b2 0=4 1=3 4=1 5=1 6=144\n\
        PReLU p1 1 1 b2 b3 0=4\n\
        Convolution c2 1 1 b3 b4 0=48 1=3 4=1 5=1 6=1728\n\
        PixelShuffle ps 1 1 b4 b5 0=4\n\
        Interp up 1 1 d0 b6 0=1 1=4.000000e+00 2=4.000000e+00\n\
        BinaryOp add 2 1 b5 b6 output 0=0\n";
    let mut bin = Vec::new();
    let mut values = (0..).map(|i: i32| 0.1 * ((i as f32) * 0.77).sin());
    let mut floats = |bin: &mut Vec<u8>, n: usize| {
        for v in values.by_ref().take(n) {
            bin.extend(v.to_le_bytes());
        }
    };
    for (weights, out, prelu) in [(108, 4, true), (144, 4, true), (1728, 48, false)] {
        bin.extend(0u32.to_le_bytes());
        floats(&mut bin, weights + out);
        if prelu {
            floats(&mut bin, 4);
        }
    }
    std::fs::write(dir.join("tiny.bin"), bin).unwrap();
    let path = dir.join("tiny.param");
    std::fs::write(&path, param).unwrap();
    path
}

#[test]
fn an_imported_peer_is_listed_and_upscales() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_srvgg(dir.path());
    let out = sana_sr(&["models", "import", "tiny.param", "--name", "tiny-peer"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SRVGGNetCompact, float32"), "{}", text(&out));
    assert!(dir.path().join("models/tiny-peer.safetensors").is_file());

    let listed = text(&sana_sr(&["models"], dir.path()));
    let line = listed.lines().find(|l| l.contains("tiny-peer")).unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("SRVGGNetCompact") && line.contains("x4"), "{line}");

    let again = sana_sr(&["models", "import", "tiny.param", "--name", "tiny-peer"], dir.path());
    assert!(!again.status.success() && text(&again).contains("exists already"), "{}", text(&again));
    let replaced = sana_sr(&["models", "import", "tiny.param", "--name", "tiny-peer", "--overwrite"], dir.path());
    assert!(replaced.status.success(), "{}", text(&replaced));

    let data = (0..30 * 20 * 3).map(|i| (i % 89) as f32 / 88.0).collect();
    save_image(&Image::new(30, 20, 3, data), dir.path().join("photo.png")).unwrap();
    let up = sana_sr(&["upscale", "photo.png", "--model", "tiny-peer", "--device", "cpu"], dir.path());
    assert!(up.status.success(), "{}", text(&up));
    let sr = read_image(dir.path().join("photo_x4.png")).unwrap();
    assert_eq!((sr.width, sr.height), (120, 80));
}

#[test]
fn a_bad_ncnn_file_writes_nothing_and_names_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let param = write_tiny_srvgg(dir.path());
    let bin = std::fs::read(dir.path().join("tiny.bin")).unwrap();
    std::fs::write(dir.path().join("tiny.bin"), &bin[..bin.len() - 100]).unwrap();
    let out = sana_sr(&["models", "import", param.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("truncated: layer Convolution `c2`"), "{}", text(&out));

    std::fs::write(dir.path().join("tiny.bin"), &bin).unwrap();
    let text_param = std::fs::read_to_string(&param).unwrap().replace("PixelShuffle ps", "Reorg ps");
    std::fs::write(&param, text_param).unwrap();
    let out = sana_sr(&["models", "import", "tiny.param"], dir.path());
    assert!(text(&out).contains("layer Reorg `ps`: unknown layer type `Reorg`"), "{}", text(&out));
    assert!(!dir.path().join("models").join("tiny.safetensors").exists());
}
