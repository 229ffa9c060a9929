//! `sana-sr data make-pairs` and `sana-sr eval` on a set of one's own.

mod common;

use common::{sana_sr, stderr};
use sana_sr_data::io::save_image;
use sana_sr_data::Image;

#[test]
fn a_made_set_of_pairs_is_scored_like_a_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    for (i, name) in ["a.png", "b.png"].iter().enumerate() {
        let (w, h) = (210, 200);
        let data =
            (0..w * h * 3).map(|k| (((k / 3) % w) as f32 * 0.3 + ((k / 3) / w + i) as f32 * 0.17).sin() * 0.4 + 0.5);
        save_image(&Image::new(w, h, 3, data.collect()), dir.path().join("photos").join(name)).unwrap();
    }
    let make = ["data", "make-pairs", "photos", "--out", "sets/mine", "--crop", "192", "--variants", "2"];
    let out = sana_sr(&make, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("sets/mine/gt/b_1.png").is_file() && dir.path().join("sets/mine/lq/b_1.png").is_file());
    let before = std::fs::read(dir.path().join("sets/mine/lq/a_0.png")).unwrap();
    let again = sana_sr(&[&make[..], &["--seed", "1"]].concat(), dir.path());
    assert!(!again.status.success() && stderr(&again).contains("already holds images"), "{}", stderr(&again));
    assert_eq!(std::fs::read(dir.path().join("sets/mine/lq/a_0.png")).unwrap(), before);

    let missing = sana_sr(&["data", "make-pairs", "photos", "absent.png", "--out", "sets/other"], dir.path());
    assert!(!missing.status.success() && stderr(&missing).contains("absent.png"), "{}", stderr(&missing));
    assert!(!dir.path().join("sets/other").exists(), "nothing is written when an input is missing");

    let eval = ["eval", "--datasets", "sets", "--sets", "mine", "--method", "bicubic", "--out", "scores"];
    let out = sana_sr(&eval, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(dir.path().join("scores/quality.csv")).unwrap();
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("mine,bicubic,") && row.ends_with(",4,0"), "{csv}");

    std::fs::create_dir(dir.path().join("sets/flat")).unwrap();
    std::fs::copy(dir.path().join("photos/a.png"), dir.path().join("sets/flat/a.png")).unwrap();
    let flat = sana_sr(&["eval", "--datasets", "sets", "--sets", "flat", "--out", "flat"], dir.path());
    assert!(!flat.status.success() && stderr(&flat).contains("gt/ and lq/"), "{}", stderr(&flat));
}

#[test]
fn methods_whose_rows_would_share_a_name_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["mine/gt", "mine/lq"] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        save_image(&Image::new(8, 8, 3, vec![0.5; 192]), dir.path().join(folder).join("a.png")).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("x/mine")).unwrap();
    let args = [
        "eval",
        "--datasets",
        ".",
        "--sets",
        "mine",
        "--method",
        "bicubic",
        "--method",
        "folder:bicubic=x",
        "--out",
        "o",
    ];
    let out = sana_sr(&args, dir.path());
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("two methods are named \"bicubic\""), "{}", stderr(&out));
}

#[test]
fn the_tile_option_reaches_the_model_methods() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, side) in [("mine/gt", 192), ("mine/lq", 48)] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        let image = Image::new(side, side, 3, vec![0.5; side * side * 3]);
        save_image(&image, dir.path().join(folder).join("a.png")).unwrap();
    }
    let eval = |tile: &str, out: &str| {
        let args = ["eval", "--datasets", ".", "--sets", "mine", "--method", "model", "--tile", tile, "--out", out];
        sana_sr(&args, dir.path())
    };
    // A tile below the model's smallest fails the image (as `upscale --tile 8` fails); whole, it is scored.
    let row = |out: &str| {
        let csv = std::fs::read_to_string(dir.path().join(out).join("quality.csv")).unwrap();
        csv.lines().nth(1).unwrap().to_owned()
    };
    eval("8", "small");
    assert!(row("small").ends_with(",0,1"), "{}", row("small"));
    let whole = eval("0", "whole");
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert!(row("whole").ends_with(",1,0"), "{}", row("whole"));
}
