//! Lossy WebP, through libwebp (`libwebp-sys`, built from its bundled source). The `image` crate writes
//! lossless WebP only, which for a photo is larger than the PNG; libwebp's own muxer adds the ICC profile
//! and EXIF, so the container's flags and chunk order are the reference implementation's.

use std::ffi::c_int;

use libwebp_sys as ffi;

/// `rgb` (`channels` 3 or 4 interleaved 8-bit samples, `width` x `height`) as a lossy WebP file at libwebp's
/// `quality` (0-100), with `icc` and `exif` chunks when given.
pub(crate) fn encode_lossy(
    samples: &[u8],
    width: u32,
    height: u32,
    channels: usize,
    quality: u8,
    icc: Option<&[u8]>,
    exif: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    assert!(channels == 3 || channels == 4, "libwebp takes RGB or RGBA");
    assert_eq!(samples.len(), width as usize * height as usize * channels, "samples fill the image");
    let (w, h) = (c_int::try_from(width), c_int::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else { return Err(format!("{width}x{height} is too large for WebP")) };
    let stride = w * channels as c_int;
    let mut output: *mut u8 = std::ptr::null_mut();
    // SAFETY: `samples` holds `height` rows of `stride` bytes (asserted above); libwebp allocates `output`,
    // which is freed below with its own `WebPFree`.
    let size = unsafe {
        let encode = if channels == 4 { ffi::WebPEncodeRGBA } else { ffi::WebPEncodeRGB };
        encode(samples.as_ptr(), w, h, stride, f32::from(quality), &mut output)
    };
    if size == 0 || output.is_null() {
        return Err(format!("libwebp cannot encode a {width}x{height} image (WebP is at most 16383 pixels a side)"));
    }
    // SAFETY: libwebp returned `size` bytes at `output`; they are copied before being freed.
    let bitstream = unsafe {
        let bytes = std::slice::from_raw_parts(output, size).to_vec();
        ffi::WebPFree(output.cast());
        bytes
    };
    if icc.is_none() && exif.is_none() {
        return Ok(bitstream);
    }
    with_chunks(&bitstream, icc, exif)
}

/// A WebP file with the `ICCP` and `EXIF` chunks added by libwebp's muxer.
fn with_chunks(webp: &[u8], icc: Option<&[u8]>, exif: Option<&[u8]>) -> Result<Vec<u8>, String> {
    let data = |bytes: &[u8]| ffi::WebPData { bytes: bytes.as_ptr(), size: bytes.len() };
    let ok = |error: ffi::WebPMuxError, what: &str| match error {
        ffi::WebPMuxError::WEBP_MUX_OK => Ok(()),
        error => Err(format!("libwebp cannot {what}: {error:?}")),
    };
    let mux = ffi::WebPMuxNew();
    if mux.is_null() {
        return Err("libwebp cannot make a muxer".into());
    }
    // SAFETY: every `WebPData` points into a slice that outlives the call, and `copy_data = 1` makes the
    // muxer copy it; the assembled data is libwebp's, copied out and cleared; the muxer is deleted on every
    // path.
    unsafe {
        let result = (|| {
            ok(ffi::WebPMuxSetImage(mux, &data(webp), 1), "take the image")?;
            for (fourcc, bytes) in [(c"ICCP", icc), (c"EXIF", exif)] {
                if let Some(bytes) = bytes {
                    ok(ffi::WebPMuxSetChunk(mux, fourcc.as_ptr(), &data(bytes), 1), "add the metadata")?;
                }
            }
            let mut assembled = ffi::WebPData::default();
            ok(ffi::WebPMuxAssemble(mux, &mut assembled), "assemble the file")?;
            let bytes = std::slice::from_raw_parts(assembled.bytes, assembled.size).to_vec();
            ffi::WebPDataClear(&mut assembled);
            Ok(bytes)
        })();
        ffi::WebPMuxDelete(mux);
        result
    }
}
