//! What a photo's file carries besides its pixels — its colour profile, EXIF, resolution and bit depth — and
//! what of it an upscaled copy keeps.
//!
//! The ICC profile says what the pixel values mean: dropping it shifts the colours of a wide-gamut photo. EXIF
//! holds the camera, the date, the GPS position and the copyright a photographer expects to keep. The EXIF is
//! rewritten, not copied: its orientation is reset (the pixels are stored upright once read), its pixel
//! dimensions and resolution follow the new size, its thumbnail (the old, small picture) is dropped, and its
//! `Software` names the program that made the file — which is how a later run recognises its own outputs.

use exif::{Field, In, Rational, Tag, Value};

/// The first word of the EXIF `Software` that sana-sr writes into the files it upscales.
pub const SOFTWARE_MARKER: &str = "sana-sr";

/// The `Software` text of a file sana-sr upscaled by `scale` with `model`: by it a later batch knows its own
/// outputs, and a reader of the file what made it.
pub fn software_marker(scale: u32, model: &str) -> String {
    format!("{SOFTWARE_MARKER} {} (x{scale}, {model})", env!("CARGO_PKG_VERSION"))
}

/// What [`crate::io::read_image_and_metadata`] reads besides the pixels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// The ICC colour profile, as stored.
    pub icc: Option<Vec<u8>>,
    /// The EXIF block as stored: TIFF-structured, without JPEG's `Exif\0\0` header.
    pub exif: Option<Vec<u8>>,
    /// The resolution, dots per inch across and down, from the format's own field (PNG `pHYs`, JPEG's JFIF
    /// header), else from the EXIF.
    pub dpi: Option<(f64, f64)>,
    /// Whether the file stores more than 8 bits a sample (16-bit PNG or TIFF).
    pub high_bit_depth: bool,
}

impl Metadata {
    /// The metadata of this image upscaled by `scale` to `width` x `height` by `software`: the profile and
    /// bit depth as they are; the resolution times `scale`, so that the print size stays what it was; the
    /// EXIF rewritten as the module says, with `software` as its `Software` (an EXIF is made for it when the
    /// source had none).
    pub fn upscaled(&self, width: u32, height: u32, scale: u32, software: &str) -> Metadata {
        let dpi = self.dpi.map(|(x, y)| (x * f64::from(scale), y * f64::from(scale)));
        Metadata {
            icc: self.icc.clone(),
            exif: Some(rewritten_exif(self.exif.as_deref(), width, height, dpi, software)),
            dpi,
            high_bit_depth: self.high_bit_depth,
        }
    }

    /// The EXIF `Software` text, if there is one: what made the file.
    pub fn software(&self) -> Option<String> {
        let exif = exif::Reader::new().read_raw(self.exif.clone()?).ok()?;
        let field = exif.get_field(Tag::Software, In::PRIMARY)?;
        match &field.value {
            Value::Ascii(parts) => parts.first().map(|text| String::from_utf8_lossy(text).into_owned()),
            _ => None,
        }
    }
}

/// `stored` (an EXIF block, if any) for the upscaled image: see the module's comment. A block that cannot be
/// parsed or written back is replaced by one holding only the new fields, rather than copied with an
/// orientation that would turn the upright pixels again.
fn rewritten_exif(stored: Option<&[u8]>, width: u32, height: u32, dpi: Option<(f64, f64)>, software: &str) -> Vec<u8> {
    let parsed = stored.and_then(|bytes| exif::Reader::new().read_raw(bytes.to_vec()).ok());
    let has = |tag| parsed.as_ref().is_some_and(|e| e.get_field(tag, In::PRIMARY).is_some());
    let field = |tag, value| Field { tag, ifd_num: In::PRIMARY, value };
    let mut new = vec![
        field(Tag::Orientation, Value::Short(vec![1])),
        field(Tag::Software, Value::Ascii(vec![software.as_bytes().to_vec()])),
    ];
    if has(Tag::PixelXDimension) || has(Tag::PixelYDimension) {
        new.push(field(Tag::PixelXDimension, Value::Long(vec![width])));
        new.push(field(Tag::PixelYDimension, Value::Long(vec![height])));
    }
    if let Some((x, y)) = dpi {
        // Hundredths of a dot per inch: exact for the whole numbers photos carry.
        let rational = |v: f64| Value::Rational(vec![Rational { num: (v * 100.0).round() as u32, denom: 100 }]);
        new.push(field(Tag::XResolution, rational(x)));
        new.push(field(Tag::YResolution, rational(y)));
        new.push(field(Tag::ResolutionUnit, Value::Short(vec![2])));
    }
    let replaced: Vec<Tag> = new.iter().map(|f| f.tag).collect();
    // The thumbnail's IFD is left out: it shows the old picture.
    let kept: Vec<&Field> = parsed
        .iter()
        .flat_map(|e| e.fields())
        .filter(|f| f.ifd_num == In::PRIMARY && !replaced.contains(&f.tag))
        .collect();
    let little_endian = parsed.as_ref().is_none_or(|e| e.little_endian());
    let write = |fields: &[&Field]| {
        let mut writer = exif::experimental::Writer::new();
        for field in fields {
            writer.push_field(field);
        }
        let mut bytes = std::io::Cursor::new(Vec::new());
        writer.write(&mut bytes, little_endian).map(|()| bytes.into_inner())
    };
    let all: Vec<&Field> = kept.into_iter().chain(&new).collect();
    write(&all).or_else(|_| write(&new.iter().collect::<Vec<_>>())).expect("the new fields alone are valid EXIF")
}

/// The resolution in a JPEG's JFIF header (`APP0`, first after the start-of-image marker), when it gives
/// one in dots per inch or per centimetre (unit 0 is an aspect ratio only).
pub(crate) fn jfif_dpi(bytes: &[u8]) -> Option<(f64, f64)> {
    let header = bytes.get(..18)?;
    if header[..4] != [0xFF, 0xD8, 0xFF, 0xE0] || &header[6..11] != b"JFIF\0" {
        return None;
    }
    let density = |at: usize| f64::from(u16::from_be_bytes([header[at], header[at + 1]]));
    let (x, y) = (density(14), density(16));
    let per_inch = match header[13] {
        1 => 1.0,
        2 => 2.54,
        _ => return None,
    };
    (x > 0.0 && y > 0.0).then_some((x * per_inch, y * per_inch))
}

/// The resolution in an EXIF block (`XResolution`, `YResolution` in `ResolutionUnit`s, inches by default).
pub(crate) fn exif_dpi(exif: &[u8]) -> Option<(f64, f64)> {
    let exif = exif::Reader::new().read_raw(exif.to_vec()).ok()?;
    let rational = |tag| match exif.get_field(tag, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Rational(r)) if !r.is_empty() && r[0].denom != 0 && r[0].num != 0 => Some(r[0].to_f64()),
        _ => None,
    };
    let per_inch = match exif.get_field(Tag::ResolutionUnit, In::PRIMARY).and_then(|f| f.value.get_uint(0)) {
        Some(3) => 2.54,
        Some(1) => return None,
        _ => 1.0,
    };
    Some((rational(Tag::XResolution)? * per_inch, rational(Tag::YResolution)? * per_inch))
}

/// Dots per inch as PNG's `pHYs` stores it: pixels per metre.
pub(crate) fn dpi_to_per_metre(dpi: f64) -> u32 {
    (dpi / 0.0254).round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exif_with(fields: &[Field]) -> Vec<u8> {
        let mut writer = exif::experimental::Writer::new();
        for field in fields {
            writer.push_field(field);
        }
        let mut bytes = std::io::Cursor::new(Vec::new());
        writer.write(&mut bytes, false).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn an_upscaled_copy_keeps_the_camera_and_resets_what_the_pixels_changed() {
        let field = |tag, ifd_num, value| Field { tag, ifd_num, value };
        let stored = exif_with(&[
            field(Tag::Make, In::PRIMARY, Value::Ascii(vec![b"Phone".to_vec()])),
            field(Tag::Orientation, In::PRIMARY, Value::Short(vec![6])),
            field(Tag::PixelXDimension, In::PRIMARY, Value::Long(vec![30])),
            field(Tag::PixelYDimension, In::PRIMARY, Value::Long(vec![20])),
            field(Tag::XResolution, In::PRIMARY, Value::Rational(vec![Rational { num: 72, denom: 1 }])),
            field(Tag::YResolution, In::PRIMARY, Value::Rational(vec![Rational { num: 72, denom: 1 }])),
            field(Tag::Make, In::THUMBNAIL, Value::Ascii(vec![b"thumb".to_vec()])),
        ]);
        let source = Metadata { exif: Some(stored.clone()), dpi: exif_dpi(&stored), ..Metadata::default() };
        assert_eq!(source.dpi, Some((72.0, 72.0)));
        let copy = source.upscaled(80, 120, 4, "sana-sr 1.0");
        assert_eq!(copy.software().as_deref(), Some("sana-sr 1.0"));
        assert_eq!(copy.dpi, Some((288.0, 288.0)));
        let parsed = exif::Reader::new().read_raw(copy.exif.clone().unwrap()).unwrap();
        let get = |tag| parsed.get_field(tag, In::PRIMARY).map(|f| f.display_value().to_string());
        assert_eq!(get(Tag::Make).as_deref(), Some("\"Phone\""));
        assert_eq!(get(Tag::Orientation).as_deref(), Some("row 0 at top and column 0 at left"));
        assert_eq!(get(Tag::PixelXDimension).as_deref(), Some("80"));
        assert_eq!(get(Tag::PixelYDimension).as_deref(), Some("120"));
        assert_eq!(exif_dpi(copy.exif.as_ref().unwrap()), Some((288.0, 288.0)));
        assert!(parsed.fields().all(|f| f.ifd_num == In::PRIMARY), "the thumbnail is dropped");
        // A photo without EXIF gets one, for the marker.
        assert_eq!(Metadata::default().upscaled(8, 8, 4, "sana-sr x").software().as_deref(), Some("sana-sr x"));
    }

    #[test]
    fn jfif_resolution_in_either_unit() {
        let header = |unit: u8, x: u16, y: u16| {
            let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16];
            bytes.extend_from_slice(b"JFIF\0\x01\x01");
            bytes.push(unit);
            bytes.extend_from_slice(&x.to_be_bytes());
            bytes.extend_from_slice(&y.to_be_bytes());
            bytes
        };
        assert_eq!(jfif_dpi(&header(1, 300, 150)), Some((300.0, 150.0)));
        assert_eq!(jfif_dpi(&header(2, 100, 100)), Some((254.0, 254.0)));
        assert_eq!(jfif_dpi(&header(0, 1, 1)), None);
        assert_eq!(jfif_dpi(b"\xFF\xD8"), None);
    }
}
