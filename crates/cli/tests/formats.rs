//! `sana-sr upscale` and the files themselves: output names that are files or folders, formats told by
//! content, and what a photo carries besides its pixels (ICC profile, EXIF, DPI, 16 bits) kept.

mod common;

use std::path::Path;

use common::{photo, sana_sr, stderr};
use exif::{Field, In, Tag, Value};
use sana_sr_data::io::{
    read_image, read_metadata, save_image, sniff_format, write_image_with_metadata, Encoding, WriteOptions,
};
use sana_sr_data::metadata::Metadata;
use sana_sr_data::Image;

/// The smallest GIF: 1x1, two colours.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn an_output_name_with_an_image_extension_is_a_file_and_a_contradiction_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "x.png", 12, 10);

    let out = sana_sr(&["upscale", "x.png", "-o", "x.tiff"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("x.tiff").is_file(), "x.tiff is a file, not a folder");
    assert_eq!(sniff_format(&cwd.join("x.tiff")), Some(image::ImageFormat::Tiff));
    assert_eq!(read_image(cwd.join("x.tiff")).unwrap().width, 48);

    let refused: &[(&[&str], &str)] = &[
        (&["-o", "out.jpg", "--format", "webp"], "-o out.jpg names a JPG file but --format asks for WEBP"),
        (&["-o", "-"], "writing to standard output (`-o -`) is not supported"),
        (&["-o", "out.gif"], "GIF is not a format sana-sr writes"),
        (&["-o", "out.png", "--quality", "80"], "--quality is for JPEG and WebP outputs; PNG is lossless"),
    ];
    for (options, expected) in refused {
        let out = sana_sr(&[&["upscale", "x.png"], *options].concat(), cwd);
        assert_eq!(out.status.code(), Some(1), "{options:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{options:?}: {}", stderr(&out));
    }
    let out = sana_sr(&["upscale", "-", "-o", "sharp"], cwd);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("-: reading standard input is not supported"), "{}", stderr(&out));
    // A trailing slash makes a folder of any name.
    let out = sana_sr(&["upscale", "x.png", "-o", "results.png/"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cwd.join("results.png/x_x4.png").is_file());
    assert_eq!(names(cwd), ["results.png", "sharp", "x.png", "x.tiff"], "nothing else was written");
}

#[test]
fn formats_are_told_by_content_and_unsupported_ones_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "photo.png", 12, 10);
    photo(cwd, "photo.tiff", 10, 8);
    photo(cwd, "scan.bmp", 8, 8);
    photo(cwd, "real-jpeg.jpg", 8, 6);
    std::fs::rename(cwd.join("real-jpeg.jpg"), cwd.join("named-png.png")).unwrap();
    std::fs::write(cwd.join("photo.gif"), GIF).unwrap();
    std::fs::write(cwd.join("notes.txt"), "not an image").unwrap();

    let out = sana_sr(&["upscale", ".", "-o", "out"], cwd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "photo.gif` is a GIF image, a format sana-sr does not read (it reads PNG, JPEG, WebP, TIFF and BMP)"
        ),
        "{err}"
    );
    assert!(err.contains("1 of 5 image(s) failed"), "{err}");
    // photo.png and photo.tiff would both be photo_x4.png: each keeps its extension in its name.
    assert_eq!(names(&cwd.join("out")), ["named-png_x4.png", "photo_png_x4.png", "photo_tiff_x4.png", "scan_x4.png"]);
    assert_eq!(read_image(cwd.join("out/scan_x4.png")).unwrap().width, 32);

    // BMP and TIFF are written too.
    for (format, expected) in [("bmp", image::ImageFormat::Bmp), ("tiff", image::ImageFormat::Tiff)] {
        let out = sana_sr(&["upscale", "scan.bmp", "--format", format, "-o", format], cwd);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(sniff_format(&cwd.join(format).join(format!("scan_x4.{format}"))), Some(expected));
    }
}

/// An EXIF block with a camera's make, orientation 6 (the stored pixels are turned 90° anticlockwise) and a
/// thumbnail entry.
fn camera_exif() -> Vec<u8> {
    let field = |tag, ifd_num, value| Field { tag, ifd_num, value };
    let fields = [
        field(Tag::Make, In::PRIMARY, Value::Ascii(vec![b"Phone".to_vec()])),
        field(Tag::Orientation, In::PRIMARY, Value::Short(vec![6])),
        field(Tag::Make, In::THUMBNAIL, Value::Ascii(vec![b"Phone".to_vec()])),
    ];
    let mut writer = exif::experimental::Writer::new();
    fields.iter().for_each(|f| writer.push_field(f));
    let mut bytes = std::io::Cursor::new(Vec::new());
    writer.write(&mut bytes, false).unwrap();
    bytes.into_inner()
}

fn exif_field(metadata: &Metadata, tag: Tag) -> Option<String> {
    let exif = exif::Reader::new().read_raw(metadata.exif.clone()?).ok()?;
    exif.get_field(tag, In::PRIMARY).map(|f| f.display_value().to_string())
}

#[test]
fn the_profile_exif_resolution_and_bit_depth_are_carried_to_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let icc = b"a colour profile, carried byte for byte".to_vec();
    let source =
        Metadata { icc: Some(icc.clone()), exif: Some(camera_exif()), dpi: Some((300.0, 300.0)), high_bit_depth: true };
    let data = (0..12 * 8 * 3).map(|i| (i % 89) as f32 / 88.0).collect();
    let sixteen = WriteOptions { encoding: Encoding::Png { sixteen_bit: true }, overwrite: false };
    write_image_with_metadata(&Image::new(12, 8, 3, data), cwd.join("phone.png"), &sixteen, &source).unwrap();

    for (args, file) in [
        (&["-o", "phone-x4.png"][..], "phone-x4.png"),
        (&["-o", "phone-x4.tiff"], "phone-x4.tiff"),
        (&["-o", "phone-x4.jpg", "--quality", "90"], "phone-x4.jpg"),
        (&["-o", "phone-x4.webp", "--quality", "80"], "phone-x4.webp"),
    ] {
        let out = sana_sr(&[&["upscale", "phone.png"], args].concat(), cwd);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let path = cwd.join(file);
        let image = read_image(&path).unwrap();
        assert_eq!((image.width, image.height), (32, 48), "{file}: upright, as EXIF orientation 6 asked");
        let metadata = read_metadata(&path).unwrap();
        assert_eq!(metadata.icc.as_ref(), Some(&icc), "{file}: the ICC profile");
        assert_eq!(metadata.high_bit_depth, file.ends_with(".png") || file.ends_with(".tiff"), "{file}: 16 bits");
        assert_eq!(exif_field(&metadata, Tag::Make).as_deref(), Some("\"Phone\""), "{file}: the camera");
        if !file.ends_with(".tiff") {
            // A TIFF stores its pixels upright without an orientation field.
            assert_eq!(exif_field(&metadata, Tag::Orientation).as_deref(), Some("row 0 at top and column 0 at left"));
        }
        assert!(metadata.software().is_some_and(|s| s.starts_with("sana-sr ")), "{file}: {:?}", metadata.software());
        assert_eq!(metadata.dpi, Some((1200.0, 1200.0)), "{file}: the print size kept");
    }

    // And from a TIFF: its fields become the output's EXIF.
    let tiff = WriteOptions { encoding: Encoding::Tiff { sixteen_bit: false }, overwrite: false };
    let data = (0..12 * 8).map(|i| (i % 13) as f32 / 12.0).collect();
    write_image_with_metadata(&Image::new(12, 8, 1, data), cwd.join("scan.tif"), &tiff, &source).unwrap();
    let out = sana_sr(&["upscale", "scan.tif", "-o", "scan-x4.jpg"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let metadata = read_metadata(cwd.join("scan-x4.jpg")).unwrap();
    assert_eq!((metadata.icc.as_ref(), metadata.dpi), (Some(&icc), Some((1200.0, 1200.0))));
    assert_eq!(exif_field(&metadata, Tag::Make).as_deref(), Some("\"Phone\""));
}

#[test]
fn quality_sets_jpeg_and_makes_webp_lossy() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // A smooth photo-like picture, on which lossy coding pays.
    let (w, h) = (48, 40);
    let data =
        (0..w * h * 3).map(|k| ((k / 3 % w) as f32 * 0.2 + (k / 3 / w) as f32 * 0.13).sin() * 0.4 + 0.5).collect();
    save_image(&Image::new(w, h, 3, data), cwd.join("smooth.png")).unwrap();
    let size = |args: &[&str], file: &str| {
        let out =
            sana_sr(&[&["upscale", "smooth.png", "-m", "sana-sr-tiny", "-s", "2", "-o", file], args].concat(), cwd);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        std::fs::metadata(cwd.join(file)).unwrap().len()
    };
    let png = size(&[], "a.png");
    let lossless = size(&[], "a.webp");
    let lossy = size(&["--quality", "75"], "b.webp");
    assert!(lossy < lossless && lossy < png, "lossy WebP {lossy} B, lossless {lossless} B, PNG {png} B");
    let (low, high) = (size(&["--quality", "20"], "low.jpg"), size(&[], "high.jpg"));
    assert!(low < high, "JPEG at quality 20: {low} B, at the default 95: {high} B");
}
