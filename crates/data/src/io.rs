//! Reading and writing image files: PNG (8/16-bit), JPEG and WebP, into and out of [`Image`].
//!
//! Reading is defensive, because training pools and user inputs contain hostile or broken files: only
//! regular files are opened (a FIFO would block, a device never end); the pixel count is checked against a
//! limit from the header alone, before any pixel buffer is allocated, so a decompression bomb costs nothing;
//! truncated, empty and non-image files are errors naming the file (a JPEG whose data stops before its
//! end-of-image marker included: its decoder would fill the missing part with grey). EXIF orientation is
//! applied, so a phone photo comes out upright.
//!
//! Channels are kept as stored: gray stays 1 channel, gray+alpha is 2 channels, RGB 3, RGBA 4 (alpha is
//! never dropped or premultiplied here; callers that want RGB decide what to do with it).
//!
//! Writing is atomic: the file is encoded into a temporary file in the destination folder and renamed into
//! place, so a crash never leaves a half-written image, and an existing file is only replaced when asked.

use std::io::{BufReader, Cursor, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{
    ColorType, DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader,
    Limits,
};

use sana_sr_core::fs::{write_atomically, AtomicWriteError};

use crate::Image;

/// The default pixel limit of [`read_image`]: 100 megapixels, larger than any camera photo a pool holds
/// (a 100 MP RGB image is already 1.2 GB as `f32`).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// The pixel limit of this process ([`max_pixels`]); the command line's `--max-pixels` sets it.
static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_PIXELS);

/// The largest image, in pixels, read or made by this process: [`DEFAULT_MAX_PIXELS`] unless
/// [`set_max_pixels`] changed it. Images over it are refused from their header, and outputs over it
/// before they are computed, with an error naming `--max-pixels`.
pub fn max_pixels() -> u64 {
    MAX_PIXELS.load(Ordering::Relaxed)
}

/// Sets [`max_pixels`] for the whole process (the command line does, once, from `--max-pixels`).
pub fn set_max_pixels(pixels: u64) {
    MAX_PIXELS.store(pixels, Ordering::Relaxed);
}

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("cannot open image `{path}`: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("image file `{path}` is empty (0 bytes)")]
    Empty { path: PathBuf },
    #[error("`{path}` is not an image in a supported format (PNG, JPEG, WebP)")]
    UnknownFormat { path: PathBuf },
    #[error("image `{path}` is {width}x{height} = {pixels} pixels, over the limit of {max_pixels} pixels (--max-pixels raises it)")]
    TooLarge { path: PathBuf, width: u32, height: u32, pixels: u64, max_pixels: u64 },
    #[error("image `{path}` is truncated: its JPEG data stops before the end-of-image marker")]
    Truncated { path: PathBuf },
    #[error("cannot decode image `{path}` (truncated or corrupt?): {source}")]
    Decode { path: PathBuf, source: ImageError },
    #[error("image `{path}` has a colour type sana-sr does not read: {color:?}")]
    UnsupportedColor { path: PathBuf, color: ColorType },
    #[error("cannot write `{path}`: {reason}")]
    Unwritable { path: PathBuf, reason: String },
    #[error("`{path}` exists already; pass overwrite to replace it")]
    Exists { path: PathBuf },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot encode `{path}`: {source}")]
    Encode { path: PathBuf, source: ImageError },
}

/// File extensions of the formats [`read_image`] decodes (the `image` crate features this crate enables),
/// lower case; compare case-insensitively, e.g. with [`has_image_extension`].
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp"];

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`], in any case.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

/// Options of [`read_image_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Files whose header declares more pixels than this are refused before decoding.
    pub max_pixels: u64,
}

impl Default for ReadOptions {
    /// The process's [`max_pixels`].
    fn default() -> Self {
        Self { max_pixels: max_pixels() }
    }
}

/// Reads an image file with the default [`ReadOptions`].
pub fn read_image(path: impl AsRef<Path>) -> Result<Image, IoError> {
    read_image_with(path, &ReadOptions::default())
}

/// Reads a PNG, JPEG or WebP file (format from its content, not its name), upright per its EXIF orientation.
pub fn read_image_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Image, IoError> {
    let path = path.as_ref();
    let decode_error = |source| IoError::Decode { path: path.to_path_buf(), source };
    let mut decoder = checked_decoder(path, options)?;
    let orientation = decoder.orientation().map_err(decode_error)?;
    let mut decoded = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    decoded.apply_orientation(orientation);
    from_dynamic(decoded).map_err(|color| IoError::UnsupportedColor { path: path.to_path_buf(), color })
}

/// The stored width and height of an image file, from its header alone (no pixel is decoded), with the
/// checks and errors of [`read_image`]. EXIF orientation is not applied: a crop fits either way round
/// only when both sides are checked, as callers do.
pub fn image_size(path: impl AsRef<Path>) -> Result<(u32, u32), IoError> {
    Ok(checked_decoder(path.as_ref(), &ReadOptions::default())?.dimensions())
}

/// A decoder for `path` whose header has been read and whose pixel count is within `options.max_pixels`.
fn checked_decoder(path: &Path, options: &ReadOptions) -> Result<Box<dyn ImageDecoder>, IoError> {
    let open_error = |source| IoError::Open { path: path.to_path_buf(), source };
    let file = sana_sr_core::fs::open_file(path).map_err(open_error)?;
    if file.metadata().map_err(open_error)?.len() == 0 {
        return Err(IoError::Empty { path: path.to_path_buf() });
    }
    let reader = ImageReader::new(BufReader::new(file)).with_guessed_format().map_err(open_error)?;
    match reader.format() {
        None => Err(IoError::UnknownFormat { path: path.to_path_buf() }),
        // The JPEG decoder reads the whole file anyway; it is read here first to see that it is complete.
        Some(ImageFormat::Jpeg) => {
            let mut file = reader.into_inner();
            let mut bytes = Vec::new();
            file.rewind().and_then(|()| file.read_to_end(&mut bytes)).map_err(open_error)?;
            if !jpeg_is_complete(&bytes) {
                return Err(IoError::Truncated { path: path.to_path_buf() });
            }
            limited_decoder(ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg), path, options)
        }
        Some(_) => limited_decoder(reader, path, options),
    }
}

/// Whether JPEG data ends properly: an end-of-image marker (`FF D9`) follows the last start-of-scan
/// (`FF DA`). Neither pair can occur inside entropy-coded data (a data byte `FF` is stuffed as `FF 00`), so
/// a file cut anywhere in or after its last scan has no such marker; one with bytes after its end (a
/// camera's trailer, a second picture) still has.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(scan) = bytes.windows(2).rposition(|pair| pair == [0xFF, 0xDA]) else { return false };
    bytes[scan + 2..].windows(2).any(|pair| pair == [0xFF, 0xD9])
}

/// `reader`'s decoder, its allocations bounded, refused when its header declares more than
/// `options.max_pixels`.
fn limited_decoder<R: std::io::BufRead + Seek + 'static>(
    mut reader: ImageReader<R>,
    path: &Path,
    options: &ReadOptions,
) -> Result<Box<dyn ImageDecoder>, IoError> {
    let decode_error = |source| IoError::Decode { path: path.to_path_buf(), source };
    // The decoder's own allocation limit backs up the pixel check below: 16-bit RGBA is 8 bytes a pixel,
    // plus room for the decoder's working buffers.
    let mut limits = Limits::default();
    limits.max_alloc = Some(options.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > options.max_pixels {
        return Err(IoError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            pixels,
            max_pixels: options.max_pixels,
        });
    }
    Ok(Box::new(decoder))
}

/// Converts a decoded image to [`Image`], keeping its channel count.
fn from_dynamic(decoded: DynamicImage) -> Result<Image, ColorType> {
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    let (channels, data) = match decoded.color() {
        ColorType::L8 | ColorType::L16 => (1, decoded.to_luma32f().into_raw()),
        ColorType::La8 | ColorType::La16 => (2, decoded.to_luma_alpha32f().into_raw()),
        ColorType::Rgb8 | ColorType::Rgb16 | ColorType::Rgb32F => (3, decoded.to_rgb32f().into_raw()),
        ColorType::Rgba8 | ColorType::Rgba16 | ColorType::Rgba32F => (4, decoded.to_rgba32f().into_raw()),
        other => return Err(other),
    };
    Ok(Image::new(width, height, channels, data))
}

/// How [`write_image`] encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lossless PNG, 8 or 16 bits a sample.
    Png { sixteen_bit: bool },
    /// Baseline JPEG at a quality of 1..=100 (gray or RGB only: JPEG has no alpha).
    Jpeg { quality: u8 },
    /// Lossless WebP, 8 bits a sample.
    WebpLossless,
}

impl Encoding {
    /// The encoding a file name asks for: `.png` → 8-bit PNG, `.jpg`/`.jpeg` → JPEG quality 95,
    /// `.webp` → lossless WebP.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "png" => Some(Self::Png { sixteen_bit: false }),
            "jpg" | "jpeg" => Some(Self::Jpeg { quality: 95 }),
            "webp" => Some(Self::WebpLossless),
            _ => None,
        }
    }
}

/// Options of [`write_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub encoding: Encoding,
    /// Replace an existing file (otherwise writing to an existing path is an error).
    pub overwrite: bool,
}

/// Writes `image` to `path` in the encoding the file name asks for (8-bit PNG, JPEG q95, lossless WebP),
/// refusing to replace an existing file.
pub fn save_image(image: &Image, path: impl AsRef<Path>) -> Result<(), IoError> {
    let path = path.as_ref();
    let encoding = Encoding::from_path(path).ok_or_else(|| IoError::Unwritable {
        path: path.to_path_buf(),
        reason: "unknown extension (expected .png, .jpg, .jpeg or .webp)".into(),
    })?;
    write_image(image, path, &WriteOptions { encoding, overwrite: false })
}

/// Encodes `image` into a temporary file next to `path`, then renames it into place.
///
/// Samples are clamped to `[0, 1]` and rounded to the nearest code value.
pub fn write_image(image: &Image, path: impl AsRef<Path>, options: &WriteOptions) -> Result<(), IoError> {
    let path = path.as_ref();
    let unwritable = |reason: String| IoError::Unwritable { path: path.to_path_buf(), reason };
    if !options.overwrite && path.exists() {
        return Err(IoError::Exists { path: path.to_path_buf() });
    }
    let (width, height) = match (u32::try_from(image.width), u32::try_from(image.height)) {
        (Ok(w @ 1..), Ok(h @ 1..)) => (w, h),
        _ => return Err(unwritable(format!("cannot encode an image of {}x{} pixels", image.width, image.height))),
    };
    let channels = image.channels;
    if !(1..=4).contains(&channels) {
        return Err(unwritable(format!("cannot encode an image of {channels} channels")));
    }
    if matches!(options.encoding, Encoding::Jpeg { .. }) && channels != 1 && channels != 3 {
        return Err(unwritable(format!("JPEG stores gray or RGB, not {channels} channels")));
    }

    // The encoder's errors travel through the writer's `io::Error` and are told apart again here.
    write_atomically(path, options.overwrite, |writer| {
        encode(image, width, height, options.encoding, writer).map_err(std::io::Error::other)
    })
    .map_err(|error| match error {
        AtomicWriteError::Exists { path } => IoError::Exists { path },
        AtomicWriteError::Io { path, source } => IoError::Write { path, source },
        AtomicWriteError::Content { path, source } => match source.downcast::<ImageError>() {
            Ok(source) => IoError::Encode { path, source },
            Err(source) => IoError::Write { path, source },
        },
    })
}

fn encode(
    image: &Image,
    width: u32,
    height: u32,
    encoding: Encoding,
    writer: &mut impl Write,
) -> Result<(), ImageError> {
    let eight_bit_type =
        [ExtendedColorType::L8, ExtendedColorType::La8, ExtendedColorType::Rgb8, ExtendedColorType::Rgba8]
            [image.channels - 1];
    match encoding {
        Encoding::Png { sixteen_bit: true } => {
            let color =
                [ExtendedColorType::L16, ExtendedColorType::La16, ExtendedColorType::Rgb16, ExtendedColorType::Rgba16]
                    [image.channels - 1];
            // PNG stores 16-bit samples big-endian; the encoder takes native-endian bytes of u16 samples.
            let bytes: Vec<u8> = image.data.iter().flat_map(|&x| quantize(x, 65535.0).to_ne_bytes()).collect();
            png_encoder(writer).write_image(&bytes, width, height, color)
        }
        Encoding::Png { sixteen_bit: false } => {
            png_encoder(writer).write_image(&to_u8(&image.data), width, height, eight_bit_type)
        }
        Encoding::Jpeg { quality } => JpegEncoder::new_with_quality(writer, quality.clamp(1, 100)).write_image(
            &to_u8(&image.data),
            width,
            height,
            eight_bit_type,
        ),
        Encoding::WebpLossless => {
            WebPEncoder::new_lossless(writer).write_image(&to_u8(&image.data), width, height, eight_bit_type)
        }
    }
}

fn png_encoder<W: Write>(writer: W) -> PngEncoder<W> {
    PngEncoder::new_with_quality(writer, CompressionType::Default, FilterType::Adaptive)
}

/// A `[0, 1]` sample as the nearest code value of a `max`-level integer format.
pub(crate) fn quantize(x: f32, max: f32) -> u16 {
    (x.clamp(0.0, 1.0) * max).round() as u16
}

/// Samples as 8-bit code values.
pub(crate) fn to_u8(samples: &[f32]) -> Vec<u8> {
    samples.iter().map(|&x| quantize(x, 255.0) as u8).collect()
}
