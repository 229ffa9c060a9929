//! `sana-sr serve`: the HTTP service and its web page ([`sana_sr_server`]), until SIGINT or SIGTERM.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::Context;
use sana_sr_core::precision::Precision;
use sana_sr_pipeline::registry::{ModelSource, DEFAULT_MODEL};
use sana_sr_server::{CancellationToken, Config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on; the default answers this machine only.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model a job runs when it names none: a built-in name, a name in the models folder, or a file.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// `auto` (the first GPU, else the CPU), `cpu`, `cuda`, `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// What the networks compute in, as `upscale --precision`.
    #[arg(long, default_value = "auto", value_parser = super::precision_arg)]
    precision: Precision,
    /// Jobs run at once (default: one, the device's).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    workers: u64,
    /// Jobs that may wait for a worker; more get 429.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    max_queue: u64,
    /// The largest upload, in MiB; larger ones get 413.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    max_upload_mb: u64,
    /// Require `Authorization: Bearer TOKEN` on every API route.
    #[arg(long)]
    token: Option<String>,
    /// Seconds a finished job's result is kept before it is deleted.
    #[arg(long, default_value_t = 3600)]
    keep_results: u64,
    /// Seconds running jobs may take to finish after SIGINT or SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = ModelSource::resolve(&args.model)?;
    let mut config = Config::new(model, super::device_arg(&args.device)?);
    config.precision = args.precision;
    config.workers = args.workers as usize;
    config.max_queue = args.max_queue as usize;
    config.max_upload_bytes = args.max_upload_mb << 20;
    config.token = args.token.filter(|t| !t.is_empty());
    config.keep_results = Duration::from_secs(args.keep_results);
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace);

    let address = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let grace = args.shutdown_grace;
    sana_sr_core::interrupt::on_next_interrupt(move |signal| {
        eprintln!(
            "{signal}: shutting down: no new jobs; running ones have {grace} s to finish (again to stop at once)"
        );
        stop.cancel();
    });
    let report = sana_sr_server::serve_blocking(config, listener, shutdown, |address| {
        // The first line of stdout, for scripts that start the server on port 0.
        println!("listening on http://{address}");
    })?;
    for (id, state) in &report.jobs {
        eprintln!("job {id}: {state}");
    }
    eprintln!("stopped; {}", report.summary());
    Ok(())
}
