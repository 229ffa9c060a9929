//! The evaluation loop on small synthetic sets written to a temporary folder.

use indicatif::ProgressBar;
use sana_sr_data::io::save_image;
use sana_sr_data::resize::matlab::imresize_uint8;
use sana_sr_data::Image;
use sana_sr_eval::dataset::{discover, FlatRole, Sample};
use sana_sr_eval::harness::{evaluate, image_count, Options};
use sana_sr_eval::inputs::mod_crop;
use sana_sr_eval::method::{Bicubic, Folder, Method, MethodError, SrOutput};
use sana_sr_eval::record::{Record, RECORD_FILE};
use sana_sr_metrics::{psnr_y, ssim_y};

/// A smooth colour image (low-frequency sinusoids, 8-bit quantised as it would be on disk) with
/// `detail` times a high-frequency pattern added: the more detail, the less bicubic x4 can restore.
fn scene(width: usize, height: usize, detail: f32) -> Image {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32, y as f32);
            for c in 0..3 {
                let smooth = 0.5 + 0.3 * ((fx * 0.05 + c as f32).sin() * (fy * 0.04 - c as f32).cos());
                let fine = detail * ((fx * 1.3 + fy * 0.7).sin() * (fy * 1.9).cos());
                data.push(((smooth + fine).clamp(0.0, 1.0) * 255.0).round() / 255.0);
            }
        }
    }
    Image::new(width, height, 3, data)
}

/// A new, empty record in `dir`.
fn record(dir: &tempfile::TempDir) -> Record {
    Record::create(&dir.path().join(RECORD_FILE)).unwrap()
}

#[test]
fn bicubic_scores_match_the_metrics_on_the_round_trip_and_fall_with_detail() {
    let root = tempfile::tempdir().unwrap();
    let set_dir = root.path().join("Synthetic");
    std::fs::create_dir(&set_dir).unwrap();
    // 194 x 198 is not a multiple of 4: the harness must mod-crop to 192 x 196.
    let smooth = scene(194, 198, 0.0);
    save_image(&smooth, set_dir.join("a_smooth.png")).unwrap();
    save_image(&scene(194, 198, 0.15), set_dir.join("b_detailed.png")).unwrap();

    let set = discover("Synthetic", &set_dir, FlatRole::HighResolution, 4).unwrap();
    let options = Options { panel_images: 1, panel_cell: 64, ..Options::default() };
    let mut methods: Vec<Box<dyn Method>> = vec![Box::new(Bicubic)];
    let evaluation =
        evaluate(std::slice::from_ref(&set), &mut methods, &options, &mut record(&root), &ProgressBar::hidden())
            .unwrap();
    assert!(evaluation.errors.is_empty(), "{:?}", evaluation.errors);

    // The same numbers computed by hand from the pieces: mod-crop, MATLAB 8-bit bicubic down and up,
    // metrics with crop border 4.
    let per_image = |hr: &Image| {
        let gt = mod_crop(hr, 4);
        let sr = imresize_uint8(&imresize_uint8(&gt, 0.25).unwrap(), 4.0).unwrap();
        (psnr_y(&sr, &gt, 4).unwrap(), ssim_y(&sr, &gt, 4).unwrap())
    };
    let (psnr_smooth, ssim_smooth) = per_image(&smooth);
    let (psnr_detailed, ssim_detailed) = per_image(&scene(194, 198, 0.15));
    assert!(psnr_smooth > 35.0 && psnr_smooth < 70.0, "a smooth scene survives x4 bicubic well: {psnr_smooth}");
    assert!(psnr_detailed < psnr_smooth - 5.0, "fine detail is lost: {psnr_detailed} vs {psnr_smooth}");
    assert!(ssim_detailed < ssim_smooth);

    let row = &evaluation.rows[0];
    assert_eq!((row.set.as_str(), row.method.as_str(), row.images, row.failed), ("Synthetic", "bicubic", 2, 0));
    let psnr = row.psnr_y.unwrap();
    let ssim = row.ssim_y.unwrap();
    assert!(
        (psnr - (psnr_smooth + psnr_detailed) / 2.0).abs() < 1e-9,
        "{psnr} vs hand-made {psnr_smooth}/{psnr_detailed}"
    );
    assert!((ssim - (ssim_smooth + ssim_detailed) / 2.0).abs() < 1e-9, "{ssim}");
    assert!(row.niqe.is_some_and(f64::is_finite));
    assert!(row.seconds_per_image.is_some_and(|s| s > 0.0));

    let (panel_set, panel) = &evaluation.panels[0];
    assert_eq!(panel_set, "Synthetic");
    // LR | bicubic | GT, one row, 64-pixel cells with 4-pixel gaps.
    assert_eq!((panel.width, panel.height), (3 * 64 + 4 * 4, 64 + 2 * 4));
}

#[test]
fn missing_and_corrupt_images_cost_one_line_each_and_the_run_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let set_dir = root.path().join("Real");
    // 50 px LR images: their 200 px outputs hold the two 96-pixel blocks NIQE needs at least.
    std::fs::create_dir(&set_dir).unwrap();
    for name in ["a", "b", "c"] {
        save_image(&scene(50, 50, 0.05), set_dir.join(format!("{name}.png"))).unwrap();
    }
    std::fs::write(set_dir.join("d.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    // The peer wrote outputs for a and c only (b is missing), c's is corrupt.
    let peer = root.path().join("peer/Real");
    std::fs::create_dir_all(&peer).unwrap();
    save_image(&scene(200, 200, 0.05), peer.join("a.png")).unwrap();
    std::fs::write(peer.join("c.png"), b"garbage").unwrap();
    std::fs::write(peer.join("timings.csv"), "stem,seconds\na,3.0\n").unwrap();

    let set = discover("Real", &set_dir, FlatRole::LowResolution, 4).unwrap();
    let options = Options { niqe_crop_border: 0, ..Options::default() };
    assert_eq!(image_count(std::slice::from_ref(&set), &options), 4);
    let mut methods: Vec<Box<dyn Method>> =
        vec![Box::new(Bicubic), Box::new(Folder::new("peer", root.path().join("peer")))];
    let evaluation =
        evaluate(std::slice::from_ref(&set), &mut methods, &options, &mut record(&root), &ProgressBar::hidden())
            .unwrap();

    let (bicubic, peer) = (&evaluation.rows[0], &evaluation.rows[1]);
    assert_eq!((bicubic.images, bicubic.failed), (3, 1));
    assert_eq!((peer.images, peer.failed), (1, 3));
    assert_eq!(peer.seconds_per_image, Some(3.0));
    assert!(bicubic.psnr_y.is_none() && bicubic.niqe.is_some(), "no ground truth: NIQE only");
    assert_eq!(evaluation.errors.len(), 3, "{:#?}", evaluation.errors);
    assert!(evaluation.errors.iter().any(|e| e.starts_with("Real/d: ") && e.contains("d.png")));
    assert!(evaluation.errors.iter().any(|e| e.starts_with("Real/b [peer]: no output")));
    assert!(evaluation.errors.iter().any(|e| e.starts_with("Real/c [peer]: ") && e.contains("c.png")));

    let limited = Options { max_images: Some(1), ..options };
    let evaluation =
        evaluate(std::slice::from_ref(&set), &mut methods, &limited, &mut record(&root), &ProgressBar::hidden())
            .unwrap();
    assert_eq!((evaluation.rows[0].images, evaluation.rows[1].images), (1, 1));
}

/// Bicubic under an identity the test chooses (as a model's weights or tiles would change it).
struct Identified(&'static str);

impl Method for Identified {
    fn name(&self) -> &str {
        "identified"
    }

    fn identity(&self) -> Option<String> {
        Some(self.0.into())
    }

    fn super_resolve(&mut self, set: &str, sample: &Sample, lr: &Image, scale: usize) -> Result<SrOutput, MethodError> {
        Bicubic.super_resolve(set, sample, lr, scale)
    }
}

#[test]
fn a_photo_two_sets_share_is_scored_once_and_a_resumed_run_computes_only_what_is_missing() {
    let root = tempfile::tempdir().unwrap();
    // Set B holds set A's photo under another name, and one of its own.
    for (set, name, detail) in [("A", "a", 0.05), ("B", "copy_of_a", 0.05), ("B", "b", 0.1)] {
        std::fs::create_dir_all(root.path().join(set)).unwrap();
        save_image(&scene(50, 50, detail), root.path().join(set).join(format!("{name}.png"))).unwrap();
    }
    let sets: Vec<_> =
        ["A", "B"].map(|name| discover(name, &root.path().join(name), FlatRole::LowResolution, 4).unwrap()).into();
    let options = Options { panel_images: 2, panel_cell: 32, ..Options::default() };
    let path = root.path().join(RECORD_FILE);
    let run = |identity: &'static str, record: &mut Record| {
        let mut methods: Vec<Box<dyn Method>> = vec![Box::new(Identified(identity))];
        let evaluation = evaluate(&sets, &mut methods, &options, record, &ProgressBar::hidden()).unwrap();
        // What was computed shows as what the record gained.
        (evaluation, record.len())
    };

    let mut fresh = Record::create(&path).unwrap();
    let (first, recorded) = run("v1", &mut fresh);
    assert_eq!(recorded, 2, "three images, two distinct photos: two scores made");
    let (a, b) = (&first.rows[0], &first.rows[1]);
    assert_eq!((a.images, b.images), (1, 2));
    // B's mean is over its own photo and A's score of the shared one.
    let own = evaluate(
        &[discover("B", &root.path().join("B"), FlatRole::LowResolution, 4).unwrap()],
        &mut [Box::new(Bicubic) as Box<dyn Method>],
        &Options { max_images: None, ..options.clone() },
        &mut record(&tempfile::tempdir().unwrap()),
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(b.niqe, own.rows[0].niqe, "reused scores are the scores");
    // The panel of B holds only the photo super-resolved in this run.
    let (_, panel_b) = &first.panels[1];
    assert_eq!(panel_b.height, 32 + 2 * 4, "one row");
    drop(fresh);

    let mut resumed = Record::resume(&path).unwrap();
    let (again, recorded) = run("v1", &mut resumed);
    assert_eq!(again.rows, first.rows, "resumed: every score reused, seconds included");
    assert!(again.panels.is_empty(), "nothing was super-resolved, so nothing to show");
    assert_eq!(recorded, 2, "nothing recomputed");

    let (other, recorded) = run("v2", &mut resumed);
    assert_eq!(recorded, 4, "another identity (other weights, other tiles) is scored afresh");
    assert_eq!(other.rows[1].images, 2);
}
