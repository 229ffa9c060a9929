//! Image files in and out, including broken and hostile ones (generated here, but for a progressive JPEG
//! that PIL wrote: the encoder here writes baseline only).

use std::io::Write;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use sana_sr_data::io::{
    read_image, read_image_with, save_image, write_image, Encoding, IoError, ReadOptions, WriteOptions,
};
use sana_sr_data::Image;

/// A colourful 16-bit-precision test image.
fn gradient(width: usize, height: usize, channels: usize) -> Image {
    let mut data = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                data.push(((x * 7 + y * 13 + c * 5) % 1000) as f32 / 999.0);
            }
        }
    }
    Image::new(width, height, channels, data)
}

fn png(sixteen_bit: bool) -> WriteOptions {
    WriteOptions { encoding: Encoding::Png { sixteen_bit }, overwrite: false }
}

fn max_difference(a: &Image, b: &Image) -> f32 {
    assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
    a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn png_round_trips_at_8_and_16_bits_with_every_channel_count() {
    let dir = tempfile::tempdir().unwrap();
    for channels in 1..=4 {
        let image = gradient(19, 11, channels);
        for (sixteen_bit, levels) in [(false, 255.0), (true, 65535.0)] {
            let path = dir.path().join(format!("c{channels}_{sixteen_bit}.png"));
            write_image(&image, &path, &png(sixteen_bit)).unwrap();
            let back = read_image(&path).unwrap();
            assert_eq!(back.channels, channels);
            let worst = max_difference(&image, &back);
            assert!(worst <= 0.5 / levels + 1e-7, "{channels} channels, 16-bit {sixteen_bit}: {worst}");
        }
    }
}

#[test]
fn webp_is_lossless_and_jpeg_is_close() {
    let dir = tempfile::tempdir().unwrap();
    let image = gradient(32, 24, 3);
    let webp = dir.path().join("a.webp");
    save_image(&image, &webp).unwrap();
    assert!(max_difference(&image, &read_image(&webp).unwrap()) <= 0.5 / 255.0 + 1e-7);
    let jpeg = dir.path().join("a.jpg");
    write_image(&image, &jpeg, &WriteOptions { encoding: Encoding::Jpeg { quality: 100 }, overwrite: false }).unwrap();
    let back = read_image(&jpeg).unwrap();
    assert_eq!((back.width, back.height, back.channels), (32, 24, 3));
    // JPEG cannot store alpha: refused, not silently dropped.
    let rgba = gradient(8, 8, 4);
    let err = write_image(
        &rgba,
        dir.path().join("b.jpg"),
        &WriteOptions { encoding: Encoding::Jpeg { quality: 90 }, overwrite: false },
    );
    assert!(matches!(err, Err(IoError::Unwritable { .. })));
}

#[test]
fn writing_never_clobbers_unless_asked_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.png");
    write_image(&gradient(4, 4, 3), &path, &png(false)).unwrap();
    let err = write_image(&gradient(5, 5, 3), &path, &png(false)).unwrap_err();
    assert!(matches!(err, IoError::Exists { .. }), "{err}");
    assert_eq!(read_image(&path).unwrap().width, 4);
    write_image(&gradient(5, 5, 3), &path, &WriteOptions { overwrite: true, ..png(false) }).unwrap();
    assert_eq!(read_image(&path).unwrap().width, 5);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("x.png")]);
}

#[test]
fn written_images_get_the_permissions_of_any_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, b"x").unwrap();
    let path = dir.path().join("x.png");
    write_image(&gradient(4, 4, 3), &path, &png(false)).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), mode(&plain), "an image must not stay private like its temporary file");
}

#[test]
fn broken_files_are_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.png");
    write_image(&gradient(64, 64, 3), &good, &png(false)).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_image(&truncated).unwrap_err();
    assert!(matches!(err, IoError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("truncated.png"), "{err}");

    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(read_image(&empty), Err(IoError::Empty { .. })));

    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"this is not an image at all, just some text").unwrap();
    let err = read_image(&text).unwrap_err();
    assert!(matches!(err, IoError::UnknownFormat { .. }), "{err}");
    assert!(err.to_string().contains("notes.png"));

    let missing = dir.path().join("missing.png");
    assert!(matches!(read_image(&missing), Err(IoError::Open { .. })));
}

/// A PNG whose header declares 100000 x 100000 pixels (10 gigapixels), with a tiny body.
fn png_bomb() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&100_000u32.to_be_bytes());
    header.extend_from_slice(&100_000u32.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::File::create(&bomb).unwrap().write_all(&png_bomb()).unwrap();
    match read_image(&bomb).unwrap_err() {
        IoError::TooLarge { width, height, max_pixels, .. } => {
            assert_eq!((width, height, max_pixels), (100_000, 100_000, 100_000_000));
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    // The limit is configurable, and a real image over a small limit is refused too.
    let small = dir.path().join("small.png");
    write_image(&gradient(20, 10, 3), &small, &png(false)).unwrap();
    assert!(matches!(
        read_image_with(&small, &ReadOptions { max_pixels: 199 }),
        Err(IoError::TooLarge { pixels: 200, .. })
    ));
    assert!(read_image_with(&small, &ReadOptions { max_pixels: 200 }).is_ok());
}

/// Minimal big-endian EXIF (TIFF) block with one tag: Orientation = `orientation`.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    tiff
}

#[test]
fn exif_orientation_is_applied() {
    // A 32x16 landscape JPEG, left half black, right half white, tagged "rotate 90° clockwise" (6).
    let (w, h) = (32usize, 16usize);
    let pixels: Vec<u8> = (0..w * h).flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [255u8; 3] }).collect();
    let mut bytes = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut bytes, 95);
    encoder.set_exif_metadata(exif_orientation(6)).unwrap();
    encoder.write_image(&pixels, w as u32, h as u32, ExtendedColorType::Rgb8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotated.jpg");
    std::fs::write(&path, &bytes).unwrap();

    let image = read_image(&path).unwrap();
    // Upright, it is a 16x32 portrait whose top half is black (the left half turned clockwise).
    assert_eq!((image.width, image.height), (16, 32));
    assert!(image.at(8, 4, 0) < 0.1, "top should be black");
    assert!(image.at(8, 28, 0) > 0.9, "bottom should be white");
}

#[test]
fn truncated_jpegs_are_errors_not_grey() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.jpg");
    write_image(
        &gradient(64, 48, 3),
        &baseline,
        &WriteOptions { encoding: Encoding::Jpeg { quality: 90 }, overwrite: false },
    )
    .unwrap();
    let progressive = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/progressive.jpg");
    for source in [baseline, progressive] {
        let bytes = std::fs::read(&source).unwrap();
        assert!(read_image(&source).is_ok(), "{} reads whole", source.display());
        // Cut in the middle of a scan, just before the end marker, and between two progressive scans.
        let last_scan = bytes.windows(2).rposition(|p| p == [0xFF, 0xDA]).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 2, last_scan] {
            let cut_file = dir.path().join("cut.jpg");
            std::fs::write(&cut_file, &bytes[..cut]).unwrap();
            let err = read_image(&cut_file).unwrap_err();
            assert!(matches!(err, IoError::Truncated { .. } | IoError::Decode { .. }), "{err}");
            assert!(err.to_string().contains("cut.jpg"), "{err}");
        }
        // Bytes after the end marker (a camera's trailer) are no truncation.
        let trailer = dir.path().join("trailer.jpg");
        std::fs::write(&trailer, [bytes.as_slice(), b"\0\0trailer"].concat()).unwrap();
        assert!(read_image(&trailer).is_ok());
    }
}

#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    for path in [fifo.as_path(), dir.path(), Path::new("/dev/urandom")] {
        let err = read_image(path).unwrap_err();
        assert!(matches!(err, IoError::Open { .. }), "{err}");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

#[test]
fn the_pixel_limit_is_named_with_the_option_that_raises_it() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.png");
    write_image(&gradient(20, 10, 3), &small, &png(false)).unwrap();
    let err = read_image_with(&small, &ReadOptions { max_pixels: 100 }).unwrap_err();
    assert!(err.to_string().contains("over the limit of 100 pixels (--max-pixels raises it)"), "{err}");
}
