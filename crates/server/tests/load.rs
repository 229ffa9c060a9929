//! The service under load and faults, on loopback, with the built-in model on tiny photos: 50 concurrent
//! uploads against a queue of 8 and one worker, then hostile requests, then SIGTERM in the middle of a
//! burst. Bounded in count and time; nothing here depends on how fast the machine is, only on every request
//! ending. Without the test harness (`harness = false`): the signal handling is installed by the main thread
//! before any other thread exists, as `sana-sr`'s `main` does, and the test sends itself SIGTERM.
//!
//! Prints the figures docs/benchmarks.md records: `cargo test --release -p sana-sr-server --test load`.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{follow, form, png, png_header, start, submit, text, Events};
use futures_util::future::join_all;
use serde_json::Value;

/// No request may take longer: a hang fails the test rather than stalling it.
const LIMIT: Duration = Duration::from_secs(300);

/// Peak resident memory of this whole process (libtorch, the model, the server and its 50 clients), 180 MiB
/// as measured (docs/benchmarks.md); the bound leaves room for other CPUs' kernels and allocators. On 32x32
/// photos it catches what grows with the number of requests (buffered uploads, jobs decoded at once, more
/// than one backend at work), not image sizes, which the header checks bound.
const PEAK_RSS_MIB: f64 = 512.0;

fn main() {
    sana_sr_core::interrupt::install().expect("the signal handling installs");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(fifty_concurrent_uploads_each_get_a_result_or_429_and_hostile_requests_get_their_4xx());
    println!("test fifty_concurrent_uploads_each_get_a_result_or_429_and_hostile_requests_get_their_4xx ... ok");
    runtime.block_on(sigterm_during_a_burst_ends_every_accepted_job_finished_or_cancelled());
    println!("test sigterm_during_a_burst_ends_every_accepted_job_finished_or_cancelled ... ok");
}

#[derive(Debug)]
enum Outcome {
    Done,
    Rejected,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn fifty_concurrent_uploads_each_get_a_result_or_429_and_hostile_requests_get_their_4xx() {
    let server = start(|config| {
        config.max_queue = 8;
        config.workers = 1;
    })
    .await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let requests = (0..50).map(|i| {
        let (client, url) = (client.clone(), server.url.clone());
        async move {
            let began = Instant::now();
            let work = async {
                let response = submit(&client, &url, form(png(32, 32), &format!("p{i}.png"), &[])).await;
                match response.status().as_u16() {
                    429 => {
                        let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                        assert!((1..=60).contains(&retry), "Retry-After {retry}");
                        Outcome::Rejected
                    }
                    202 => {
                        let id = text(&response.json().await.unwrap(), "id");
                        let last = follow(&client, &url, &id, LIMIT).await.pop().unwrap();
                        assert_eq!(last["state"], "done", "{last}");
                        let bytes = client.get(format!("{url}{}", text(&last, "result"))).send().await.unwrap();
                        let image = image::load_from_memory(&bytes.bytes().await.unwrap()).unwrap();
                        assert_eq!((image.width(), image.height()), (128, 128));
                        Outcome::Done
                    }
                    status => panic!("request {i}: {status} {}", response.text().await.unwrap()),
                }
            };
            let outcome = tokio::time::timeout(LIMIT, work).await.unwrap_or_else(|_| panic!("request {i} hung"));
            (outcome, began.elapsed())
        }
    });
    let results = join_all(requests).await;
    let wall = started.elapsed();
    let done = results.iter().filter(|(o, _)| matches!(o, Outcome::Done)).count();
    let rejected = results.len() - done;
    // The first 8 places are taken before any can be given back, and every accepted job ends done.
    assert!(done >= 8, "{done} done, {rejected} rejected");
    let mut latencies: Vec<Duration> = results.iter().map(|(_, t)| *t).collect();
    latencies.sort();
    let (p50, p95) = (percentile(&latencies, 0.5), percentile(&latencies, 0.95));
    let queue_ms = |outcome: fn(&Outcome) -> bool| {
        let mut times: Vec<Duration> = results.iter().filter(|(o, _)| outcome(o)).map(|(_, t)| *t).collect();
        times.sort();
        times
    };
    let done_times = queue_ms(|o| matches!(o, Outcome::Done));
    let rejected_times = queue_ms(|o| matches!(o, Outcome::Rejected));
    println!(
        "load: 50 uploads of 32x32 PNGs, --max-queue 8 --workers 1: {done} done, {rejected} rejected (429) in {:.2} s; \
         latency p50 {} ms, p95 {} ms (done: p50 {} ms, p95 {} ms; 429: p50 {} ms, p95 {} ms)",
        wall.as_secs_f64(),
        p50.as_millis(),
        p95.as_millis(),
        done_times.first().map_or(0, |_| percentile(&done_times, 0.5).as_millis()),
        done_times.first().map_or(0, |_| percentile(&done_times, 0.95).as_millis()),
        rejected_times.first().map_or(0, |_| percentile(&rejected_times, 0.5).as_millis()),
        rejected_times.first().map_or(0, |_| percentile(&rejected_times, 0.95).as_millis()),
    );

    // Hostile requests, the queue idle again: each gets its 4xx and the server stays up.
    let mut cut = Vec::new();
    image::RgbImage::from_pixel(64, 48, image::Rgb([90, 120, 200]))
        .write_to(&mut std::io::Cursor::new(&mut cut), image::ImageFormat::Jpeg)
        .unwrap();
    cut.truncate(cut.len() / 2);
    let raw = |content_type: &'static str, body: &'static [u8]| {
        client.post(format!("{}/api/jobs", server.url)).header("content-type", content_type).body(body).send()
    };
    let statuses = [
        (
            raw("multipart/form-data; boundary=B", b"--B\r\nContent-Disposition: form-data; name=\"image\"\r\n").await,
            400,
        ),
        (raw("multipart/form-data; boundary=B", b"").await, 400),
        (client.post(format!("{}/api/jobs", server.url)).send().await, 400),
        (submit(&client, &server.url, form(png_header(30_000, 30_000), "bomb.png", &[])).await.pipe_ok(), 413),
        (submit(&client, &server.url, form(cut, "cut.jpg", &[])).await.pipe_ok(), 415),
    ];
    for (i, (response, want)) in statuses.into_iter().enumerate() {
        let response = response.unwrap();
        assert_eq!(response.status().as_u16(), want, "hostile request {i}: {}", response.text().await.unwrap());
    }
    assert_eq!(client.get(format!("{}/healthz", server.url)).send().await.unwrap().status(), 200);
    let ok = submit(&client, &server.url, form(png(16, 16), "after.png", &[])).await;
    assert_eq!(ok.status(), 202, "the server still takes jobs");
    let id = text(&ok.json().await.unwrap(), "id");
    assert_eq!(follow(&client, &server.url, &id, LIMIT).await.last().unwrap()["state"], "done");

    let metrics = client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("sana_sr_jobs_total{{outcome=\"done\"}} {}", done + 1)), "{metrics}");
    if rejected > 0 {
        assert!(metrics.contains(&format!("sana_sr_jobs_total{{outcome=\"rejected\"}} {rejected}")), "{metrics}");
    }
    let peak = common::peak_rss_mib();
    println!("load: peak RSS of the test process (server, model, clients) {peak:.0} MiB");
    assert!(peak < PEAK_RSS_MIB, "peak RSS {peak:.0} MiB over the bound of {PEAK_RSS_MIB} MiB");
    server.stop().await;
}

/// `Result::Ok`, so that submitted forms and raw requests fit in one list.
trait PipeOk: Sized {
    fn pipe_ok(self) -> reqwest::Result<Self> {
        Ok(self)
    }
}
impl PipeOk for reqwest::Response {}

async fn sigterm_during_a_burst_ends_every_accepted_job_finished_or_cancelled() {
    let server = start(|config| {
        config.max_queue = 8;
        config.workers = 1;
        config.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let stop = server.shutdown.clone();
    sana_sr_core::interrupt::on_next_interrupt(move |_| stop.cancel());
    let client = reqwest::Client::new();
    // Photos of many tiles, so that jobs are still queued and running when the signal comes.
    let submits =
        (0..12).map(|i| submit(&client, &server.url, form(png(96, 96), &format!("s{i}.png"), &[("tile", "128")])));
    let mut accepted = Vec::new();
    for response in join_all(submits).await {
        match response.status().as_u16() {
            202 => accepted.push(text(&response.json().await.unwrap(), "id")),
            429 => {}
            status => panic!("{status}: {}", response.text().await.unwrap()),
        }
    }
    assert!(accepted.len() >= 8, "{accepted:?}");
    // Every client follows its job, its stream open before the signal (afterwards no connection is accepted).
    let mut streams = Vec::new();
    for id in &accepted {
        streams.push(Events::open(&client, &server.url, id).await);
    }
    let followers: Vec<_> = streams
        .into_iter()
        .map(|mut events| {
            tokio::spawn(async move {
                let mut last = Value::Null;
                while let Some(snapshot) = tokio::time::timeout(LIMIT, events.next()).await.expect("the events stalled")
                {
                    last = snapshot;
                }
                last
            })
        })
        .collect();
    // SAFETY: sends this process SIGTERM, which the interrupt thread takes and hands to the handler above.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    let folder = server.state.files.path().to_path_buf();
    let report = tokio::time::timeout(LIMIT, server.task).await.expect("the shutdown hung").unwrap().unwrap();
    let finals: Vec<Value> = join_all(followers).await.into_iter().map(Result::unwrap).collect();

    let reported: HashMap<String, sana_sr_server::jobs::State> =
        report.jobs.iter().map(|(id, state)| (id.to_string(), *state)).collect();
    use sana_sr_server::jobs::State;
    for (id, last) in accepted.iter().zip(&finals) {
        let state = reported.get(id).unwrap_or_else(|| panic!("job {id} is not in the report {report:?}"));
        assert!(matches!(state, State::Done | State::Cancelled), "job {id} ended {state:?}");
        assert_eq!(last["state"], serde_json::to_value(state).unwrap(), "what the client saw: {last}");
        if *state == State::Cancelled {
            assert_eq!(last["error"], sana_sr_server::jobs::SHUTTING_DOWN, "{last}");
        }
    }
    println!("load: SIGTERM during a burst of 12 (96x96, 1 s grace): {}", report.summary());
    drop(server.state);
    assert!(!folder.exists(), "the server's folder outlived it: {}", folder.display());
}
