//! `sana-sr upscale`: the main job. Every input gets one line of error or one output file; a failed image
//! never stops the batch, and the exit code says whether any failed.

mod plan;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use sana_sr_core::precision::Precision;
use sana_sr_core::profile;
use sana_sr_data::io::{image_size, read_image_and_metadata, write_image_with_metadata, ReadOptions, WriteOptions};
use sana_sr_data::metadata::software_marker;
use sana_sr_pipeline::upscaler::{check_options, default_tile};
use sana_sr_pipeline::{ModelSource, UpscaleOptions, Upscaler, DEFAULT_MODEL};

use super::device_arg;
use super::inputs::{expand_inputs, Expand, Failure};
use plan::{Format, Job};
use report::{Record, Reporter};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sana-sr upscale photo.jpg                   writes photo_x4.png next to photo.jpg
  sana-sr upscale photos/ -o sharp/           every image of photos/ into sharp/
  sana-sr upscale -r photos/ -o sharp/        and of its sub-folders, mirrored in sharp/
  sana-sr upscale 'scans/*.png' -s 2 --format webp --quality 90
  sana-sr upscale big.jpg --tile 512          less memory for a large image
  sana-sr upscale photos/ --json > log.jsonl  one JSON object per image, for scripts")]
pub struct Args {
    /// Image files, folders (the images in them) or quoted glob patterns like 'photos/*.jpg'. Files found in
    /// folders or by patterns that an earlier run wrote (named NAME_xN, or marked so in their EXIF) are left
    /// out; name one to upscale it again.
    #[arg(required = true, value_name = "IN")]
    inputs: Vec<String>,
    /// Output file (one input; its extension gives the format) or folder (any other name; created if
    /// missing). Default: next to each input, as NAME_x4.png.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Look for images in the folders' sub-folders too; an output folder mirrors them.
    #[arg(short, long)]
    recursive: bool,
    /// Upscaling factor. Default: the model's own (4 for the built-in model).
    #[arg(short, long)]
    scale: Option<u32>,
    /// A built-in model, a model in the models folder, or a model file; `sana-sr models` lists them.
    #[arg(short, long, default_value = DEFAULT_MODEL, value_name = "NAME|PATH")]
    model: String,
    /// Largest tile side in output pixels: large images run in equal overlapping tiles of at most this size to
    /// bound memory (lower it if memory runs out); 0 runs every image whole. Default: 1024, more for a model
    /// narrower than the full-size DC-AE (2048 for the built-in model).
    #[arg(long, value_name = "N")]
    tile: Option<u32>,
    /// Sampler steps of a diffusion model (default: the model's own, 1 for the built-in model); more steps
    /// cost one DiT pass each.
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Seed of the start noise, for a model whose sampler starts from noise: the same seed gives the same
    /// image.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// What the photo shows, comma-separated ("building, sign, text"), for a model with a text encoder: they
    /// fill its prompt template. Without them it runs on its untagged prompt.
    #[arg(long, value_name = "TAGS")]
    tags: Option<String>,
    /// Classifier-free guidance towards the tags' prompt, against the empty prompt, for a model with a text
    /// encoder: each step then runs the DiT twice. 1 is none.
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    guidance: f64,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (the GPU when there is one).
    #[arg(long, default_value = "auto")]
    device: String,
    /// What the networks' convolutions and linear layers compute in: `f32`, `bf16`, `f16`, or `auto` (bf16 on
    /// a GPU and on CPUs where it is faster: with AMX, or AMD with AVX-512 BF16; f32 elsewhere). Norms, the
    /// linear-attention sums and the diffusion step stay in f32.
    #[arg(long, default_value = "auto", value_parser = super::precision_arg)]
    precision: Precision,
    /// Output format. Default: OUT's extension when OUT is a file, else png. 16-bit inputs give 16-bit PNG
    /// and TIFF.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// JPEG quality (default 95), or lossy WebP at this quality (WebP is lossless without it); 1-100.
    #[arg(long, value_name = "1-100", value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: Option<u8>,
    /// Replace existing output files (inputs are never replaced).
    #[arg(long, conflicts_with = "skip_existing")]
    overwrite: bool,
    /// Leave inputs whose output exists alone (not an error): a batch interrupted can be run again.
    #[arg(long)]
    skip_existing: bool,
    /// Print nothing but errors: no progress bars, no line per image, no summary.
    #[arg(short, long)]
    quiet: bool,
    /// One JSON object per image on stdout (input, output, size, model, seconds, error) instead of the
    /// line per image.
    #[arg(long)]
    json: bool,
    /// At the end, print where the time went (seconds per stage over every image: load (the model), read, resize,
    /// encoder, transformer, decoder, tiles, output, write), the peak memory and the page faults, on stderr.
    #[arg(long)]
    profile: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.profile {
        return run_batch(args);
    }
    let started = Instant::now();
    let (result, stages) = profile::profiled(|| run_batch(args));
    print_profile(&stages, started.elapsed().as_secs_f64());
    result
}

/// The profile's table: each stage's seconds and share of the command's wall time, the rest as `other`.
fn print_profile(stages: &profile::Stages, wall: f64) {
    eprintln!("{:<12} {:>9} {:>7}", "stage", "seconds", "share");
    let staged: f64 = stages.iter().map(|(_, d)| d.as_secs_f64()).sum();
    let rows = stages.iter().map(|(name, d)| (*name, d.as_secs_f64())).chain([("other", (wall - staged).max(0.0))]);
    for (name, seconds) in rows {
        eprintln!("{name:<12} {seconds:>9.3} {:>6.1}%", 100.0 * seconds / wall);
    }
    eprintln!("{:<12} {wall:>9.3}", "total");
    match profile::peak_resident_bytes() {
        Some(bytes) => eprintln!("peak memory  {:.1} MB resident", bytes as f64 / 1e6),
        None => eprintln!("peak memory  not reported by this system"),
    }
    if let Some((faults, system)) = profile::kernel_work() {
        eprintln!("page faults  {faults} minor, {system:.2} s system time");
    }
}

fn run_batch(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let found = expand_inputs(&args.inputs, Expand { recursive: args.recursive, skip_earlier_outputs: true });
    let (target, format) = plan::target(args.output.as_deref(), args.format, args.quality, found.inputs.len())?;
    let source = ModelSource::resolve(&args.model)?;
    let model = source.label();
    let device = device_arg(&args.device)?;
    // One precision for the whole run: a low one converts the weights rather than holding a copy beside them.
    let upscaler = profile::stage("load", || Upscaler::load(&source, device))
        .with_context(|| format!("cannot load model {model}"))?
        .in_one_precision(args.precision);
    let options = UpscaleOptions {
        scale: args.scale,
        tile: super::tile_arg(args.tile.unwrap_or_else(|| default_tile(&upscaler.model.config()))),
        steps: args.steps,
        seed: args.seed,
        tags: args.tags.clone(),
        guidance: args.guidance,
        precision: args.precision,
    };
    let scale = check_options(&upscaler.model.config(), &options)?;
    let (jobs, planning_failures) = plan::jobs(found.inputs, &target, format, scale);
    let mut failures: Vec<Failure> = found.failures.into_iter().chain(planning_failures).collect();

    let reporter = Reporter::new(jobs.len(), args.quiet, args.json)?;
    let record = |input: String, output: Option<String>| Record {
        input,
        output,
        size: None,
        model: &model,
        seconds: None,
        skipped: false,
        error: None,
    };
    for failure in &failures {
        reporter.error(&failure.to_string());
        reporter.outcome(&Record { error: Some(failure.error.clone()), ..record(failure.input.clone(), None) });
    }
    let software = software_marker(scale, &model);
    let work = Work {
        upscaler: &upscaler,
        options: &options,
        quality: args.quality,
        format,
        overwrite: args.overwrite,
        software: &software,
    };
    let (mut written, mut skipped) = (0, 0);
    for (index, job) in jobs.iter().enumerate() {
        sana_sr_core::interrupt::set_done(format!("{written} of {} image(s) upscaled and written", jobs.len()));
        reporter.start(index, &job.input);
        let input = job.input.display().to_string();
        let mut outcome = record(input.clone(), Some(job.output.display().to_string()));
        let image_started = Instant::now();
        if args.skip_existing && job.output.exists() {
            skipped += 1;
            outcome.skipped = true;
            reporter.done(index, &outcome);
            continue;
        }
        match work.upscale_one(job, |p| reporter.tile(index, p)) {
            Ok(size) => {
                written += 1;
                outcome.size = Some(size);
                outcome.seconds = Some(image_started.elapsed().as_secs_f64());
            }
            Err(err) => {
                let failure = Failure::new(&input, super::one_line(&err));
                reporter.error(&failure.to_string());
                outcome.error = Some(failure.error.clone());
                failures.push(failure);
            }
        }
        reporter.done(index, &outcome);
    }
    reporter.finish();

    let total = written + skipped + failures.len();
    if !args.quiet {
        let mut notes = Vec::new();
        if skipped > 0 {
            notes.push(format!("{skipped} left alone as their outputs exist"));
        }
        if found.earlier_outputs > 0 {
            notes.push(format!("{} earlier output(s) passed over", found.earlier_outputs));
        }
        let notes = if notes.is_empty() { String::new() } else { format!("; {}", notes.join(", ")) };
        eprintln!(
            "upscaled {written} of {total} image(s) x{scale} with {model} in {:.1} s{notes}",
            started.elapsed().as_secs_f64()
        );
    }
    if !failures.is_empty() {
        bail!("{} of {total} image(s) failed", failures.len());
    }
    Ok(())
}

/// What every image of a batch is done with.
struct Work<'a> {
    upscaler: &'a Upscaler,
    options: &'a UpscaleOptions,
    format: Format,
    quality: Option<u8>,
    overwrite: bool,
    /// The EXIF `Software` of the outputs.
    software: &'a str,
}

impl Work<'_> {
    /// Upscales one image and writes it with its metadata; the output's width and height.
    fn upscale_one(
        &self,
        job: &Job,
        on_progress: impl FnMut(sana_sr_pipeline::Progress),
    ) -> anyhow::Result<[usize; 2]> {
        // Checked before the work, so that a refused output costs nothing; the write checks again.
        if !self.overwrite && job.output.exists() {
            bail!(
                "{} exists already (pass --overwrite to replace it, --skip-existing to pass it by)",
                job.output.display()
            );
        }
        // The output's size from the input's header, before the input is decoded.
        let (width, height) = image_size(&job.input)?;
        let scale = self.upscaler.scale(self.options)?;
        self.upscaler.check_output_size(width.into(), height.into(), scale)?;
        let (image, metadata) =
            profile::stage("read", || read_image_and_metadata(&job.input, &ReadOptions::default()))?;
        let sr = {
            let _quiet = QuietPanics::install();
            self.upscaler.upscale_with_progress(&image, self.options, on_progress)?
        };
        let encoding = self.format.encoding(self.quality, metadata.high_bit_depth);
        // JPEG has no alpha channel.
        let sr = if self.format == Format::Jpg { sr.to_rgb() } else { sr };
        let metadata = metadata.upscaled(sr.width as u32, sr.height as u32, scale, self.software);
        if let Some(folder) = job.output.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
        let options = WriteOptions { encoding, overwrite: self.overwrite };
        profile::stage("write", || write_image_with_metadata(&sr, &job.output, &options, &metadata))?;
        Ok([sr.width, sr.height])
    }
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
