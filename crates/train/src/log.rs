//! The training log: a CSV file with one row per logged step, and a PNG plot of it.
//!
//! Columns: `step, lr, <one per loss term>, <validation metric>, steps_per_s`; the metric is empty on
//! steps without a validation. A row exists once its newline is written: each row is formatted in memory
//! and handed to the OS in one write, so a killed trainer leaves whole rows only, and a torn last line
//! (power loss) is ignored by the reader and dropped on resume. Resuming from step s keeps the rows up to
//! s and drops the later ones, which the resumed run is about to write again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Once;

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use sana_sr_core::fs::{write_atomically, AtomicWriteError};

/// The names of the logged quantities that vary from run to run.
#[derive(Clone, Debug, PartialEq)]
pub struct LogColumns {
    /// One per loss term, e.g. `loss_mse`, `loss_lpips`.
    pub losses: Vec<String>,
    /// The validation metric, e.g. `val_lpips`.
    pub metric: String,
}

const STEP: &str = "step";
const LR: &str = "lr";
const SPEED: &str = "steps_per_s";

impl LogColumns {
    fn header(&self) -> Vec<&str> {
        let losses = self.losses.iter().map(String::as_str);
        [STEP, LR].into_iter().chain(losses).chain([self.metric.as_str(), SPEED]).collect()
    }

    fn validate(&self) -> Result<(), LogError> {
        let header = self.header();
        let distinct = header.iter().enumerate().all(|(i, name)| !header[..i].contains(name));
        if distinct && header.iter().all(|name| !name.is_empty()) {
            Ok(())
        } else {
            Err(LogError::BadColumns { header: header.join(",") })
        }
    }
}

/// One logged step.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub lr: f64,
    /// In the order of [`LogColumns::losses`].
    pub losses: Vec<f64>,
    /// The validation metric, on steps that validated.
    pub metric: Option<f64>,
    pub steps_per_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot {action} training log `{path}`: {source}")]
    Io { path: PathBuf, action: &'static str, source: io::Error },
    #[error("training log `{path}` exists already; resume from a step to continue it")]
    Exists { path: PathBuf },
    #[error("training log `{path}` has columns `{found}`, this run logs `{expected}`")]
    OtherColumns { path: PathBuf, found: String, expected: String },
    #[error("training log `{path}`: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("log columns `{header}` must be non-empty and distinct (step, lr and steps_per_s are taken)")]
    BadColumns { header: String },
    #[error("log row for step {step} has {got} loss terms, the log has {expected}")]
    RowLength { step: u64, got: usize, expected: usize },
    #[error("log row for step {step} comes after step {last}: steps must increase")]
    StepNotIncreasing { step: u64, last: u64 },
    #[error("cannot draw the training plot: {0}")]
    Plot(String),
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
}

/// Appends rows to a training log.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    columns: LogColumns,
    last_step: Option<u64>,
}

impl LogWriter {
    /// Starts a new log at `path`; an existing file is refused, since a fresh run would mix its rows with
    /// another run's.
    pub fn create(path: &Path, columns: LogColumns) -> Result<Self, LogError> {
        columns.validate()?;
        let file = OpenOptions::new().append(true).create_new(true).open(path).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                LogError::Exists { path: path.to_path_buf() }
            } else {
                LogError::Io { path: path.to_path_buf(), action: "create", source }
            }
        })?;
        let mut writer = LogWriter { path: path.to_path_buf(), file, columns, last_step: None };
        write_line(&mut writer.file, path, &writer.columns.header())?;
        Ok(writer)
    }

    /// Continues the log at `path` for a run resumed after `step`: keeps its rows up to `step` and drops the
    /// rest. A missing (or header-less) file is started anew; one with other columns is refused.
    pub fn resume(path: &Path, columns: LogColumns, step: u64) -> Result<Self, LogError> {
        columns.validate()?;
        let io_error = |action| move |source| LogError::Io { path: path.to_path_buf(), action, source };
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_error("open"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error("read"))?;
        let mut writer = LogWriter { path: path.to_path_buf(), file, columns, last_step: None };
        let Some(table) = parse(path, &bytes)? else {
            writer.file.set_len(0).map_err(io_error("truncate"))?;
            write_line(&mut writer.file, path, &writer.columns.header())?;
            return Ok(writer);
        };
        if table.columns != writer.columns {
            return Err(LogError::OtherColumns {
                path: path.to_path_buf(),
                found: table.columns.header().join(","),
                expected: writer.columns.header().join(","),
            });
        }
        let kept = table.rows.iter().take_while(|(row, _)| row.step <= step).last();
        writer.last_step = kept.map(|(row, _)| row.step);
        let end = kept.map_or(table.header_end, |(_, end)| *end);
        writer.file.set_len(end).map_err(io_error("truncate"))?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `row` as one whole line.
    pub fn append(&mut self, row: &LogRow) -> Result<(), LogError> {
        let expected = self.columns.losses.len();
        if row.losses.len() != expected {
            return Err(LogError::RowLength { step: row.step, got: row.losses.len(), expected });
        }
        if let Some(last) = self.last_step.filter(|&last| row.step <= last) {
            return Err(LogError::StepNotIncreasing { step: row.step, last });
        }
        // `{:?}` is the shortest text that parses back to the same f64, and writes 1e-5 rather than 0.00001.
        let number = |value: f64| format!("{value:?}");
        let fields: Vec<String> = [row.step.to_string(), number(row.lr)]
            .into_iter()
            .chain(row.losses.iter().map(|&loss| number(loss)))
            .chain([row.metric.map(number).unwrap_or_default(), number(row.steps_per_s)])
            .collect();
        write_line(&mut self.file, &self.path, &fields)?;
        self.last_step = Some(row.step);
        Ok(())
    }
}

/// Appends `fields` to `file` as one CSV line, in a single write.
fn write_line(file: &mut File, path: &Path, fields: &[impl AsRef<[u8]>]) -> Result<(), LogError> {
    let io_error = |action| move |source| LogError::Io { path: path.to_path_buf(), action, source };
    let mut line = csv::Writer::from_writer(Vec::new());
    let formatted = line.write_record(fields).and_then(|()| line.into_inner().map_err(|e| e.into_error().into()));
    let bytes = formatted.map_err(|e| io_error("format a line of")(e.into()))?;
    file.write_all(&bytes).map_err(io_error("append to"))
}

/// A training log as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingLog {
    pub columns: LogColumns,
    pub rows: Vec<LogRow>,
}

/// A parsed log, with the byte offsets where the header and each row end.
struct Parsed {
    columns: LogColumns,
    header_end: u64,
    rows: Vec<(LogRow, u64)>,
}

/// Parses the complete lines of `bytes`; None when not even the header line is complete.
fn parse(path: &Path, bytes: &[u8]) -> Result<Option<Parsed>, LogError> {
    let complete = &bytes[..bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)];
    if complete.is_empty() {
        return Ok(None);
    }
    let malformed = |reason: String| LogError::Malformed { path: path.to_path_buf(), reason };
    let mut reader = csv::Reader::from_reader(complete);
    let header = reader.headers().map_err(|e| malformed(e.to_string()))?.clone();
    let names: Vec<&str> = header.iter().collect();
    let [STEP, LR, losses @ .., metric, SPEED] = names.as_slice() else {
        return Err(malformed(format!("header `{}` is not step,lr,<losses>,<metric>,steps_per_s", names.join(","))));
    };
    let columns = LogColumns { losses: losses.iter().map(|s| s.to_string()).collect(), metric: metric.to_string() };
    let header_end = reader.position().byte();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(|e| malformed(e.to_string()))? {
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or_default();
        let number =
            |i: usize| field(i).parse::<f64>().map_err(|e| malformed(format!("line {line}: `{}`: {e}", field(i))));
        let last = record.len() - 1;
        let row = LogRow {
            step: field(0).parse().map_err(|e| malformed(format!("line {line}: step `{}`: {e}", field(0))))?,
            lr: number(1)?,
            losses: (2..last - 1).map(number).collect::<Result<_, _>>()?,
            metric: if field(last - 1).is_empty() { None } else { Some(number(last - 1)?) },
            steps_per_s: number(last)?,
        };
        rows.push((row, reader.position().byte()));
    }
    Ok(Some(Parsed { columns, header_end, rows }))
}

impl TrainingLog {
    /// Reads the complete rows of the log at `path`.
    pub fn read(path: &Path) -> Result<Self, LogError> {
        let bytes =
            std::fs::read(path).map_err(|source| LogError::Io { path: path.to_path_buf(), action: "read", source })?;
        let parsed = parse(path, &bytes)?
            .ok_or_else(|| LogError::Malformed { path: path.to_path_buf(), reason: "no header line".into() })?;
        Ok(TrainingLog { columns: parsed.columns, rows: parsed.rows.into_iter().map(|(row, _)| row).collect() })
    }

    /// Draws the curves into a `width` × `height` PNG at `path` (replaced atomically): the loss terms against
    /// the step above, the validation metric below with `knee_step` (from ESGF) marked in red.
    pub fn plot(&self, path: &Path, knee_step: Option<u64>, (width, height): (u32, u32)) -> Result<(), LogError> {
        register_font();
        let mut pixels = vec![255u8; width as usize * height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
            let (top, bottom) = root.split_vertically(height / 2);
            let steps = |value: &dyn Fn(&LogRow) -> Option<f64>| -> Vec<(f64, f64)> {
                self.rows.iter().filter_map(|row| Some((row.step as f64, value(row)?))).collect()
            };
            let losses: Vec<Series> = self
                .columns
                .losses
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    (name.as_str(), Palette99::pick(i).to_rgba(), steps(&|row| row.losses.get(i).copied()))
                })
                .collect();
            let metric = [(self.columns.metric.as_str(), BLUE.to_rgba(), steps(&|row| row.metric))];
            draw_panel(&top, "training losses", &losses, None).map_err(|e| LogError::Plot(e.to_string()))?;
            draw_panel(&bottom, "validation", &metric, knee_step).map_err(|e| LogError::Plot(e.to_string()))?;
            root.present().map_err(|e| LogError::Plot(e.to_string()))?;
        }
        write_atomically(path, true, |w| {
            image::codecs::png::PngEncoder::new(w)
                .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
                .map_err(io::Error::other)
        })?;
        Ok(())
    }
}

/// A curve: its name, colour and `(step, value)` points; non-finite values are left out of the drawing.
type Series<'a> = (&'a str, RGBAColor, Vec<(f64, f64)>);

/// The font is compiled in (DejaVu Sans, license beside it in `assets/`) so that plotting needs no system
/// font; plotters looks it up under the family name used in the styles below.
fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, include_bytes!("../assets/DejaVuSans.ttf"))
            .unwrap_or_else(|_| panic!("assets/DejaVuSans.ttf is not a font plotters can read"));
    });
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend, Shift>,
    title: &str,
    series: &[Series],
    knee: Option<u64>,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    let finite = || series.iter().flat_map(|(_, _, points)| points).filter(|(_, y)| y.is_finite());
    let (mut x, mut y) = ((f64::INFINITY, f64::NEG_INFINITY), (f64::INFINITY, f64::NEG_INFINITY));
    for &(px, py) in finite() {
        x = (x.0.min(px), x.1.max(px));
        y = (y.0.min(py), y.1.max(py));
    }
    let span = |(lo, hi): (f64, f64), pad: f64| match (lo.is_finite(), hi > lo) {
        (false, _) => 0.0..1.0,
        (true, false) => lo - 0.5..hi + 0.5,
        (true, true) => lo - pad * (hi - lo)..hi + pad * (hi - lo),
    };
    let (x, y) = (span(x, 0.0), span(y, 0.05));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y.clone())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .label_style(("sans-serif", 12))
        .draw()?;
    for &(name, color, ref points) in series {
        let finite_points = points.iter().copied().filter(|(_, y)| y.is_finite());
        chart
            .draw_series(LineSeries::new(finite_points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    if let Some(step) = knee {
        chart
            .draw_series(LineSeries::new([(step as f64, y.start), (step as f64, y.end)], RED.stroke_width(2)))?
            .label(format!("knee: step {step}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> LogColumns {
        LogColumns { losses: vec!["loss_mse".into(), "loss_lpips".into()], metric: "val_lpips".into() }
    }

    fn row(step: u64) -> LogRow {
        let metric = step.is_multiple_of(20).then_some(0.5 / step as f64);
        LogRow { step, lr: 1e-4 / step as f64, losses: vec![1.0 / step as f64, 0.3], metric, steps_per_s: 2.25 }
    }

    fn write(path: &Path, steps: impl IntoIterator<Item = u64>) {
        let mut log = LogWriter::create(path, columns()).unwrap();
        steps.into_iter().for_each(|step| log.append(&row(step)).unwrap());
    }

    #[test]
    fn rows_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let mut log = LogWriter::create(&path, columns()).unwrap();
        let rows: Vec<LogRow> = (1..=5).map(|i| row(i * 10)).collect();
        rows.iter().for_each(|r| log.append(r).unwrap());
        let read = TrainingLog::read(&path).unwrap();
        assert_eq!(read, TrainingLog { columns: columns(), rows });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("step,lr,loss_mse,loss_lpips,val_lpips,steps_per_s\n10,1e-5,0.1,0.3,,2.25\n"),
            "{text}"
        );
        // A diverged loss is logged and read back as NaN.
        log.append(&LogRow { losses: vec![f64::NAN, f64::INFINITY], ..row(60) }).unwrap();
        let last = TrainingLog::read(&path).unwrap().rows.pop().unwrap();
        assert!(last.losses[0].is_nan() && last.losses[1] == f64::INFINITY);
    }

    #[test]
    fn resume_drops_the_rows_after_the_resumed_step() {
        let dir = tempfile::tempdir().unwrap();
        let (path, fresh) = (dir.path().join("log.csv"), dir.path().join("fresh.csv"));
        write(&path, (1..=10).map(|i| i * 10));
        let mut log = LogWriter::resume(&path, columns(), 55).unwrap();
        assert_eq!(TrainingLog::read(&path).unwrap().rows.last().map(|r| r.step), Some(50));
        let again = log.append(&row(50)).unwrap_err();
        assert!(matches!(again, LogError::StepNotIncreasing { step: 50, last: 50 }), "{again}");
        (6..=7).for_each(|i| log.append(&row(i * 10)).unwrap());
        // Byte for byte what an uninterrupted run writes.
        write(&fresh, (1..=7).map(|i| i * 10));
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&fresh).unwrap());
        // Resuming before the first row keeps the header only.
        LogWriter::resume(&path, columns(), 0).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "step,lr,loss_mse,loss_lpips,val_lpips,steps_per_s\n");
    }

    #[test]
    fn a_torn_last_line_is_invisible_and_dropped_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        write(&path, [10, 20]);
        let whole = std::fs::read(&path).unwrap();
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"30,1e-5,0.0").unwrap();
        assert_eq!(TrainingLog::read(&path).unwrap().rows.len(), 2);
        let mut log = LogWriter::resume(&path, columns(), 100).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        log.append(&row(30)).unwrap();
        assert_eq!(TrainingLog::read(&path).unwrap().rows.len(), 3);
    }

    #[test]
    fn a_malformed_row_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        write(&path, [10, 20]);
        OpenOptions::new().append(true).open(&path).unwrap().write_all(b"30,fast,0.1,0.3,,2.0\n").unwrap();
        let error = TrainingLog::read(&path).unwrap_err();
        assert!(error.to_string().contains("line 4: `fast`"), "{error}");
        assert!(LogWriter::resume(&path, columns(), 20).is_err(), "resume refuses to truncate what it cannot read");
    }

    #[test]
    fn resume_starts_a_missing_log_and_refuses_other_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        LogWriter::resume(&path, columns(), 100).unwrap().append(&row(110)).unwrap();
        assert_eq!(TrainingLog::read(&path).unwrap().rows, [row(110)]);
        let other = LogColumns { losses: vec!["loss_mse".into()], metric: "val_psnr".into() };
        let refused = LogWriter::resume(&path, other, 100).unwrap_err();
        assert!(refused.to_string().contains("this run logs `step,lr,loss_mse,val_psnr,steps_per_s`"), "{refused}");
        assert_eq!(TrainingLog::read(&path).unwrap().rows.len(), 1, "a refused resume truncates nothing");
    }

    #[test]
    fn create_refuses_an_existing_log_and_bad_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        write(&path, [10]);
        assert!(matches!(LogWriter::create(&path, columns()), Err(LogError::Exists { .. })));
        let clash = LogColumns { losses: vec!["lr".into()], metric: "val".into() };
        assert!(matches!(LogWriter::create(&dir.path().join("b.csv"), clash), Err(LogError::BadColumns { .. })));
        let mut log = LogWriter::create(&dir.path().join("c.csv"), columns()).unwrap();
        let short = log.append(&LogRow { losses: vec![0.1], ..row(10) }).unwrap_err();
        assert_eq!(short.to_string(), "log row for step 10 has 1 loss terms, the log has 2");
    }

    #[test]
    fn plot_renders_a_png_of_the_asked_size_with_the_knee_below() {
        let dir = tempfile::tempdir().unwrap();
        let (csv, png) = (dir.path().join("log.csv"), dir.path().join("log.png"));
        write(&csv, (1..=100).map(|i| i * 10));
        let log = TrainingLog::read(&csv).unwrap();
        let red_rows = |knee| {
            log.plot(&png, knee, (640, 480)).unwrap();
            let image = image::open(&png).unwrap().to_rgb8();
            assert_eq!(image.dimensions(), (640, 480));
            let mut rows: Vec<u32> =
                image.enumerate_pixels().filter(|(_, _, p)| p.0 == [255, 0, 0]).map(|(_, y, _)| y).collect();
            rows.dedup();
            (image, rows)
        };
        let (image, red) = red_rows(Some(400));
        assert!(!red.is_empty() && red.iter().all(|&y| y >= 240), "the knee is marked in the lower panel only");
        let blue = image.enumerate_pixels().filter(|(_, y, p)| *y >= 240 && p.0 == [0, 0, 255]).count();
        assert!(blue > 100, "the metric curve is drawn ({blue} pixels)");
        let loss_colour = Palette99::pick(0).to_rgba().rgb();
        let loss = image.enumerate_pixels().filter(|(_, y, p)| *y < 240 && p.0 == <[u8; 3]>::from(loss_colour)).count();
        assert!(loss > 100, "the first loss curve is drawn above ({loss} pixels)");
        assert!(red_rows(None).1.is_empty(), "no knee, no red");
    }
}
