//! `sana-sr`: one-step diffusion super-resolution for real-world photos. A thin layer over the library
//! crates; each subcommand lives in `commands/`.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sana-sr", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Upscale photos: sharp images 4x larger, from files, folders or glob patterns.
    Upscale(commands::upscale::Args),
    /// List the built-in models and those in the models folder.
    Models(commands::models::Args),
    /// Train or fine-tune a model (full or LoRA) from a TOML config; resumable.
    Train(commands::train::Args),
    /// LoRA adapters: merge them into their base model.
    Lora(commands::lora::Args),
    /// Time the real model configs (random weights) on the paper's shapes.
    Bench(commands::bench::Args),
    /// Write a picture of HR crops beside the LR images the degradation pipeline makes from them.
    Degrade(commands::degrade::Args),
    /// Prepare training data (the HR pool).
    Data(commands::data::Args),
    /// Score methods (bicubic, other tools' outputs) on the x4 benchmark sets: PSNR-Y, SSIM-Y, NIQE, speed.
    Eval(commands::eval::Args),
    /// Count what one upscale costs: parameters per network, MACs per stage and DiT block.
    Inspect(commands::inspect::Args),
}

fn main() -> std::process::ExitCode {
    sana_sr_core::allocator::reuse_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Upscale(args) => commands::upscale::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Lora(args) => commands::lora::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Degrade(args) => commands::degrade::run(args),
        Command::Data(args) => commands::data::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", commands::one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
