//! `sana-sr upscale`: the main job. Every input gets one line of error or one output file; a failed image
//! never stops the batch, and the exit code says whether any failed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sana_sr_data::io::{has_image_extension, image_size, read_image, write_image, Encoding, WriteOptions};
use sana_sr_pipeline::upscaler::DEFAULT_TILE;
use sana_sr_pipeline::{ModelSource, UpscaleOptions, Upscaler, DEFAULT_MODEL};

use sana_sr_core::fs::FileKey;

use super::device_arg;
use super::inputs::expand_inputs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sana-sr upscale photo.jpg                   writes photo_x4.png next to photo.jpg
  sana-sr upscale photos/ -o sharp/           every image of photos/ into sharp/
  sana-sr upscale 'scans/*.png' -s 2 --format webp
  sana-sr upscale big.jpg --tile 512          less memory for a large image")]
pub struct Args {
    /// Image files, folders (the images directly inside them) or quoted glob patterns like 'photos/*.jpg'.
    #[arg(required = true, value_name = "IN")]
    inputs: Vec<String>,
    /// Output file (one input) or folder (created if missing). Default: next to each input, as NAME_x4.png.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Upscaling factor. Default: the model's own (4 for the built-in model).
    #[arg(short, long)]
    scale: Option<u32>,
    /// A built-in model, a model in the models folder, or a model file; `sana-sr models` lists them.
    #[arg(short, long, default_value = DEFAULT_MODEL, value_name = "NAME|PATH")]
    model: String,
    /// Tile side in output pixels: large images run in overlapping tiles of this size to bound memory
    /// (lower it if memory runs out); 0 runs every image whole.
    #[arg(long, default_value_t = DEFAULT_TILE, value_name = "N")]
    tile: u32,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (the GPU when there is one).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Output format. Default: OUT's extension, else png.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Replace existing output files (inputs are never replaced).
    #[arg(long)]
    overwrite: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Png,
    Jpg,
    Webp,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpg => "jpg",
            Self::Webp => "webp",
        }
    }
}

/// One image to do: where it comes from and where it goes.
struct Job {
    input: PathBuf,
    output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let (inputs, mut failures) = expand_inputs(&args.inputs);
    let source = ModelSource::resolve(&args.model)?;
    let device = device_arg(&args.device)?;
    let upscaler = Upscaler::load(&source, device).with_context(|| format!("cannot load model {}", source.label()))?;
    let options = UpscaleOptions { scale: args.scale, tile: super::tile_arg(args.tile) };
    let scale = upscaler.scale(&options)?;
    let (jobs, planning_failures) = plan_outputs(inputs, args.output.as_deref(), args.format, scale)?;
    failures.extend(planning_failures);
    for line in &failures {
        eprintln!("error: {line}");
    }

    let multi = MultiProgress::new();
    let batch = multi.add(ProgressBar::new(jobs.len() as u64));
    batch.set_style(ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} images, {elapsed} (eta {eta})")?);
    batch.set_prefix("upscaling");
    let tiles = multi.add(ProgressBar::new(0));
    tiles.set_style(ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} tiles  {msg}")?);
    tiles.set_prefix("image");

    let mut written = 0;
    for job in &jobs {
        sana_sr_core::interrupt::set_done(format!("{written} of {} image(s) upscaled and written", jobs.len()));
        tiles.set_message(job.input.display().to_string());
        tiles.set_position(0);
        let result = upscale_one(&upscaler, job, &options, args.overwrite, |p| {
            tiles.set_length(p.total as u64);
            tiles.set_position(p.done as u64);
        });
        match result {
            Ok(()) => written += 1,
            Err(err) => {
                let line = format!("{}: {}", job.input.display(), super::one_line(&err));
                multi.suspend(|| eprintln!("error: {line}"));
                failures.push(line);
            }
        }
        batch.inc(1);
    }
    tiles.finish_and_clear();
    batch.finish_and_clear();

    let total = written + failures.len();
    eprintln!(
        "upscaled {written} of {total} image(s) x{scale} with {} in {:.1} s",
        source.label(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!("{} of {total} image(s) failed", failures.len());
    }
    Ok(())
}

fn upscale_one(
    upscaler: &Upscaler,
    job: &Job,
    options: &UpscaleOptions,
    overwrite: bool,
    on_progress: impl FnMut(sana_sr_pipeline::Progress),
) -> anyhow::Result<()> {
    // Checked before the work, so that a refused output costs nothing; `write_image` checks again.
    if !overwrite && job.output.exists() {
        bail!("{} exists already (pass --overwrite to replace it)", job.output.display());
    }
    // The output's size from the input's header, before the input is decoded.
    let (width, height) = image_size(&job.input)?;
    upscaler.check_output_size(width.into(), height.into(), upscaler.scale(options)?)?;
    let image = read_image(&job.input)?;
    let sr = {
        let _quiet = QuietPanics::install();
        upscaler.upscale_with_progress(&image, options, on_progress)?
    };
    let encoding = Encoding::from_path(&job.output).expect("outputs are named with a known extension");
    // JPEG has no alpha channel.
    let sr = if matches!(encoding, Encoding::Jpeg { .. }) { sr.to_rgb() } else { sr };
    write_image(&sr, &job.output, &WriteOptions { encoding, overwrite })?;
    Ok(())
}

/// Where each input's output goes. `out` is a file for a single input when it has an image extension and is
/// not a folder; otherwise a folder. Two inputs that would write the same file, or an output that is an
/// input (under any name: a link to it, or its target), are refused (a line each).
fn plan_outputs(
    inputs: Vec<PathBuf>,
    out: Option<&Path>,
    format: Option<Format>,
    scale: u32,
) -> anyhow::Result<(Vec<Job>, Vec<String>)> {
    let out_is_file = out.is_some_and(|o| !o.is_dir() && has_image_extension(o));
    if out_is_file && inputs.len() > 1 {
        bail!("{} inputs cannot all go to the one file {}: give a folder", inputs.len(), out.unwrap().display());
    }
    if let Some(dir) = out.filter(|_| !out_is_file) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    }
    let extension = match (format, out.filter(|_| out_is_file)) {
        (Some(format), _) => format.extension().to_string(),
        (None, Some(file)) => file.extension().and_then(|e| e.to_str()).unwrap_or("png").to_ascii_lowercase(),
        (None, None) => Format::Png.extension().to_string(),
    };
    let input_set: std::collections::HashSet<FileKey> = inputs.iter().map(|p| FileKey::of(p)).collect();
    let mut claimed: HashMap<FileKey, PathBuf> = HashMap::new();
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    for input in inputs {
        let output = match out {
            Some(file) if out_is_file => file.with_extension(&extension),
            _ => {
                let stem = input.file_stem().unwrap_or_default().to_string_lossy();
                let name = format!("{stem}_x{scale}.{extension}");
                out.map_or_else(|| input.with_file_name(&name), |dir| dir.join(&name))
            }
        };
        let key = FileKey::of(&output);
        if input_set.contains(&key) {
            failures.push(format!(
                "{}: its output {} is an input; refusing to replace it",
                input.display(),
                output.display()
            ));
        } else if let Some(first) = claimed.get(&key) {
            failures.push(format!(
                "{}: its output {} is also the output of {}; rename one or use another folder",
                input.display(),
                output.display(),
                first.display()
            ));
        } else {
            claimed.insert(key, input.clone());
            jobs.push(Job { input, output });
        }
    }
    Ok((jobs, failures))
}

/// While alive, panics print nothing: libtorch's failures surface as panics that the pipeline turns into
/// one error line per image, and their C++ backtraces would bury that line.
struct QuietPanics {
    previous: Option<PanicHook>,
}

type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send>;

impl QuietPanics {
    fn install() -> Self {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        Self { previous: Some(previous) }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            std::panic::set_hook(previous);
        }
    }
}
