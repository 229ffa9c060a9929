//! A job's upload: the multipart form read into a temporary file of the service's own (a client that
//! disconnects mid-upload drops it, and the file with it), then checked, before any pixel is decoded, into
//! a job's [`Spec`]: the options against the model, the file's format and pixel count from its header.

use std::path::Path;

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::Multipart;
use sana_sr_data::io::{image_size, Encoding, IoError};
use sana_sr_pipeline::upscaler::{check_options, check_output_size, default_tile};
use sana_sr_pipeline::{ModelSource, UpscaleError, UpscaleOptions};
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::jobs::{Size, Spec};
use crate::models::Catalogue;

/// The result formats, as the `format` field names them.
pub const FORMATS: &[&str] = &["png", "jpg", "webp"];

/// The form's fields, as sent.
#[derive(Debug, Default)]
pub struct Form {
    pub model: Option<String>,
    pub scale: Option<String>,
    pub tile: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug)]
pub struct Upload {
    /// The image, removed when this is dropped.
    pub file: tempfile::TempPath,
    /// The name the client gave the file, reduced to safe characters: used in messages and the download's
    /// name, never as a path.
    pub file_name: String,
    pub form: Form,
}

/// Reads the form: one file in field `image`, the options as text fields.
pub async fn receive(mut multipart: Multipart, folder: &Path) -> Result<Upload, ApiError> {
    let mut image = None;
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_string();
        let option = match name.as_str() {
            "image" if image.is_some() => {
                return Err(ApiError::BadForm("more than one file in field `image`: one image per job".into()))
            }
            "image" => {
                image = Some(save(field, folder).await?);
                continue;
            }
            "model" => &mut form.model,
            "scale" => &mut form.scale,
            "tile" => &mut form.tile,
            "format" => &mut form.format,
            other => {
                return Err(ApiError::BadForm(format!(
                    "unknown field `{other}` (the fields are image, model, scale, tile and format)"
                )))
            }
        };
        let text = field.text().await.map_err(form_error)?;
        // An empty field is the same as none: what a form's "default" choice sends.
        *option = Some(text.trim().to_string()).filter(|t| !t.is_empty());
    }
    let (file, file_name) = image.ok_or_else(|| ApiError::BadForm("no file in field `image`".into()))?;
    Ok(Upload { file, file_name, form })
}

/// Streams the field into a new file in `folder`.
async fn save(mut field: Field<'_>, folder: &Path) -> Result<(tempfile::TempPath, String), ApiError> {
    let file_name = safe_name(field.file_name().unwrap_or("image"));
    let (file, path) = tempfile::Builder::new().prefix("upload-").tempfile_in(folder)?.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    Ok((path, file_name))
}

/// An unreadable form is a 400, one over the size limit a 413.
fn form_error(error: MultipartError) -> ApiError {
    if error.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(format!("the upload is over the limit: {}", error.body_text()))
    } else {
        ApiError::BadForm(format!("cannot read the form: {}", error.body_text()))
    }
}

/// `name`'s last component with characters other than letters, digits, `.`, `-` and `_` replaced, at most
/// 100 of them.
fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let safe: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(100)
        .collect();
    if safe.trim_matches('.').is_empty() {
        "image".into()
    } else {
        safe
    }
}

/// `error`'s message with the upload's temporary path replaced by the name the client gave the file.
pub fn as_upload(error: &IoError, path: &Path, file_name: &str) -> String {
    error.to_string().replace(&path.display().to_string(), file_name)
}

/// The MIME type of a result format.
pub fn content_type(format: &str) -> &'static str {
    image::ImageFormat::from_extension(format).map_or("application/octet-stream", |f| f.to_mime_type())
}

/// Checks the upload's options against `models` and its header against the pixel limit (blocking: it reads
/// the file's header): the job's spec and the model that runs it.
pub fn check(upload: &Upload, models: &Catalogue) -> Result<(Spec, ModelSource), ApiError> {
    let form = &upload.form;
    let format = form.format.clone().unwrap_or_else(|| FORMATS[0].to_string());
    if !FORMATS.contains(&format.as_str()) || Encoding::from_path(Path::new(&format!("x.{format}"))).is_none() {
        return Err(ApiError::BadOption(format!("format `{format}` is not one of {}", FORMATS.join(", "))));
    }
    let number = |name: &str, value: &Option<String>| -> Result<Option<u32>, ApiError> {
        value
            .as_deref()
            .map(|text| {
                text.parse::<u32>().map_err(|_| ApiError::BadOption(format!("{name} `{text}` is not a whole number")))
            })
            .transpose()
    };
    let scale = number("scale", &form.scale)?;
    let model = models.get(form.model.as_deref())?;
    // A tile bounds a worker's memory; a larger one (or none, the whole image) would let one request
    // take what the service was sized for. The model's default tile is sized to one memory budget
    // whatever its width, so it is also the largest.
    let largest = default_tile(&model.config);
    let tile = number("tile", &form.tile)?.unwrap_or(largest);
    if tile > largest {
        return Err(ApiError::BadOption(format!(
            "tile {tile} is over this server's largest for this model, {largest}"
        )));
    }
    let options = UpscaleOptions { scale, tile: Some(tile), ..Default::default() };
    let scale = check_options(&model.config, &options).map_err(|e| ApiError::BadOption(e.to_string()))?;

    let (width, height) = image_size(&upload.file).map_err(|error| {
        let message = as_upload(&error, &upload.file, &upload.file_name);
        match error {
            IoError::TooLarge { .. } => ApiError::TooLarge(message),
            IoError::Empty { .. } => ApiError::BadForm(message),
            IoError::Open { .. } => ApiError::Internal(message),
            _ => ApiError::NotAnImage(message),
        }
    })?;
    let (width, height) = (u64::from(width), u64::from(height));
    check_output_size(width, height, scale).map_err(|error| match error {
        UpscaleError::TooLarge { .. } => ApiError::TooLarge(error.to_string()),
        other => ApiError::BadOption(other.to_string()),
    })?;
    let (input, output) = (Size { width, height }, Size { width: width * scale as u64, height: height * scale as u64 });
    let spec = Spec { model: model.entry.name.clone(), scale, tile, format, input, output };
    Ok((spec, model.source.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_file_names_lose_their_folders_and_odd_characters() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\photos\\my cat.jpg"), "my_cat.jpg");
        assert_eq!(safe_name(".."), "image");
        assert_eq!(safe_name(&"a".repeat(500)).len(), 100);
    }

    #[test]
    fn every_result_format_is_one_the_data_crate_writes_with_its_mime_type() {
        for format in FORMATS {
            assert!(Encoding::from_path(Path::new(&format!("x.{format}"))).is_some(), "{format}");
            assert!(content_type(format).starts_with("image/"), "{format}");
        }
    }
}
