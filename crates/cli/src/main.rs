//! `sana-sr`: one-step diffusion super-resolution for real-world photos. A thin layer over the library
//! crates; each subcommand lives in `commands/`.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sana-sr", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The largest image, in pixels, any command reads or makes (an upscale's output included): larger ones
    /// are refused from their header or their size, before memory is spent on them.
    #[arg(long, global = true, value_name = "N", default_value_t = sana_sr_data::io::DEFAULT_MAX_PIXELS,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_pixels: u64,
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
    /// Prune a SANA-SR model (DiT blocks, heads, channels; DC-AE blocks, channels) to a budget of parameters or MACs.
    Prune(commands::prune::Args),
    /// Serve an HTTP API and a web page that upscale photos, with the model loaded once and a bounded queue.
    Serve(commands::serve::Args),
}

fn main() -> std::process::ExitCode {
    sana_sr_core::allocator::reuse_freed_memory();
    if let Err(err) = sana_sr_core::interrupt::install() {
        eprintln!("warning: interrupts will not clean up: {err}");
    }
    let cli = Cli::parse();
    sana_sr_data::io::set_max_pixels(cli.max_pixels);
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
        Command::Prune(args) => commands::prune::run(args),
        Command::Serve(args) => commands::serve::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", commands::one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command, as `--help` lists it, has a line saying what it does.
    #[test]
    fn every_option_says_what_it_does() {
        fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version") {
                    found.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &path, found);
            }
        }
        let mut found = Vec::new();
        undocumented(&super::Cli::command(), "", &mut found);
        assert!(found.is_empty(), "options without help: {found:?}");
    }
}
