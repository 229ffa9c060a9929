//! The image reader under a mutation fuzzer ([`sana_sr_core::fuzz`]): PNG, JPEG, WebP, TIFF and BMP seeds in
//! `tests/fuzz/image/`, mutated; any panic or hang is a finding, saved beside the seeds and replayed by every
//! run after. `SANA_SR_FUZZ_SECONDS=1800 cargo test -p sana-sr-data --test fuzz_image -- --nocapture` is a
//! long run (docs/fuzzing.md).

use std::path::{Path, PathBuf};

use sana_sr_core::fuzz::{self, Options};
use sana_sr_data::io::{
    image_size, read_image_and_metadata, write_image_with_metadata, Encoding, ReadOptions, WriteOptions,
};
use sana_sr_data::metadata::Metadata;
use sana_sr_data::Image;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/image")
}

#[test]
fn the_image_reader_survives_mutated_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input");
    // A limit that keeps every decode small: the fuzzer looks for panics and hangs, not for large images.
    let options = ReadOptions { max_pixels: 1 << 22 };
    let report = fuzz::run(
        &folder(),
        &Options::default(),
        |_, _| None,
        |input| {
            std::fs::write(&file, input).unwrap();
            let size = image_size(&file).map(|(w, h)| format!("{w}x{h}"));
            // The metadata too: its EXIF is parsed, its resolution read from the format's own fields.
            match read_image_and_metadata(&file, &options) {
                Ok((image, metadata)) => format!("ok {} channels, size {size:?}, {metadata:?}", image.channels),
                Err(err) => err.to_string(),
            }
        },
    );
    println!("{}", report.summary("image"));
    assert!(report.crashes.is_empty() && report.replay_failures.is_empty(), "{}", report.summary("image"));
}

/// Writes the seeds (run once with `--ignored`; the files are committed).
#[test]
#[ignore]
fn write_seeds() {
    let image = |w: usize, h: usize, c: usize| {
        Image::new(w, h, c, (0..w * h * c).map(|i| ((i * 37) % 101) as f32 / 100.0).collect())
    };
    let write_with = |name: &str, image: &Image, encoding: Encoding, metadata: &Metadata| {
        let options = WriteOptions { encoding, overwrite: true };
        write_image_with_metadata(image, folder().join(name), &options, metadata).unwrap();
    };
    let write = |name: &str, image: &Image, encoding: Encoding| write_with(name, image, encoding, &Metadata::default());
    write("seed-rgb8.png", &image(8, 6, 3), Encoding::Png { sixteen_bit: false });
    write("seed-gray-alpha16.png", &image(5, 7, 2), Encoding::Png { sixteen_bit: true });
    write("seed-rgba8.png", &image(4, 4, 4), Encoding::Png { sixteen_bit: false });
    write("seed-baseline.jpg", &image(16, 12, 3), Encoding::Jpeg { quality: 50 });
    write("seed-gray.jpg", &image(9, 9, 1), Encoding::Jpeg { quality: 80 });
    write("seed-lossless.webp", &image(8, 8, 4), Encoding::Webp { quality: None });
    write("seed-rgb16.tiff", &image(6, 5, 3), Encoding::Tiff { sixteen_bit: true });
    write("seed-rgba8.bmp", &image(5, 4, 4), Encoding::Bmp);
    // EXIF, an ICC profile and a resolution, for the metadata readers.
    let source = Metadata { icc: Some(b"profile".to_vec()), dpi: Some((72.0, 72.0)), ..Metadata::default() };
    let metadata = source.upscaled(8, 8, 2, "sana-sr seed");
    write_with("seed-metadata.jpg", &image(8, 8, 3), Encoding::Jpeg { quality: 60 }, &metadata);
    write_with("seed-metadata.png", &image(8, 8, 3), Encoding::Png { sixteen_bit: false }, &metadata);
    write_with("seed-lossy.webp", &image(8, 8, 3), Encoding::Webp { quality: Some(50) }, &metadata);
    let progressive = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/progressive.jpg");
    std::fs::copy(progressive, folder().join("seed-progressive.jpg")).unwrap();
}
