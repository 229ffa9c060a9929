//! The evaluation loop: every method on every image of every set, scored and averaged per (set, method).
//!
//! Metric conventions (what the SR papers this project compares with report):
//! - PSNR and SSIM on the Y channel of MATLAB's YCbCr with `crop_border = scale` pixels cut from every
//!   edge (basicsr `calculate_psnr/ssim(..., crop_border=4, test_y_channel=True)`), on sets with ground
//!   truth only; the SR image is cropped to the ground truth's size (top-left kept), and one smaller than
//!   the ground truth is an error. Every output is rounded to 8 bits first, as a stored output would be.
//! - NIQE on every set, on the whole SR image (`crop_border = 0`): the default of pyiqa's `niqe` metric
//!   (`pyiqa/archs/niqe_arch.py`, `calculate_niqe(crop_border=0)`), which OSEDiff, SinSR and ResShift
//!   report through.
//!
//! A missing or corrupt image costs that image, never the run: its error is reported as one line and
//! counted in the row's `failed` column (and, not being recorded, it is tried again by a resumed run).

use indicatif::ProgressBar;
use sana_sr_data::Image;

use crate::dataset::EvalSet;
use crate::inputs::{self, Inputs};
use crate::method::Method;
use crate::panel::{self, PanelRow};
use crate::record::{self, Entry, Record, RecordError, Scores};
use crate::report::Row;

/// How [`evaluate`] scores.
#[derive(Debug, Clone)]
pub struct Options {
    /// The SR factor.
    pub scale: usize,
    /// Pixels cut from every edge before PSNR/SSIM (the scale, by the x4 benchmarks' convention).
    pub crop_border: usize,
    /// Pixels cut from every edge before NIQE (0, pyiqa's default).
    pub niqe_crop_border: usize,
    /// Score at most this many images of each set (the first ones by name).
    pub max_images: Option<usize>,
    /// Images of each set shown in its panel.
    pub panel_images: usize,
    /// Side of a panel cell, in output pixels.
    pub panel_cell: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { scale: 4, crop_border: 4, niqe_crop_border: 0, max_images: None, panel_images: 3, panel_cell: 128 }
    }
}

impl Options {
    /// Refuses, before any image is read, a panel over the process's pixel limit
    /// ([`sana_sr_data::io::max_pixels`]) for `methods` methods: one column each, beside the LR and the
    /// ground truth.
    pub fn check(&self, methods: usize) -> Result<(), String> {
        let (width, height) = panel::grid_size(self.panel_images, methods + 2, self.panel_cell);
        let limit = sana_sr_data::io::max_pixels();
        if width.saturating_mul(height) > limit {
            return Err(format!(
                "a panel of {} images x {} columns of {} pixels would be {width}x{height}, over the limit of \
                 {limit} pixels (--max-pixels raises it; or fewer --panel-images, a smaller --panel-cell)",
                self.panel_images,
                methods + 2,
                self.panel_cell
            ));
        }
        Ok(())
    }
}

/// What [`evaluate`] found.
#[derive(Debug)]
pub struct Evaluation {
    /// One row per (set, method), sets in the order given, methods in the order given.
    pub rows: Vec<Row>,
    /// One line per image that could not be read or scored.
    pub errors: Vec<String>,
    /// Per set, its side-by-side crops (see [`crate::panel`]).
    pub panels: Vec<(String, Image)>,
}

#[derive(Debug, thiserror::Error)]
enum ScoreError {
    #[error("output is {sr_width}x{sr_height}, smaller than the ground truth {gt_width}x{gt_height}")]
    TooSmall { sr_width: usize, sr_height: usize, gt_width: usize, gt_height: usize },
    #[error(transparent)]
    Metric(#[from] sana_sr_metrics::MetricError),
}

/// A running mean that ignores absent values.
#[derive(Debug, Default, Clone, Copy)]
struct Mean {
    sum: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, value: Option<f64>) {
        if let Some(value) = value {
            self.sum += value;
            self.count += 1;
        }
    }

    fn get(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    psnr_y: Mean,
    ssim_y: Mean,
    niqe: Mean,
    seconds: Mean,
    images: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, scores: &Scores) {
        self.psnr_y.add(scores.psnr_y);
        self.ssim_y.add(scores.ssim_y);
        self.niqe.add(Some(scores.niqe));
        self.seconds.add(scores.seconds);
        self.images += 1;
    }
}

/// Part of every record key: raise it when a metric's computation changes, so that recorded scores of the
/// old computation are not reused.
const SCORING_VERSION: u32 = 1;

/// Runs every method over every set; `progress` advances once per image (set its length to
/// [`image_count`]). A score that `record` holds already (an earlier run's, or this run's of the same photo
/// in another set) is taken from it; every new one is added to it as soon as it is made. Only images that
/// every method super-resolved in this run go into the panels. A record that cannot be written ends the run.
pub fn evaluate(
    sets: &[EvalSet],
    methods: &mut [Box<dyn Method>],
    options: &Options,
    record: &mut Record,
    progress: &ProgressBar,
) -> Result<Evaluation, RecordError> {
    let conventions = format!(
        "scoring v{SCORING_VERSION} x{} crop {} niqe crop {}",
        options.scale, options.crop_border, options.niqe_crop_border
    );
    let mut evaluation = Evaluation { rows: Vec::new(), errors: Vec::new(), panels: Vec::new() };
    // A hidden bar (stderr is not a terminal) prints nothing: the line goes straight to stderr then.
    let report = |line: String| {
        if progress.is_hidden() {
            eprintln!("{line}");
        } else {
            progress.println(&line);
        }
        line
    };
    for set in sets {
        progress.set_message(set.name.clone());
        let mut tallies = vec![Tally::default(); methods.len()];
        let mut panel_rows: Vec<PanelRow> = Vec::new();
        for sample in set.samples.iter().take(options.max_images.unwrap_or(usize::MAX)) {
            let Inputs { lr, gt } = match inputs::load(sample, options.scale) {
                Ok(inputs) => inputs,
                Err(err) => {
                    evaluation.errors.push(report(format!("{}/{}: {err}", set.name, sample.name)));
                    tallies.iter_mut().for_each(|tally| tally.failed += 1);
                    progress.inc(1);
                    continue;
                }
            };
            let inputs = record::input_digest(&conventions, &lr, gt.as_ref());
            let mut outputs = Vec::with_capacity(methods.len());
            let mut all_made = true;
            for (method, tally) in methods.iter_mut().zip(&mut tallies) {
                let identity =
                    method.identity().unwrap_or_else(|| format!("{} on {}/{}", method.name(), set.name, sample.name));
                let key = record::key(&inputs, &identity);
                if let Some(scores) = record.get(&key) {
                    tally.add(&scores);
                    outputs.push(None);
                    all_made = false;
                    continue;
                }
                let scored = method
                    .super_resolve(&set.name, sample, &lr, options.scale)
                    .map_err(|err| err.to_string())
                    .and_then(|out| {
                        let sr = match_size(out.image.to_8bit(), gt.as_ref()).map_err(|err| err.to_string())?;
                        let scores = score(&sr, gt.as_ref(), out.seconds, options).map_err(|err| err.to_string())?;
                        Ok((sr, scores))
                    });
                match scored {
                    Ok((sr, scores)) => {
                        tally.add(&scores);
                        record.add(Entry {
                            set: set.name.clone(),
                            image: sample.name.clone(),
                            method: method.name().to_owned(),
                            key,
                            scores,
                        })?;
                        outputs.push(Some(sr));
                    }
                    Err(err) => {
                        let line = format!("{}/{} [{}]: {err}", set.name, sample.name, method.name());
                        evaluation.errors.push(report(line));
                        tally.failed += 1;
                        outputs.push(None);
                    }
                }
            }
            if all_made && panel_rows.len() < options.panel_images {
                let outputs: Vec<Option<&Image>> = outputs.iter().map(Option::as_ref).collect();
                panel_rows.push(panel::row(&lr, &outputs, gt.as_ref(), options.panel_cell, options.scale));
            }
            progress.inc(1);
        }
        evaluation.rows.extend(methods.iter().zip(&tallies).map(|(method, tally)| Row {
            set: set.name.clone(),
            method: method.name().to_owned(),
            psnr_y: tally.psnr_y.get(),
            ssim_y: tally.ssim_y.get(),
            niqe: tally.niqe.get(),
            seconds_per_image: tally.seconds.get(),
            images: tally.images,
            failed: tally.failed,
        }));
        if !panel_rows.is_empty() {
            evaluation.panels.push((set.name.clone(), panel::grid(&panel_rows, options.panel_cell)));
        }
    }
    Ok(evaluation)
}

/// The number of images [`evaluate`] visits.
pub fn image_count(sets: &[EvalSet], options: &Options) -> usize {
    sets.iter().map(|set| set.samples.len().min(options.max_images.unwrap_or(usize::MAX))).sum()
}

/// `sr` cropped to the ground truth's size (top-left kept); unchanged without ground truth.
fn match_size(sr: Image, gt: Option<&Image>) -> Result<Image, ScoreError> {
    let Some(gt) = gt else { return Ok(sr) };
    if (sr.width, sr.height) == (gt.width, gt.height) {
        return Ok(sr);
    }
    let too_small =
        ScoreError::TooSmall { sr_width: sr.width, sr_height: sr.height, gt_width: gt.width, gt_height: gt.height };
    sr.crop(0, 0, gt.width, gt.height).ok_or(too_small)
}

fn score(sr: &Image, gt: Option<&Image>, seconds: Option<f64>, options: &Options) -> Result<Scores, ScoreError> {
    use sana_sr_metrics::{niqe, psnr_y, ssim_y};
    let (psnr_y, ssim_y) = match gt {
        Some(gt) => (Some(psnr_y(sr, gt, options.crop_border)?), Some(ssim_y(sr, gt, options.crop_border)?)),
        None => (None, None),
    };
    Ok(Scores { psnr_y, ssim_y, niqe: niqe(sr, options.niqe_crop_border)?, seconds })
}
