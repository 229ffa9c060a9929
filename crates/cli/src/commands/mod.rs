//! One module per subcommand: its clap `Args` and a `run`.

pub mod bench;
pub mod data;
pub mod degrade;
pub mod eval;
pub mod inputs;
pub mod inspect;
pub mod lora;
pub mod models;
pub mod prune;
pub mod serve;
pub mod train;
pub mod upscale;

use sana_sr_core::Device;

/// An error and its causes on one line, each cause once: the library's errors already quote the cause they
/// wrap (`cannot open x.png: No such file`), so a cause whose text is there already is not repeated.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// The environment variable naming the folder of evaluation sets when `--datasets` does not.
pub const DATASETS_ENV: &str = "SANA_SR_DATASETS";

/// The folder of evaluation sets: `--datasets` (clap reads [`DATASETS_ENV`] into it), which must be given
/// one way or the other: a default relative to the current folder would only hold inside one checkout.
pub fn datasets_dir(arg: Option<&std::path::Path>) -> anyhow::Result<&std::path::Path> {
    let dir = arg.ok_or_else(|| {
        anyhow::anyhow!(
            "no folder of evaluation sets: pass --datasets DIR or set {DATASETS_ENV} (DIR holds Set5/, Set14/, ...)"
        )
    })?;
    if !dir.is_dir() {
        anyhow::bail!(
            "the evaluation sets folder {} is not a folder (from --datasets or {DATASETS_ENV})",
            dir.display()
        );
    }
    Ok(dir)
}

/// A `--tile` value as the pipeline takes it: 0 runs every image whole.
pub fn tile_arg(tile: u32) -> Option<u32> {
    (tile > 0).then_some(tile)
}

/// A `--precision` value: `auto`, `f32`, `bf16` or `f16`.
pub fn precision_arg(name: &str) -> Result<sana_sr_core::precision::Precision, String> {
    name.parse()
}

/// A `--device` value: `auto` is the first GPU when libtorch sees one, else the CPU; anything else as
/// [`sana_sr_core::parse_device`] reads it.
pub fn device_arg(name: &str) -> anyhow::Result<Device> {
    Ok(if name == "auto" { Device::cuda_if_available() } else { sana_sr_core::parse_device(name)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open x.png: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[test]
    fn causes_already_quoted_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(Quoting { source: io }).context("loading the model");
        assert_eq!(one_line(&err), "loading the model: cannot open x.png: no such file");
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&plain), "outer: inner");
    }
}
