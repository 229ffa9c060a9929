//! Training pairs streamed from a pool of HR images: random crop, flips, Real-ESRGAN degradation, in worker
//! threads, batched.
//!
//! Pair `i` is a pure function of (`seed`, `i`): its image comes from a per-epoch shuffle of the pool and
//! every other choice from [`pair_rng`]`(seed, i)`. Worker `w` of `n` makes pairs `w, w + n, w + 2n, …`
//! and the consumer takes them round-robin, so batches arrive in index order and are identical for any
//! worker count and any timing.
//!
//! Like OSEDiff's loader, the HR crop is taken first and degraded whole (Real-ESRGAN degrades a 400 px
//! crop, then crops the pair again); the pair distribution is the same, and no work is spent on pixels that
//! get cropped away.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sana_sr_core::{Device, Tensor};

use crate::degradations::pipeline::pair_rng;
use crate::degradations::{Degradation, DegradeError};
use crate::io::{has_image_extension, image_size, read_image, IoError};
use crate::tensor::to_tensor;
use crate::Image;

#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// HR crop side (`gt_size`); must be a multiple of the degradation's scale.
    pub gt_size: usize,
    pub batch_size: usize,
    /// Random horizontal flips (`use_hflip`).
    pub use_hflip: bool,
    /// Random vertical flips and transposes, i.e. all 8 dihedral orientations with the flip (`use_rot`).
    pub use_rot: bool,
    pub num_workers: usize,
    /// Pairs each worker may hold ready.
    pub prefetch: usize,
    pub seed: u64,
    /// Index of the first pair: a resumed training run starts where it stopped and sees the same pairs.
    pub start_index: u64,
    /// Crop positions drawn per pair, the most detailed kept (mean absolute difference between neighbouring
    /// pixels; SamplingAug's idea): 1 is the uniform crop of Real-ESRGAN, more favours texture and edges
    /// over the flat sky and walls that fill much of a photo, which teach an SR model little.
    pub crop_tries: usize,
    /// Where the batches are delivered.
    pub device: Device,
}

impl Default for LoaderConfig {
    /// The x4plus dataset options (`gt_size: 256`, `use_hflip: True`, `use_rot: False`).
    fn default() -> Self {
        Self {
            gt_size: 256,
            batch_size: 4,
            use_hflip: true,
            use_rot: false,
            num_workers: 2,
            prefetch: 4,
            seed: 0,
            start_index: 0,
            crop_tries: 1,
            device: Device::Cpu,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("the HR pool is empty")]
    EmptyPool,
    #[error("loader config: {0}")]
    Config(String),
    #[error(
        "pool image `{path}` is {width}x{height}, smaller than the {crop}x{crop} crop (or than the degradation needs)"
    )]
    TooSmall { path: PathBuf, width: u32, height: u32, crop: usize },
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("degrading a crop of `{path}`: {source}")]
    Degrade { path: PathBuf, source: DegradeError },
    #[error("a loader worker stopped unexpectedly")]
    WorkerGone,
    #[error("{path}: cannot read the photo's tags: {source}")]
    Tags { path: PathBuf, source: std::io::Error },
}

/// One batch: `hr` is `[B, 3, S, S]`, `lr` is `[B, 3, S / scale, S / scale]`, both in `[0, 1]`.
#[derive(Debug)]
pub struct Batch {
    pub hr: Tensor,
    pub lr: Tensor,
    /// The pair indices (`seed`, index) the batch holds.
    pub indices: Vec<u64>,
    /// Each pair's photo's tags ([`read_tags`]).
    pub tags: Vec<Option<String>>,
    /// Which pairs are clean (the HR's bicubic downscale, undegraded; the degradation's `clean_prob`).
    pub clean: Vec<bool>,
}

/// One training pair, `[1, 3, S, S]` and `[1, 3, S / scale, S / scale]`.
#[derive(Debug)]
pub struct Pair {
    pub hr: Tensor,
    pub lr: Tensor,
    pub tags: Option<String>,
    pub clean: bool,
}

/// The recipe of pair `index`: which file, which crop, which augmentation, which degradation.
struct PairMaker {
    paths: Vec<PathBuf>,
    degradation: Degradation,
    config: LoaderConfig,
}

impl PairMaker {
    /// The pool order of epoch `epoch` (one shuffle per epoch, from its own stream).
    fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ EPOCH_KEY);
        rng.set_stream(epoch);
        let mut order: Vec<usize> = (0..self.paths.len()).collect();
        order.shuffle(&mut rng);
        order
    }

    fn make(&self, index: u64, order: &[usize]) -> Result<Pair, LoaderError> {
        let path = &self.paths[order[(index % self.paths.len() as u64) as usize]];
        let image = read_image(path)?;
        let mut rng = pair_rng(self.config.seed, index);
        let s = self.config.gt_size;
        let crop = (0..self.config.crop_tries.max(1))
            .map(|_| {
                let (left, top) = (rng.gen_range(0..=image.width - s), rng.gen_range(0..=image.height - s));
                image.crop(left, top, s, s).expect("crop inside the checked image size").to_rgb()
            })
            .map(|crop| (detail(&crop), crop))
            .reduce(|best, next| if next.0 > best.0 { next } else { best })
            .map(|(_, crop)| crop)
            .expect("at least one try");
        let mut hr = to_tensor(&crop, Device::Cpu);
        // basicsr `augment`: hflip, vflip, then transpose, each with odds 1/2.
        if self.config.use_hflip && rng.gen::<f64>() < 0.5 {
            hr = hr.flip([3]);
        }
        if self.config.use_rot {
            if rng.gen::<f64>() < 0.5 {
                hr = hr.flip([2]);
            }
            if rng.gen::<f64>() < 0.5 {
                hr = hr.transpose(2, 3);
            }
        }
        let hr = hr.contiguous();
        let params = self.degradation.sample(&mut rng);
        let lr = self
            .degradation
            .apply(&hr, &params)
            .map_err(|source| LoaderError::Degrade { path: path.clone(), source })?;
        Ok(Pair { hr, lr, tags: read_tags(path)?, clean: params.clean })
    }
}

/// Mean absolute difference between horizontally and vertically neighbouring samples.
fn detail(image: &Image) -> f64 {
    let (w, h, c) = (image.width, image.height, image.channels);
    let at = |x: usize, y: usize, k: usize| image.data[(y * w + x) * c + k] as f64;
    let mut sum = 0.0;
    for y in 0..h {
        for x in 0..w {
            for k in 0..c {
                if x + 1 < w {
                    sum += (at(x + 1, y, k) - at(x, y, k)).abs();
                }
                if y + 1 < h {
                    sum += (at(x, y + 1, k) - at(x, y, k)).abs();
                }
            }
        }
    }
    sum / (2 * w * h * c).max(1) as f64
}

/// Key of the epoch-shuffle streams, so they never coincide with the pair streams of the same seed.
const EPOCH_KEY: u64 = 0x5eed_0fe9_0c00_0001;

/// An endless, deterministic stream of training batches; dropping it stops its workers.
pub struct Loader {
    receivers: Vec<Receiver<Result<Pair, LoaderError>>>,
    workers: Vec<JoinHandle<()>>,
    next_index: u64,
    config: LoaderConfig,
}

impl Loader {
    /// Starts the workers over the HR images `paths`, after checking (from their headers) that every image
    /// holds a crop.
    pub fn new(paths: Vec<PathBuf>, degradation: Degradation, config: LoaderConfig) -> Result<Self, LoaderError> {
        if paths.is_empty() {
            return Err(LoaderError::EmptyPool);
        }
        let scale = degradation.config().scale as usize;
        if config.gt_size == 0
            || !config.gt_size.is_multiple_of(scale)
            || config.batch_size == 0
            || config.num_workers == 0
        {
            return Err(LoaderError::Config(format!(
                "gt_size ({}) must be a positive multiple of the scale ({scale}); batch_size and num_workers positive",
                config.gt_size
            )));
        }
        let min_side = config.gt_size.max(degradation.min_hr_size() as usize);
        for path in &paths {
            let (width, height) = image_size(path)?;
            if (width as usize) < min_side || (height as usize) < min_side {
                return Err(LoaderError::TooSmall { path: path.clone(), width, height, crop: min_side });
            }
        }
        let maker = Arc::new(PairMaker { paths, degradation, config: config.clone() });
        let n = config.num_workers as u64;
        let (mut receivers, mut workers) = (Vec::new(), Vec::new());
        for w in 0..n {
            let (sender, receiver) = sync_channel(config.prefetch.max(1));
            let maker = Arc::clone(&maker);
            workers.push(std::thread::spawn(move || {
                let mut order = (u64::MAX, Vec::new());
                for index in (maker.config.start_index + w..).step_by(n as usize) {
                    let epoch = index / maker.paths.len() as u64;
                    if order.0 != epoch {
                        order = (epoch, maker.epoch_order(epoch));
                    }
                    if sender.send(maker.make(index, &order.1)).is_err() {
                        break; // the loader was dropped
                    }
                }
            }));
            receivers.push(receiver);
        }
        Ok(Self { receivers, workers, next_index: config.start_index, config })
    }

    fn next_pair(&mut self) -> Result<Pair, LoaderError> {
        let worker = (self.next_index - self.config.start_index) % self.receivers.len() as u64;
        let receiver = &self.receivers[worker as usize];
        self.next_index += 1;
        receiver.recv().map_err(|_| LoaderError::WorkerGone)?
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, LoaderError>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = self.next_index;
        let pairs: Result<Vec<Pair>, LoaderError> = (0..self.config.batch_size).map(|_| self.next_pair()).collect();
        Some(pairs.map(|pairs| {
            let hr: Vec<Tensor> = pairs.iter().map(|p| p.hr.shallow_clone()).collect();
            let lr: Vec<Tensor> = pairs.iter().map(|p| p.lr.shallow_clone()).collect();
            Batch {
                hr: Tensor::cat(&hr, 0).to_device(self.config.device),
                lr: Tensor::cat(&lr, 0).to_device(self.config.device),
                indices: (first..first + pairs.len() as u64).collect(),
                clean: pairs.iter().map(|p| p.clean).collect(),
                tags: pairs.into_iter().map(|p| p.tags).collect(),
            }
        }))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.receivers.clear(); // wakes every worker blocked on a full channel
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// The tags of a training photo, from the sidecar text file beside it with its stem (`photo.jpg`: `photo.txt`):
/// its lines, trimmed, blank ones dropped, joined by `, ` (so `building, sign, text` on one line, or one tag per
/// line); `None` without a sidecar or with an empty one. A model with a text encoder trains on the prompt of its
/// photos' tags; other models ignore them.
pub fn read_tags(photo: &Path) -> Result<Option<String>, LoaderError> {
    let sidecar = photo.with_extension("txt");
    let text = match std::fs::read_to_string(&sidecar) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LoaderError::Tags { path: sidecar, source }),
    };
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    Ok((!lines.is_empty()).then(|| lines.join(", ")))
}

/// The images of a pool folder (the extensions of [`crate::io::IMAGE_EXTENSIONS`]), sorted by name so the pool order,
/// and with it every pair, does not depend on the file system.
pub fn pool_paths(folder: impl AsRef<Path>) -> Result<Vec<PathBuf>, IoError> {
    let folder = folder.as_ref();
    let entries = std::fs::read_dir(folder).map_err(|source| IoError::Open { path: folder.into(), source })?;
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| has_image_extension(p)).collect();
    paths.sort();
    Ok(paths)
}
