//! A TIFF's own metadata, carried to and from the EXIF that the other formats hold.
//!
//! EXIF is TIFF-structured: a photo's camera, date, author and copyright are fields of a TIFF directory in a
//! JPEG, and fields of the image's own directory in a TIFF. So what a TIFF carries is read into an EXIF block
//! (and an upscaled JPEG of it keeps them), and an EXIF's text fields are written as the TIFF's fields. The
//! resolution travels as [`Metadata::dpi`]. The EXIF's sub-directories (exposure, GPS) are not written into
//! a TIFF: the `tiff` crate writes only the image's directory.

use std::io::{BufReader, Read, Seek, Write};

use exif::{Field, In, Tag, Value};
use image::{ImageError, ImageFormat};
use tiff::encoder::colortype::{ColorType, Gray16, Gray8, RGB16, RGB8, RGBA16, RGBA8};
use tiff::encoder::{Rational, TiffEncoder, TiffValue};
use tiff::tags::ResolutionUnit;

use crate::metadata::Metadata;

/// The EXIF text fields a TIFF carries in its own directory.
const TEXT_FIELDS: [Tag; 7] =
    [Tag::ImageDescription, Tag::Make, Tag::Model, Tag::Software, Tag::DateTime, Tag::Artist, Tag::Copyright];

/// What the TIFF in `file` carries besides its pixels, from its first image's directory: the ICC profile, the
/// text fields as an EXIF block, the resolution. The bit depth is left to the caller, which has the decoder.
pub(crate) fn read(file: impl Read + Seek) -> Metadata {
    let Ok(mut decoder) = tiff::decoder::Decoder::new(BufReader::new(file)) else {
        return Metadata::default();
    };
    let icc = decoder.get_tag_u8_vec(tiff::tags::Tag::IccProfile).ok();
    let fields: Vec<Field> = TEXT_FIELDS
        .iter()
        .filter_map(|&tag| {
            let text = decoder.get_tag_ascii_string(tiff::tags::Tag::from_u16_exhaustive(tag.number())).ok()?;
            Some(Field { tag, ifd_num: In::PRIMARY, value: Value::Ascii(vec![text.into_bytes()]) })
        })
        .collect();
    let exif = (!fields.is_empty()).then(|| {
        let mut writer = exif::experimental::Writer::new();
        fields.iter().for_each(|field| writer.push_field(field));
        let mut bytes = std::io::Cursor::new(Vec::new());
        writer.write(&mut bytes, true).map(|()| bytes.into_inner())
    });
    let mut rational = |tag| match decoder.find_tag(tag) {
        Ok(Some(tiff::decoder::ifd::Value::Rational(n, d))) if n > 0 && d > 0 => Some(f64::from(n) / f64::from(d)),
        _ => None,
    };
    let (x, y) = (rational(tiff::tags::Tag::XResolution), rational(tiff::tags::Tag::YResolution));
    let per_inch = match decoder.find_tag(tiff::tags::Tag::ResolutionUnit).ok().flatten().map(|v| v.into_u16()) {
        Some(Ok(3)) => Some(2.54),
        Some(Ok(1)) => None,
        _ => Some(1.0),
    };
    let dpi = x.zip(y).zip(per_inch).map(|((x, y), per_inch)| (x * per_inch, y * per_inch));
    Metadata { icc, exif: exif.and_then(Result::ok), dpi, high_bit_depth: false }
}

/// `samples` (8 or 16 bits, 1, 3 or 4 channels, row-major) as an uncompressed TIFF with `metadata`'s ICC
/// profile, resolution and EXIF text fields.
pub(crate) fn encode(
    samples: Samples,
    width: u32,
    height: u32,
    channels: usize,
    metadata: &Metadata,
    writer: &mut impl Write,
) -> Result<(), ImageError> {
    // The encoder seeks back to write its offsets: it encodes into memory first.
    let mut bytes = std::io::Cursor::new(Vec::new());
    let result = match (samples, channels) {
        (Samples::Eight(data), 1) => write::<Gray8>(&mut bytes, &data, width, height, metadata),
        (Samples::Eight(data), 3) => write::<RGB8>(&mut bytes, &data, width, height, metadata),
        (Samples::Eight(data), 4) => write::<RGBA8>(&mut bytes, &data, width, height, metadata),
        (Samples::Sixteen(data), 1) => write::<Gray16>(&mut bytes, &data, width, height, metadata),
        (Samples::Sixteen(data), 3) => write::<RGB16>(&mut bytes, &data, width, height, metadata),
        (Samples::Sixteen(data), 4) => write::<RGBA16>(&mut bytes, &data, width, height, metadata),
        _ => return Err(crate::io::encoding_error(ImageFormat::Tiff, format!("{channels} channels"))),
    };
    result.map_err(|e| crate::io::encoding_error(ImageFormat::Tiff, e.to_string()))?;
    writer.write_all(&bytes.into_inner()).map_err(ImageError::IoError)
}

/// An image's samples at the bit depth it is written in.
pub(crate) enum Samples {
    Eight(Vec<u8>),
    Sixteen(Vec<u16>),
}

fn write<C: ColorType>(
    out: &mut std::io::Cursor<Vec<u8>>,
    data: &[C::Inner],
    width: u32,
    height: u32,
    metadata: &Metadata,
) -> tiff::TiffResult<()>
where
    [C::Inner]: TiffValue,
{
    let mut tiff = TiffEncoder::new(out)?;
    let mut image = tiff.new_image::<C>(width, height)?;
    if let Some(icc) = &metadata.icc {
        image.encoder().write_tag(tiff::tags::Tag::IccProfile, icc.as_slice())?;
    }
    if let Some((x, y)) = metadata.dpi {
        // Hundredths of a dot per inch, as the EXIF stores them.
        let rational = |v: f64| Rational { n: (v * 100.0).round() as u32, d: 100 };
        image.resolution_unit(ResolutionUnit::Inch);
        image.x_resolution(rational(x));
        image.y_resolution(rational(y));
    }
    for (tag, text) in text_fields(metadata.exif.as_deref()) {
        image.encoder().write_tag(tiff::tags::Tag::from_u16_exhaustive(tag.number()), text.as_str())?;
    }
    image.write_data(data)
}

/// The text fields of an EXIF block's primary directory that a TIFF carries.
fn text_fields(exif: Option<&[u8]>) -> Vec<(Tag, String)> {
    let Some(exif) = exif.and_then(|bytes| exif::Reader::new().read_raw(bytes.to_vec()).ok()) else {
        return Vec::new();
    };
    TEXT_FIELDS
        .iter()
        .filter_map(|&tag| match &exif.get_field(tag, In::PRIMARY)?.value {
            // TIFF's ASCII is one NUL-terminated string: interior NULs would cut it short.
            Value::Ascii(parts) => Some((
                tag,
                parts.iter().map(|p| String::from_utf8_lossy(p).replace('\0', "")).collect::<Vec<_>>().join(" "),
            )),
            _ => None,
        })
        .collect()
}
