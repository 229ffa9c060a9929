//! What `upscale` says while it works, for a person or for a script. On a terminal, a progress bar for the
//! batch that moves with every tile and one for the image's tiles (stderr); when stdout is not a terminal, one
//! line per image there (a log keeps what happened); `--json`, one JSON object per image on stdout instead;
//! `--quiet`, none of it. Errors always get their `error:` line on stderr.

use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sana_sr_pipeline::Progress;

/// Steps of the batch bar per image: tiles advance it by fractions of an image.
const STEPS_PER_IMAGE: u64 = 1000;

/// How the outcome of each image is written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PerImage {
    Nothing,
    Line,
    Json,
}

/// One image's outcome: `--json` writes it as one object a line.
#[derive(Debug, serde::Serialize)]
pub struct Record<'a> {
    pub input: String,
    /// Where the output went (or was to go).
    pub output: Option<String>,
    /// The output's width and height.
    pub size: Option<[usize; 2]>,
    pub model: &'a str,
    /// Time spent on the image: reading, upscaling, writing.
    pub seconds: Option<f64>,
    /// Left alone because its output exists (`--skip-existing`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub error: Option<String>,
}

pub struct Reporter {
    per_image: PerImage,
    multi: MultiProgress,
    batch: ProgressBar,
    tiles: ProgressBar,
    images: u64,
}

impl Reporter {
    pub fn new(images: usize, quiet: bool, json: bool) -> anyhow::Result<Self> {
        let per_image = match (json, quiet || std::io::stdout().is_terminal()) {
            (true, _) => PerImage::Json,
            (false, true) => PerImage::Nothing,
            (false, false) => PerImage::Line,
        };
        let multi = MultiProgress::new();
        if quiet {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let images = images as u64;
        let batch = multi.add(ProgressBar::new(images * STEPS_PER_IMAGE));
        batch.set_style(ProgressStyle::with_template("{prefix:>9} [{bar:30}] {msg} images, {elapsed} (eta {eta})")?);
        batch.set_prefix("upscaling");
        batch.set_message(format!("0/{images}"));
        let tiles = multi.add(ProgressBar::new(0));
        tiles.set_style(ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} tiles  {msg}")?);
        tiles.set_prefix("image");
        Ok(Self { per_image, multi, batch, tiles, images })
    }

    /// Image `index` (from 0) starts.
    pub fn start(&self, index: usize, input: &Path) {
        self.tiles.set_message(input.display().to_string());
        self.tiles.set_position(0);
        self.batch.set_position(index as u64 * STEPS_PER_IMAGE);
        self.batch.set_message(format!("{index}/{}", self.images));
    }

    /// Image `index` has done `progress.done` of its tiles.
    pub fn tile(&self, index: usize, progress: Progress) {
        self.tiles.set_length(progress.total as u64);
        self.tiles.set_position(progress.done as u64);
        let part = (progress.done as u64 * STEPS_PER_IMAGE).checked_div(progress.total as u64).unwrap_or(0);
        self.batch.set_position(index as u64 * STEPS_PER_IMAGE + part);
    }

    /// An `error:` line on stderr, above the bars.
    pub fn error(&self, line: &str) {
        self.multi.suspend(|| eprintln!("error: {line}"));
    }

    /// An image is done, well or not: its line or object on stdout.
    pub fn done(&self, index: usize, record: &Record) {
        self.batch.set_position((index as u64 + 1) * STEPS_PER_IMAGE);
        self.batch.set_message(format!("{}/{}", index + 1, self.images));
        self.outcome(record);
    }

    /// The outcome of an input that never became a job (a missing file, a refused output).
    pub fn outcome(&self, record: &Record) {
        let line = match self.per_image {
            PerImage::Nothing => return,
            PerImage::Json => serde_json::to_string(record).expect("a record serialises"),
            PerImage::Line => match record {
                Record { error: Some(error), .. } => format!("{}: failed: {error}", record.input),
                Record { skipped: true, output: Some(output), .. } => {
                    format!("{}: skipped, {output} exists", record.input)
                }
                Record { output: Some(output), size: Some([w, h]), seconds: Some(s), .. } => {
                    format!("{} -> {output} ({w}x{h}, {s:.1} s)", record.input)
                }
                _ => return,
            },
        };
        self.multi.suspend(|| {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error of the upscale.
            let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        });
    }

    pub fn finish(&self) {
        self.tiles.finish_and_clear();
        self.batch.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_bar_moves_with_every_tile() {
        let reporter = Reporter::new(2, true, false).unwrap();
        reporter.start(0, Path::new("a.png"));
        assert_eq!(reporter.batch.position(), 0);
        reporter.tile(0, Progress { done: 1, total: 4 });
        assert_eq!(reporter.batch.position(), STEPS_PER_IMAGE / 4, "a quarter of the first image");
        reporter.done(
            0,
            &Record {
                input: "a.png".into(),
                output: None,
                size: None,
                model: "m",
                seconds: None,
                skipped: false,
                error: None,
            },
        );
        reporter.tile(1, Progress { done: 3, total: 4 });
        assert_eq!(reporter.batch.position(), STEPS_PER_IMAGE + 3 * STEPS_PER_IMAGE / 4);
    }
}
