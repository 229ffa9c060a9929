//! Reading and writing image files: PNG and TIFF (8/16-bit), JPEG, WebP and BMP, into and out of [`Image`],
//! with what the file carries besides the pixels ([`Metadata`]: ICC profile, EXIF, resolution, bit depth).
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

use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::{JpegEncoder, PixelDensity, PixelDensityUnit};
use image::codecs::webp::WebPEncoder;
use image::error::{EncodingError, ImageFormatHint};
use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageError, ImageFormat, ImageReader,
    Limits,
};

use sana_sr_core::fs::{write_atomically, AtomicWriteError};

use crate::metadata::{dpi_to_per_metre, exif_dpi, jfif_dpi, Metadata};
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
    #[error("`{path}` is not an image in a supported format ({READ_FORMATS})")]
    UnknownFormat { path: PathBuf },
    #[error("`{path}` is a {format} image, a format sana-sr does not read (it reads {READ_FORMATS})")]
    Unsupported { path: PathBuf, format: String },
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

/// The formats [`read_image`] decodes and [`write_image`] encodes, as messages name them.
pub const READ_FORMATS: &str = "PNG, JPEG, WebP, TIFF and BMP";

/// File extensions of the formats [`read_image`] decodes (the `image` crate features this crate enables),
/// lower case; compare case-insensitively, e.g. with [`has_image_extension`].
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp"];

/// Whether `path` ends in one of [`IMAGE_EXTENSIONS`], in any case.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|known| e.eq_ignore_ascii_case(known)))
}

/// The image format `path`'s extension names, in any case, whether or not sana-sr reads or writes it
/// (`.gif` is GIF): what makes an output path a file rather than a folder.
pub fn image_format_of_extension(path: &Path) -> Option<ImageFormat> {
    ImageFormat::from_extension(path.extension()?)
}

/// The format of the image file at `path` from its first bytes (its content, whatever its name), if they
/// are an image's signature at all; `None` for other files and for files that cannot be read.
pub fn sniff_format(path: &Path) -> Option<ImageFormat> {
    let mut head = [0u8; 16];
    let mut file = sana_sr_core::fs::open_file(path).ok()?;
    let read = file.read(&mut head).ok()?;
    image::guess_format(&head[..read]).ok()
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

/// Reads an image file (format from its content, not its name), upright per its EXIF orientation.
pub fn read_image_with(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Image, IoError> {
    let path = path.as_ref();
    decode_upright(checked_decoder(path, options)?.0, path, None)
}

/// [`read_image_with`], and what the file carries besides the pixels (which costs a second look at the
/// headers, so that plain reads, thousands of them in training, do without).
pub fn read_image_and_metadata(path: impl AsRef<Path>, options: &ReadOptions) -> Result<(Image, Metadata), IoError> {
    let path = path.as_ref();
    let (mut decoder, format) = checked_decoder(path, options)?;
    let metadata = decoder_metadata(decoder.as_mut(), path, format);
    let orientation = metadata.exif.as_deref().and_then(Orientation::from_exif_chunk);
    Ok((decode_upright(decoder, path, orientation)?, metadata))
}

/// The decoder's image turned upright: by `orientation` when the caller has read it already, else by the
/// decoder's own.
fn decode_upright(
    mut decoder: Box<dyn ImageDecoder>,
    path: &Path,
    orientation: Option<Orientation>,
) -> Result<Image, IoError> {
    let decode_error = |source| IoError::Decode { path: path.to_path_buf(), source };
    let orientation = match orientation {
        Some(orientation) => orientation,
        None => decoder.orientation().map_err(decode_error)?,
    };
    let mut decoded = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    decoded.apply_orientation(orientation);
    from_dynamic(decoded).map_err(|color| IoError::UnsupportedColor { path: path.to_path_buf(), color })
}

/// What the image file at `path` carries besides its pixels, from its headers (no pixel is decoded), with the
/// checks and errors of [`read_image`].
pub fn read_metadata(path: impl AsRef<Path>) -> Result<Metadata, IoError> {
    let path = path.as_ref();
    let (mut decoder, format) = checked_decoder(path, &ReadOptions::default())?;
    Ok(decoder_metadata(decoder.as_mut(), path, format))
}

/// The metadata `decoder` (of the file at `path`, in `format`) gives. Metadata that cannot be read is left
/// out: it never stops the pixels from being read.
fn decoder_metadata(decoder: &mut dyn ImageDecoder, path: &Path, format: ImageFormat) -> Metadata {
    let color = decoder.color_type();
    let high_bit_depth = color.bytes_per_pixel() / color.channel_count() > 1;
    if format == ImageFormat::Tiff {
        // `image`'s TIFF decoder gives no EXIF or resolution, nor the profile of TIFFs that hold one (written
        // by PIL or by sana-sr): the `tiff` crate reads all three from the file's first directory.
        let file = sana_sr_core::fs::open_file(path).ok();
        return Metadata { high_bit_depth, ..file.map(crate::tiff_fields::read).unwrap_or_default() };
    }
    let icc = decoder.icc_profile().ok().flatten();
    let exif = decoder.exif_metadata().ok().flatten();
    let dpi = stored_dpi(path, format).or_else(|| exif.as_deref().and_then(exif_dpi));
    Metadata { icc, exif, dpi, high_bit_depth }
}

/// The resolution in the format's own field: PNG's `pHYs`, JPEG's JFIF header.
fn stored_dpi(path: &Path, format: ImageFormat) -> Option<(f64, f64)> {
    let file = sana_sr_core::fs::open_file(path).ok()?;
    match format {
        ImageFormat::Png => {
            let reader = png::Decoder::new(BufReader::new(file)).read_info().ok()?;
            let dims = reader.info().pixel_dims?;
            // To the hundredth: pixels per metre cannot hold 300 dpi exactly (11811 is 299.9994).
            let per_inch = |ppu: u32| (f64::from(ppu) * 2.54).round() / 100.0;
            (dims.unit == png::Unit::Meter && dims.xppu > 0 && dims.yppu > 0)
                .then(|| (per_inch(dims.xppu), per_inch(dims.yppu)))
        }
        ImageFormat::Jpeg => {
            let mut head = Vec::with_capacity(18);
            file.take(18).read_to_end(&mut head).ok()?;
            jfif_dpi(&head)
        }
        _ => None,
    }
}

/// The stored width and height of an image file, from its header alone (no pixel is decoded), with the
/// checks and errors of [`read_image`]. EXIF orientation is not applied: a crop fits either way round
/// only when both sides are checked, as callers do.
pub fn image_size(path: impl AsRef<Path>) -> Result<(u32, u32), IoError> {
    Ok(checked_decoder(path.as_ref(), &ReadOptions::default())?.0.dimensions())
}

/// A decoder for `path` whose header has been read and whose pixel count is within `options.max_pixels`,
/// and the file's format.
fn checked_decoder(path: &Path, options: &ReadOptions) -> Result<(Box<dyn ImageDecoder>, ImageFormat), IoError> {
    let open_error = |source| IoError::Open { path: path.to_path_buf(), source };
    let file = sana_sr_core::fs::open_file(path).map_err(open_error)?;
    if file.metadata().map_err(open_error)?.len() == 0 {
        return Err(IoError::Empty { path: path.to_path_buf() });
    }
    let reader = ImageReader::new(BufReader::new(file)).with_guessed_format().map_err(open_error)?;
    let format = reader.format();
    let decoder = match format {
        None => Err(IoError::UnknownFormat { path: path.to_path_buf() }),
        Some(format) if !format.reading_enabled() => Err(IoError::Unsupported {
            path: path.to_path_buf(),
            format: format.extensions_str().first().map_or("?".into(), |e| e.to_ascii_uppercase()),
        }),
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
    }?;
    Ok((decoder, format.expect("an unknown format is an error above")))
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
    /// WebP, 8 bits a sample: lossy at libwebp's quality 0..=100, or lossless when `quality` is `None`.
    Webp { quality: Option<u8> },
    /// Uncompressed TIFF, 8 or 16 bits a sample.
    Tiff { sixteen_bit: bool },
    /// BMP, 8 bits a sample.
    Bmp,
}

impl Encoding {
    /// The encoding a file name asks for: `.png` → 8-bit PNG, `.jpg`/`.jpeg` → JPEG quality 95,
    /// `.webp` → lossless WebP, `.tif`/`.tiff` → 8-bit TIFF, `.bmp` → BMP.
    pub fn from_path(path: &Path) -> Option<Self> {
        match image_format_of_extension(path)? {
            ImageFormat::Png => Some(Self::Png { sixteen_bit: false }),
            ImageFormat::Jpeg => Some(Self::Jpeg { quality: 95 }),
            ImageFormat::WebP => Some(Self::Webp { quality: None }),
            ImageFormat::Tiff => Some(Self::Tiff { sixteen_bit: false }),
            ImageFormat::Bmp => Some(Self::Bmp),
            _ => None,
        }
    }

    /// [`Self::from_path`], or the error that names what is wrong with the name.
    pub fn for_path(path: &Path) -> Result<Self, IoError> {
        Self::from_path(path).ok_or_else(|| IoError::Unwritable {
            path: path.to_path_buf(),
            reason: match image_format_of_extension(path) {
                Some(format) => format!(
                    "{} is not a format sana-sr writes (it writes {READ_FORMATS})",
                    format.extensions_str().first().map_or("it".into(), |e| e.to_ascii_uppercase())
                ),
                None => "unknown extension (expected .png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp)".into(),
            },
        })
    }

    /// Whether it stores 16 bits a sample.
    pub fn sixteen_bit(self) -> bool {
        matches!(self, Self::Png { sixteen_bit: true } | Self::Tiff { sixteen_bit: true })
    }
}

/// Options of [`write_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub encoding: Encoding,
    /// Replace an existing file (otherwise writing to an existing path is an error).
    pub overwrite: bool,
}

/// Writes `image` to `path` in the encoding the file name asks for ([`Encoding::from_path`]), refusing to
/// replace an existing file.
pub fn save_image(image: &Image, path: impl AsRef<Path>) -> Result<(), IoError> {
    let path = path.as_ref();
    write_image(image, path, &WriteOptions { encoding: Encoding::for_path(path)?, overwrite: false })
}

/// Encodes `image` into a temporary file next to `path`, then renames it into place.
///
/// Samples are clamped to `[0, 1]` and rounded to the nearest code value.
pub fn write_image(image: &Image, path: impl AsRef<Path>, options: &WriteOptions) -> Result<(), IoError> {
    write_image_with_metadata(image, path, options, &Metadata::default())
}

/// [`write_image`], the file carrying `metadata` as far as its format can: the ICC profile in every format
/// but BMP, the EXIF in PNG, JPEG and WebP (its text fields in TIFF), the resolution in PNG, JPEG and TIFF
/// (and in the EXIF). The bit depth
/// is the encoding's.
pub fn write_image_with_metadata(
    image: &Image,
    path: impl AsRef<Path>,
    options: &WriteOptions,
    metadata: &Metadata,
) -> Result<(), IoError> {
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
        encode(image, width, height, options.encoding, metadata, writer).map_err(std::io::Error::other)
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
    metadata: &Metadata,
    writer: &mut impl Write,
) -> Result<(), ImageError> {
    let channels = image.channels;
    let eight_bit_type =
        [ExtendedColorType::L8, ExtendedColorType::La8, ExtendedColorType::Rgb8, ExtendedColorType::Rgba8]
            [channels - 1];
    let icc = metadata.icc.clone();
    let exif = metadata.exif.clone();
    // A format that cannot hold a piece of metadata simply goes without it.
    let with_metadata = |encoder: &mut dyn ImageEncoder| {
        if let Some(icc) = icc.clone() {
            let _ = encoder.set_icc_profile(icc);
        }
        if let Some(exif) = exif.clone() {
            let _ = encoder.set_exif_metadata(exif);
        }
    };
    match encoding {
        Encoding::Png { sixteen_bit } => encode_png(image, width, height, sixteen_bit, metadata, writer),
        Encoding::Jpeg { quality } => {
            let mut encoder = JpegEncoder::new_with_quality(writer, quality.clamp(1, 100));
            if let Some((x, y)) = metadata.dpi {
                let dots = |d: f64| d.round().clamp(1.0, f64::from(u16::MAX)) as u16;
                encoder.set_pixel_density(PixelDensity { density: (dots(x), dots(y)), unit: PixelDensityUnit::Inches });
            }
            with_metadata(&mut encoder);
            encoder.write_image(&to_u8(&image.data), width, height, eight_bit_type)
        }
        Encoding::Webp { quality: None } => {
            let mut encoder = WebPEncoder::new_lossless(writer);
            with_metadata(&mut encoder);
            encoder.write_image(&to_u8(&image.data), width, height, eight_bit_type)
        }
        Encoding::Webp { quality: Some(quality) } => {
            // libwebp takes RGB or RGBA.
            let rgb = if channels == 1 { std::borrow::Cow::Owned(image.to_rgb()) } else { with_colour_alpha(image) };
            let bytes = crate::webp::encode_lossy(
                &to_u8(&rgb.data),
                width,
                height,
                rgb.channels,
                quality,
                metadata.icc.as_deref(),
                metadata.exif.as_deref(),
            )
            .map_err(|reason| encoding_error(ImageFormat::WebP, reason))?;
            writer.write_all(&bytes).map_err(ImageError::IoError)
        }
        Encoding::Tiff { sixteen_bit } => {
            // TIFF as the encoder writes it has no gray with alpha.
            let image = with_colour_alpha(image);
            let samples = if sixteen_bit {
                crate::tiff_fields::Samples::Sixteen(image.data.iter().map(|&x| quantize(x, 65535.0)).collect())
            } else {
                crate::tiff_fields::Samples::Eight(to_u8(&image.data))
            };
            crate::tiff_fields::encode(samples, width, height, image.channels, metadata, writer)
        }
        Encoding::Bmp => BmpEncoder::new(writer).write_image(&to_u8(&image.data), width, height, eight_bit_type),
    }
}

/// `image` with a gray-and-alpha image spread to RGBA (the gray on the three colours, the alpha kept), for the
/// encoders that have no gray-with-alpha layout; any other image as it is.
fn with_colour_alpha(image: &Image) -> std::borrow::Cow<'_, Image> {
    match image.channels {
        2 => std::borrow::Cow::Owned(Image::new(
            image.width,
            image.height,
            4,
            image.data.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0], p[1]]).collect(),
        )),
        _ => std::borrow::Cow::Borrowed(image),
    }
}

/// PNG through the `png` crate itself, which writes what `image`'s wrapper cannot: the resolution (`pHYs`)
/// beside the profile (`iCCP`) and the EXIF (`eXIf`).
fn encode_png(
    image: &Image,
    width: u32,
    height: u32,
    sixteen_bit: bool,
    metadata: &Metadata,
    writer: &mut impl Write,
) -> Result<(), ImageError> {
    let error = |e: png::EncodingError| encoding_error(ImageFormat::Png, e.to_string());
    let mut info = png::Info::with_size(width, height);
    info.color_type =
        [png::ColorType::Grayscale, png::ColorType::GrayscaleAlpha, png::ColorType::Rgb, png::ColorType::Rgba]
            [image.channels - 1];
    info.bit_depth = if sixteen_bit { png::BitDepth::Sixteen } else { png::BitDepth::Eight };
    info.icc_profile = metadata.icc.as_deref().map(Into::into);
    info.exif_metadata = metadata.exif.as_deref().map(Into::into);
    info.pixel_dims = metadata.dpi.map(|(x, y)| png::PixelDimensions {
        xppu: dpi_to_per_metre(x),
        yppu: dpi_to_per_metre(y),
        unit: png::Unit::Meter,
    });
    let mut encoder = png::Encoder::with_info(writer, info).map_err(error)?;
    // fdeflate's PNG-tuned deflate: on a 1200x1000 upscale 0.01 s against Balanced's 0.27-0.32 s, for a file
    // 10-15% larger (docs/decisions.md); an upscale should not spend a sixth of its time compressing its output.
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Adaptive);
    let mut png = encoder.write_header().map_err(error)?;
    let samples = if sixteen_bit {
        // PNG stores 16-bit samples big-endian.
        image.data.iter().flat_map(|&x| quantize(x, 65535.0).to_be_bytes()).collect()
    } else {
        to_u8(&image.data)
    };
    png.write_image_data(&samples).map_err(error)?;
    png.finish().map_err(error)
}

pub(crate) fn encoding_error(format: ImageFormat, reason: String) -> ImageError {
    ImageError::Encoding(EncodingError::new(ImageFormatHint::Exact(format), reason))
}

/// A `[0, 1]` sample as the nearest code value of a `max`-level integer format.
pub(crate) fn quantize(x: f32, max: f32) -> u16 {
    (x.clamp(0.0, 1.0) * max).round() as u16
}

/// Samples as 8-bit code values.
pub(crate) fn to_u8(samples: &[f32]) -> Vec<u8> {
    samples.iter().map(|&x| quantize(x, 255.0) as u8).collect()
}
