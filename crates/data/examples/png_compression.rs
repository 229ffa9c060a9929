//! Times the `png` crate's compression levels on an image, as `write_image` encodes a PNG (8 bits, adaptive
//! filter), and prints each one's encoding time (best of 5) and file size:
//!
//!     cargo run --release -p sana-sr-data --example png_compression -- upscaled.png
//!
//! The measurement behind the level `write_image` uses (docs/decisions.md, "PNG output: fast deflate").

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: png_compression IMAGE")?;
    // The 8-bit samples as stored: what `write_image` encodes for an 8-bit RGB(A) output.
    let image = image::open(&path)?;
    let (width, height) = (image.width(), image.height());
    let (color, samples) = match image.color().has_alpha() {
        true => (png::ColorType::Rgba, image.into_rgba8().into_raw()),
        false => (png::ColorType::Rgb, image.into_rgb8().into_raw()),
    };
    println!("{path}: {width}x{height}, {color:?}");
    println!("| compression | seconds (best of 5) | MB |");
    println!("|---|---|---|");
    let levels =
        [("Fast", png::Compression::Fast), ("Balanced", png::Compression::Balanced), ("High", png::Compression::High)];
    for (name, level) in levels {
        let mut best = f64::INFINITY;
        let mut size = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let mut file = Vec::new();
            let mut encoder = png::Encoder::new(&mut file, width, height);
            encoder.set_color(color);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(level);
            encoder.set_filter(png::Filter::Adaptive);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(&samples)?;
            writer.finish()?;
            best = best.min(started.elapsed().as_secs_f64());
            size = file.len();
        }
        println!("| {name} | {best:.3} | {:.2} |", size as f64 / 1e6);
    }
    Ok(())
}
