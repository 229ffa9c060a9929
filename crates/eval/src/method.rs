//! The super-resolution methods under evaluation.
//!
//! A method turns a sample's LR image into an SR image and says how long that took. Built in: `bicubic`
//! (MATLAB `imresize` on 8-bit images, the floor every SR paper reports), `model` (a sana-sr model, or a peer
//! network imported with `sana-sr models import`, through the pipeline) and `folder` (outputs another tool wrote, such as the Real-ESRGAN peer of
//! `scripts/realesrgan_peer.sh`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sana_sr_core::precision::Precision;
use sana_sr_core::Device;
use sana_sr_data::io::{read_image, IoError, IMAGE_EXTENSIONS};
use sana_sr_data::resize::matlab::ResizeError;
use sana_sr_data::Image;
use sana_sr_pipeline::upscaler::check_options;
use sana_sr_pipeline::{ModelSource, RegistryError, UpscaleError, UpscaleOptions, Upscaler};

use crate::dataset::Sample;
use sana_sr_data::resize::matlab::imresize_uint8;

/// The file, next to a folder method's outputs of one set, that records the seconds each image took
/// (`stem,seconds,...` with a header line), as `scripts/realesrgan_peer.py` writes it.
pub const TIMINGS_FILE: &str = "timings.csv";

/// An SR result and the seconds it took (`None` when the producing tool recorded none).
#[derive(Debug, Clone)]
pub struct SrOutput {
    pub image: Image,
    pub seconds: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Resize(#[from] ResizeError),
    #[error("no output for {name:?} in {dir} (looked for {stems} with extension {extensions})")]
    MissingOutput { name: String, dir: PathBuf, stems: String, extensions: String },
    #[error("{path}, line {line}: {reason}")]
    Timings { path: PathBuf, line: usize, reason: String },
    #[error(transparent)]
    Upscale(#[from] UpscaleError),
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown method {0:?}: expected `bicubic`, `model`, `model:[LABEL=]NAME|PATH[@STEPS]`, `folder:DIR` or `folder:NAME=DIR`")]
    Unknown(String),
    #[error("method {spec:?}: {source}")]
    Model { spec: String, source: RegistryError },
    #[error("method {spec:?}: {dir} is not a folder")]
    NoFolder { spec: String, dir: PathBuf },
    #[error("method {spec:?}: {reason}")]
    Steps { spec: String, reason: String },
}

/// How `model` methods run: on `device`, in tiles of `tile` output pixels (`None`: whole), weight layers in
/// `precision`.
#[derive(Debug, Clone, Copy)]
pub struct ModelRun {
    pub device: Device,
    pub tile: Option<u32>,
    pub precision: Precision,
}

/// The method a command-line spec names: `bicubic`, `model` (the default sana-sr model), `model:NAME|PATH` or
/// `model:LABEL=NAME|PATH` (run as `run` says; named after the model's config, with the precision when it is
/// not float32, unless labelled), each with an optional `@STEPS` (sampler steps, named `NAME@STEPS`),
/// `folder:DIR` (named after DIR's last component) or `folder:NAME=DIR`.
pub fn from_spec(spec: &str, run: &ModelRun) -> Result<Box<dyn Method>, SpecError> {
    let error = || SpecError::Unknown(spec.to_owned());
    if spec == "bicubic" {
        return Ok(Box::new(Bicubic));
    }
    if let Some(model) = spec.strip_prefix("model:").or((spec == "model").then_some(sana_sr_pipeline::DEFAULT_MODEL)) {
        let model_error = |source| SpecError::Model { spec: spec.to_owned(), source };
        let (name, model) = match model.split_once('=') {
            Some((name, model)) if !name.is_empty() => (Some(name), model),
            _ => (None, model),
        };
        // `NAME@STEPS`: the sampler run with that many steps instead of the model's own.
        let (model, steps) = match model.rsplit_once('@').map(|(m, s)| (m, s.parse::<usize>())) {
            Some((model, Ok(steps))) if !model.is_empty() => (model, Some(steps)),
            _ => (model, None),
        };
        let source = ModelSource::resolve(model).map_err(model_error)?;
        let mut method = Model::load(&source, run, steps).map_err(model_error)?;
        if let Some(steps) = steps {
            let options = UpscaleOptions { steps: Some(steps), ..Default::default() };
            check_options(&method.upscaler.model.config(), &options)
                .map_err(|e| SpecError::Steps { spec: spec.to_owned(), reason: e.to_string() })?;
            method.name = format!("{}@{steps}", method.name);
        }
        if let Some(name) = name {
            method.name = name.to_owned();
        }
        return Ok(Box::new(method));
    }
    let folder = spec.strip_prefix("folder:").filter(|rest| !rest.is_empty()).ok_or_else(error)?;
    let (name, dir) = match folder.split_once('=') {
        Some((name, dir)) => (name.to_owned(), PathBuf::from(dir)),
        None => {
            let dir = PathBuf::from(folder);
            let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(error)?.to_owned();
            (name, dir)
        }
    };
    if name.is_empty() || dir.as_os_str().is_empty() {
        return Err(error());
    }
    // Checked here, not image by image: a mistyped folder would fail every image of every set.
    if !dir.is_dir() {
        return Err(SpecError::NoFolder { spec: spec.to_owned(), dir });
    }
    Ok(Box::new(Folder::new(name, dir)))
}

/// A super-resolution method evaluated by the harness.
pub trait Method {
    /// The name the method has in reports (unique among the methods of one run).
    fn name(&self) -> &str;

    /// The x`scale` SR image of `sample` (a member of set `set`) whose LR image is `lr` (RGB).
    fn super_resolve(&mut self, set: &str, sample: &Sample, lr: &Image, scale: usize) -> Result<SrOutput, MethodError>;

    /// What the method's output depends on besides the LR pixels, for the evaluation's record of scores
    /// ([`crate::record`]); `None` when its output is not a function of the LR pixels alone (another tool's
    /// files, read by set and name), whose scores are then keyed by its name, the set and the image.
    fn identity(&self) -> Option<String>;

    /// Whether the method can run on the set `set` at all, checked before any image is: a folder method
    /// needs the set's folder of outputs.
    fn check_set(&self, _set: &str) -> Result<(), String> {
        Ok(())
    }
}

/// MATLAB bicubic upscaling of the 8-bit LR image, as MATLAB does it on `uint8` ([`imresize_uint8`]).
#[derive(Debug, Default)]
pub struct Bicubic;

impl Method for Bicubic {
    fn name(&self) -> &str {
        "bicubic"
    }

    fn identity(&self) -> Option<String> {
        Some("bicubic".into())
    }

    fn super_resolve(
        &mut self,
        _set: &str,
        _sample: &Sample,
        lr: &Image,
        scale: usize,
    ) -> Result<SrOutput, MethodError> {
        timed(|| Ok(imresize_uint8(lr, scale as f64)?))
    }
}

/// The output of `run` and the seconds it took.
fn timed(run: impl FnOnce() -> Result<Image, MethodError>) -> Result<SrOutput, MethodError> {
    let start = Instant::now();
    let image = run()?;
    Ok(SrOutput { image, seconds: Some(start.elapsed().as_secs_f64()) })
}

/// A sana-sr model or an imported peer network run by the pipeline at the sample's scale as a [`ModelRun`]
/// says; timed per image.
#[derive(Debug)]
pub struct Model {
    name: String,
    upscaler: Upscaler,
    run: ModelRun,
    /// Sampler steps asked for; `None` is the model's own.
    steps: Option<usize>,
    /// The model file's SHA-256, the tiling, any steps asked for and a precision other than float32: a label
    /// does not change the output, other weights do.
    identity: String,
}

impl Model {
    pub fn load(source: &ModelSource, run: &ModelRun, steps: Option<usize>) -> Result<Self, RegistryError> {
        let upscaler = Upscaler::load(source, run.device)?;
        let mut identity = format!("model sha256 {} tile {:?}", source.fingerprint()?, run.tile);
        // Tiles were once all `tile` long; equal tiles just long enough give other outputs on a tiled image,
        // so scores made before them are not reused.
        if run.tile.is_some() {
            identity += " equal";
        }
        if let Some(steps) = steps {
            identity += &format!(" steps {steps}");
        }
        let mut name = upscaler.model.name().to_string();
        let precision = run.precision.resolved_name(run.device);
        // Float32 keeps the identity it always had, so earlier records are reused.
        if precision != "f32" {
            identity += &format!(" precision {precision}");
            name += &format!(" {precision}");
        }
        Ok(Self { name, upscaler, run: *run, steps, identity })
    }

    fn options(&self, scale: u32) -> UpscaleOptions {
        let (tile, precision) = (self.run.tile, self.run.precision);
        UpscaleOptions { scale: Some(scale), tile, steps: self.steps, precision, ..Default::default() }
    }
}

impl Method for Model {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> Option<String> {
        Some(self.identity.clone())
    }

    fn super_resolve(
        &mut self,
        _set: &str,
        _sample: &Sample,
        lr: &Image,
        scale: usize,
    ) -> Result<SrOutput, MethodError> {
        let options = self.options(scale as u32);
        timed(|| Ok(self.upscaler.upscale(lr, &options)?))
    }
}

/// Outputs of another tool: `<root>/<set>/<stem>.<ext>`, where the stem is the LR file's (what a tool run
/// over the LR folder writes) or else the sample's name; seconds per image from `<root>/<set>/timings.csv`
/// when the tool wrote one.
#[derive(Debug)]
pub struct Folder {
    name: String,
    root: PathBuf,
    /// Seconds by stem, per set, read on first use.
    timings: HashMap<String, HashMap<String, f64>>,
}

impl Folder {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        Self { name: name.into(), root: root.into(), timings: HashMap::new() }
    }

    fn output_path(&self, set: &str, sample: &Sample) -> Result<(PathBuf, String), MethodError> {
        let dir = self.root.join(set);
        let stems = [sample.lr_stem(), sample.name.as_str()];
        for stem in stems {
            for extension in IMAGE_EXTENSIONS {
                let path = dir.join(format!("{stem}.{extension}"));
                if path.is_file() {
                    return Ok((path, stem.to_owned()));
                }
            }
        }
        Err(MethodError::MissingOutput {
            name: sample.name.clone(),
            dir,
            stems: stems.join(" or "),
            extensions: IMAGE_EXTENSIONS.join("/"),
        })
    }

    fn seconds(&mut self, set: &str, stem: &str) -> Result<Option<f64>, MethodError> {
        if !self.timings.contains_key(set) {
            let timings = read_timings(&self.root.join(set).join(TIMINGS_FILE))?;
            self.timings.insert(set.to_owned(), timings);
        }
        Ok(self.timings[set].get(stem).copied())
    }
}

impl Method for Folder {
    fn name(&self) -> &str {
        &self.name
    }

    fn identity(&self) -> Option<String> {
        None
    }

    fn check_set(&self, set: &str) -> Result<(), String> {
        let dir = self.root.join(set);
        if dir.is_dir() {
            Ok(())
        } else {
            Err(format!("method {:?} has no outputs for set {set}: {} is not a folder", self.name, dir.display()))
        }
    }

    fn super_resolve(
        &mut self,
        set: &str,
        sample: &Sample,
        _lr: &Image,
        _scale: usize,
    ) -> Result<SrOutput, MethodError> {
        let (path, stem) = self.output_path(set, sample)?;
        let image = read_image(&path)?.to_rgb();
        Ok(SrOutput { image, seconds: self.seconds(set, &stem)? })
    }
}

/// Reads `stem,seconds[,...]` lines after a header; an absent file is an empty table (the tool recorded no
/// timings), a malformed one an error.
fn read_timings(path: &Path) -> Result<HashMap<String, f64>, MethodError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(err) => return Err(MethodError::Timings { path: path.to_path_buf(), line: 0, reason: err.to_string() }),
    };
    let mut timings = HashMap::new();
    for (index, line) in text.lines().enumerate().skip(1).filter(|(_, line)| !line.trim().is_empty()) {
        let error =
            |reason: &str| MethodError::Timings { path: path.to_path_buf(), line: index + 1, reason: reason.into() };
        let mut fields = line.split(',');
        let stem = fields.next().ok_or_else(|| error("no stem"))?;
        let seconds = fields
            .next()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| error("expected `stem,seconds` with seconds a non-negative number"))?;
        // A resumed run may time an image again: the latest measurement wins.
        timings.insert(stem.to_owned(), seconds);
    }
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::LrSource;
    use sana_sr_data::io::save_image;

    fn sample(name: &str, lr_file: Option<&str>) -> Sample {
        let lr = lr_file.map_or(LrSource::BicubicFromHr, |f| LrSource::File(PathBuf::from(f)));
        Sample { name: name.into(), lr, hr: None }
    }

    #[test]
    fn specs_name_methods() {
        let run = ModelRun {
            device: Device::Cpu,
            tile: Some(sana_sr_pipeline::upscaler::DEFAULT_TILE),
            precision: Precision::F32,
        };
        let spec = |s: &str| from_spec(s, &run);
        assert_eq!(spec("bicubic").unwrap().name(), "bicubic");
        assert_eq!(spec("model").unwrap().name(), sana_sr_pipeline::DEFAULT_MODEL);
        assert_eq!(spec("model:sana-sr-tiny").unwrap().name(), "sana-sr-tiny");
        assert_eq!(spec("model:tiny-cpu=sana-sr-tiny").unwrap().name(), "tiny-cpu");
        assert_eq!(spec("model:sana-sr-tiny@3").unwrap().name(), "sana-sr-tiny@3");
        assert_eq!(spec("model:tiny-3=sana-sr-tiny@3").unwrap().name(), "tiny-3");
        let (one, three) = (spec("model:sana-sr-tiny").unwrap(), spec("model:sana-sr-tiny@3").unwrap());
        assert_ne!(one.identity(), three.identity(), "steps change what is scored");
        let err = spec("model:sana-sr-tiny@0").err().expect("0 steps are refused").to_string();
        assert!(err.contains("outside 1..=1000"), "{err}");
        let err = spec("model:no-such-model").err().expect("an unknown model is refused").to_string();
        assert!(err.contains("no model named"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let outputs = dir.path().join("realesrgan");
        std::fs::create_dir(&outputs).unwrap();
        assert_eq!(spec(&format!("folder:{}", outputs.display())).unwrap().name(), "realesrgan");
        assert_eq!(spec(&format!("folder:Real-ESRGAN={}", outputs.display())).unwrap().name(), "Real-ESRGAN");
        for bad in ["bicubik", "folder:", "folder:x=", "folder:=dir", "folder:/"] {
            assert!(spec(bad).is_err(), "{bad}");
        }
        // A folder that is not there is refused before any image is scored.
        let missing = dir.path().join("missing");
        let err = spec(&format!("folder:{}", missing.display())).err().expect("refused").to_string();
        assert!(err.contains("missing is not a folder"), "{err}");
        let folder = spec(&format!("folder:{}", outputs.display())).unwrap();
        std::fs::create_dir(outputs.join("Set5")).unwrap();
        assert!(folder.check_set("Set5").is_ok());
        assert!(folder.check_set("Set14").unwrap_err().contains("no outputs for set Set14"));
    }

    #[test]
    fn folder_matches_lr_stem_then_sample_name_and_reads_timings() {
        let root = tempfile::tempdir().unwrap();
        let set = root.path().join("Set5");
        std::fs::create_dir(&set).unwrap();
        save_image(&Image::new(2, 1, 1, vec![0.0, 1.0]), set.join("babyx4.png")).unwrap();
        save_image(&Image::new(1, 1, 3, vec![0.2, 0.4, 0.6]), set.join("bird.png")).unwrap();
        std::fs::write(set.join(TIMINGS_FILE), "stem,seconds,lr_width,lr_height\nbabyx4,2.5,1,1\n\n").unwrap();

        let mut folder = Folder::new("peer", root.path());
        let lr = Image::zeros(1, 1, 3);
        let baby = folder.super_resolve("Set5", &sample("baby", Some("x/babyx4.png")), &lr, 4).unwrap();
        assert_eq!((baby.image.width, baby.image.channels), (2, 3), "gray outputs are read as RGB");
        assert_eq!(baby.seconds, Some(2.5));
        let bird = folder.super_resolve("Set5", &sample("bird", None), &lr, 4).unwrap();
        assert_eq!(bird.seconds, None);

        let missing = folder.super_resolve("Set5", &sample("head", Some("x/headx4.png")), &lr, 4).unwrap_err();
        assert!(matches!(missing, MethodError::MissingOutput { .. }));
        assert!(missing.to_string().contains("headx4 or head"), "{missing}");
    }

    #[test]
    fn folder_reports_corrupt_outputs_and_malformed_timings() {
        let root = tempfile::tempdir().unwrap();
        let set = root.path().join("S");
        std::fs::create_dir(&set).unwrap();
        std::fs::write(set.join("a.png"), b"not a png").unwrap();
        let mut folder = Folder::new("peer", root.path());
        let lr = Image::zeros(1, 1, 3);
        let corrupt = folder.super_resolve("S", &sample("a", None), &lr, 4).unwrap_err();
        assert!(matches!(corrupt, MethodError::Io(_)));
        assert!(corrupt.to_string().contains("a.png"), "{corrupt}");

        save_image(&Image::zeros(1, 1, 3), set.join("b.png")).unwrap();
        std::fs::write(set.join(TIMINGS_FILE), "stem,seconds\nb,fast\n").unwrap();
        let mut folder = Folder::new("peer", root.path());
        let malformed = folder.super_resolve("S", &sample("b", None), &lr, 4).unwrap_err();
        assert!(matches!(malformed, MethodError::Timings { line: 2, .. }), "{malformed}");
    }
}
