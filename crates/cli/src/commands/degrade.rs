//! `sana-sr degrade`: a picture of the Real-ESRGAN degradation, rows of HR crops each followed by their LR
//! images (nearest-upscaled) for several seeds. docs/degradations.png is made with
//! `sana-sr degrade --input ../shared/datasets/SunHays80 --name building_facade_sun_bpaohzcfkhzodryb.jpg
//! --name street_sun_bkgpqbvgorkjqzgp.jpg --name forest_path_sun_amolizervsrahvyf.jpg -o docs/degradations.png`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use sana_sr_data::degradations::preview::{grid_size, preview_grid};
use sana_sr_data::degradations::{Degradation, RealEsrganConfig};
use sana_sr_data::io::{read_image, write_image, Encoding, WriteOptions};
use sana_sr_data::loader::pool_paths;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of HR images; the first --images of them by name are used, unless --name picks them.
    #[arg(long)]
    input: PathBuf,
    /// File names in --input to show, in this order (repeatable).
    #[arg(long = "name")]
    names: Vec<String>,
    /// The picture to write; its extension gives the format (.png, .jpg, .webp, .tiff, .bmp).
    #[arg(short, long)]
    output: PathBuf,
    /// Degradation config (TOML); default: the Real-ESRGAN x4plus settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// How many images (rows).
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    images: usize,
    /// How many seeds (LR columns); seeds are --seed, --seed + 1, ...
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    seeds: u64,
    /// The first seed: the same seeds, images and config give the same picture.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Side of the centre HR crop.
    #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(16..=4096))]
    crop: usize,
    /// Replace --output if it exists.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args) -> Result<()> {
    // Checked before the work: a name that cannot be written costs nothing.
    let encoding = Encoding::for_path(&args.output)?;
    if args.output.exists() && !args.overwrite {
        bail!("{} exists already (pass --overwrite to replace it)", args.output.display());
    }
    let config = match &args.config {
        Some(path) => RealEsrganConfig::from_toml_file(path)?,
        None => RealEsrganConfig::default(),
    };
    let degradation = Degradation::new(config)?;
    let paths = if args.names.is_empty() {
        pool_paths(&args.input)?.into_iter().take(args.images).collect()
    } else {
        args.names.iter().map(|name| args.input.join(name)).collect::<Vec<_>>()
    };
    if paths.is_empty() {
        bail!("no images in `{}` ({})", args.input.display(), sana_sr_data::io::READ_FORMATS);
    }
    // The picture's size is known before any image is read or degraded.
    let (width, height) = grid_size(paths.len(), args.seeds as usize, args.crop);
    let limit = sana_sr_data::io::max_pixels();
    if width.saturating_mul(height) > limit {
        bail!(
            "the picture would be {width}x{height}, over the limit of {limit} pixels (--max-pixels raises it; or \
             fewer --seeds or --images, a smaller --crop)"
        );
    }
    let images = paths.iter().map(read_image).collect::<Result<Vec<_>, _>>()?;
    let end = args.seed.checked_add(args.seeds).with_context(|| {
        format!("--seed {} plus --seeds {} is past the largest seed ({})", args.seed, args.seeds, u64::MAX)
    })?;
    let seeds: Vec<u64> = (args.seed..end).collect();
    let grid = preview_grid(&images, &degradation, &seeds, args.crop).context("degrading the preview crops")?;
    let options = WriteOptions { encoding, overwrite: args.overwrite };
    write_image(&grid, &args.output, &options)?;
    println!("wrote {} ({} images x {} seeds)", args.output.display(), images.len(), seeds.len());
    Ok(())
}
