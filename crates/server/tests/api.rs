//! The HTTP API end to end on loopback, with the built-in model on small images: a job from upload to
//! result, every kind of bad request and the status it gets, the token, cancelling, clients that go away,
//! and expiry.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{follow, form, png, png_header, start, submit, text, Events};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_becomes_a_job_whose_result_is_four_times_larger() {
    let server = start(|_| {}).await;
    let client = reqwest::Client::new();
    let models: Value = client.get(format!("{}/api/models", server.url)).send().await.unwrap().json().await.unwrap();
    let default = models["models"].as_array().unwrap().iter().find(|m| m["default"] == true).unwrap();
    assert_eq!(default["name"], "sana-sr-compact-pruned-gan-extrapolated");

    let response = submit(&client, &server.url, form(png(40, 30), "cat.png", &[("format", "webp")])).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let id = text(&response.json().await.unwrap(), "id");
    assert_eq!(id.len(), 32);
    assert_eq!(location, format!("/api/jobs/{id}"));

    let snapshots = follow(&client, &server.url, &id, LIMIT).await;
    let last = snapshots.last().unwrap();
    assert_eq!(last["state"], "done", "{last}");
    assert!(snapshots.iter().all(|s| s["progress"]["done"].as_u64() <= s["progress"]["total"].as_u64()));
    assert_eq!(last["progress"]["done"], last["progress"]["total"]);
    assert!(last["progress"]["total"].as_u64().unwrap() >= 3, "one tile per stage at least: {last}");
    assert!(last["timings"]["running_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!((last["output"]["width"].as_u64(), last["output"]["height"].as_u64()), (Some(160), Some(120)));

    let polled: Value = client.get(format!("{}/api/jobs/{id}", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(polled["state"], "done");
    let result = client.get(format!("{}{}", server.url, text(last, "result"))).send().await.unwrap();
    assert_eq!(result.status(), 200);
    assert_eq!(result.headers()["content-type"], "image/webp");
    assert_eq!(result.headers()["content-disposition"], "attachment; filename=\"cat_x4.webp\"");
    let image = image::load_from_memory(&result.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (160, 120));

    let metrics = client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sana_sr_jobs_total{outcome=\"done\"} 1"), "{metrics}");
    assert!(metrics.contains("sana_sr_queue_length 0"), "{metrics}");
    assert!(metrics.contains("sana_sr_seconds_per_megapixel_count 1"), "{metrics}");

    // Deleting a finished job forgets it and removes its result.
    assert_eq!(client.delete(format!("{}/api/jobs/{id}", server.url)).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/api/jobs/{id}", server.url)).send().await.unwrap().status(), 404);
    assert!(server.files_gone_within(Duration::from_secs(10)).await, "{:?}", server.files());
    let report = server.stop().await;
    assert!(report.jobs.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_with_alpha_becomes_a_jpeg_marked_as_upscale_marks_its_outputs() {
    let server = start(|_| {}).await;
    let client = reqwest::Client::new();
    let glass = image::RgbaImage::from_fn(24, 16, |x, y| image::Rgba([x as u8 * 10, y as u8 * 15, 99, 128]));
    let mut bytes = Vec::new();
    glass.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    let response = submit(&client, &server.url, form(bytes, "glass.png", &[("format", "jpg")])).await;
    assert_eq!(response.status(), 202);
    let id = text(&response.json().await.unwrap(), "id");
    let last = follow(&client, &server.url, &id, LIMIT).await.pop().unwrap();
    assert_eq!(last["state"], "done", "{last}");

    let result = client.get(format!("{}{}", server.url, text(&last, "result"))).send().await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("glass_x4.jpg");
    std::fs::write(&path, result.bytes().await.unwrap()).unwrap();
    let software = sana_sr_data::io::read_metadata(&path).unwrap().software();
    assert_eq!(software, Some(sana_sr_data::metadata::software_marker(4, "sana-sr-compact-pruned-gan-extrapolated")));
    server.stop().await;
}

/// The status and error of a form-less request with `content_type` and `body`.
async fn raw_post(client: &reqwest::Client, url: &str, content_type: &str, body: &'static [u8]) -> (u16, String) {
    let response =
        client.post(format!("{url}/api/jobs")).header("content-type", content_type).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    (status, text(&body, "error"))
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_status_that_names_the_problem() {
    let server = start(|config| config.max_upload_bytes = 100_000).await;
    let (client, url) = (reqwest::Client::new(), server.url.clone());
    let error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, text(&body, "error"))
    };
    let check = |(status, message): (u16, String), want: u16, says: &str| {
        assert_eq!(status, want, "{message}");
        assert!(message.contains(says), "`{message}` does not say `{says}`");
    };

    // 400: no form, an empty body, a broken form, no image.
    check(raw_post(&client, &url, "text/plain", b"hello").await, 400, "multipart");
    check(raw_post(&client, &url, "multipart/form-data; boundary=X", b"").await, 400, "cannot read the form");
    check(raw_post(&client, &url, "multipart/form-data; boundary=X", b"--X\r\nContent-Disp").await, 400, "form");
    let no_image = reqwest::multipart::Form::new().text("scale", "4");
    check(error(submit(&client, &url, no_image).await).await, 400, "no file in field `image`");
    let unknown = form(png(8, 8), "a.png", &[("colour", "red")]);
    check(error(submit(&client, &url, unknown).await).await, 400, "unknown field `colour`");
    check(error(submit(&client, &url, form(vec![], "empty.png", &[])).await).await, 400, "empty");

    // 413: the upload, the header's pixel count, the output's.
    check(error(submit(&client, &url, form(vec![0; 200_000], "big.png", &[])).await).await, 413, "limit");
    let bomb = form(png_header(30_000, 30_000), "bomb.png", &[]);
    check(error(submit(&client, &url, bomb).await).await, 413, "30000x30000");
    let wide = form(png_header(6000, 5000), "wide.png", &[]);
    check(error(submit(&client, &url, wide).await).await, 413, "24000x20000");

    // 415: not an image, a truncated JPEG.
    check(error(submit(&client, &url, form(b"just text".to_vec(), "notes.png", &[])).await).await, 415, "notes.png");
    let mut cut = jpeg(64, 48);
    cut.truncate(cut.len() * 2 / 3);
    check(error(submit(&client, &url, form(cut, "cut.jpg", &[])).await).await, 415, "truncated");

    // 422: options the model or the server does not take.
    for (option, says) in [
        (("scale", "3"), "scale 3 is not supported"),
        (("scale", "four"), "not a whole number"),
        (("tile", "8"), "tile size 8 is too small"),
        (("tile", "4096"), "over this server's largest"),
        (("format", "gif"), "format `gif`"),
        (("model", "../../etc/passwd"), "no model named"),
    ] {
        check(error(submit(&client, &url, form(png(8, 8), "a.png", &[option])).await).await, 422, says);
    }

    // 404: unknown and malformed ids; 409: a result that is not there.
    for id in ["0123456789abcdef0123456789abcdef", "..%2F..%2Fetc", "x"] {
        check(error(client.get(format!("{url}/api/jobs/{id}")).send().await.unwrap()).await, 404, "no job");
        check(error(client.delete(format!("{url}/api/jobs/{id}")).send().await.unwrap()).await, 404, "no job");
    }
    let response = submit(&client, &url, form(png(8, 8), "a.png", &[])).await;
    let id = text(&response.json().await.unwrap(), "id");
    let early = client.get(format!("{url}/api/jobs/{id}/result")).send().await.unwrap();
    if early.status() != 200 {
        check(error(early).await, 409, "has no result");
    }
    follow(&client, &url, &id, LIMIT).await;

    // None of it hurt the server, and no upload was kept.
    assert_eq!(client.get(format!("{url}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(server.state.jobs.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_api_route_but_not_the_page_or_health() {
    let server = start(|config| config.token = Some("s3cret".into())).await;
    let (client, url) = (reqwest::Client::new(), server.url.clone());
    let routes = ["/api/models", "/metrics", "/api/jobs/0123456789abcdef0123456789abcdef"];
    for route in routes {
        let response = client.get(format!("{url}{route}")).send().await.unwrap();
        assert_eq!(response.status(), 401, "{route}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let wrong = client.get(format!("{url}{route}")).bearer_auth("s3cre").send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{route}");
        let right = client.get(format!("{url}{route}")).bearer_auth("s3cret").send().await.unwrap();
        assert_ne!(right.status(), 401, "{route}");
    }
    let no_token =
        client.post(format!("{url}/api/jobs")).multipart(form(png(8, 8), "a.png", &[])).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    assert!(server.files().is_empty(), "an unauthorised upload was stored: {:?}", server.files());
    assert_eq!(client.get(format!("{url}/healthz")).send().await.unwrap().status(), 200);
    let page = client.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<input id=\"files\""));
    server.stop().await;
}

async fn next_event(events: &mut Events) -> Option<Value> {
    tokio::time::timeout(LIMIT, events.next()).await.expect("the events stalled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_while_it_runs_stops_and_leaves_no_job_or_file() {
    let server = start(|_| {}).await;
    let (client, url) = (reqwest::Client::new(), server.url.clone());
    // Many small tiles, so that the job is still running when the first one has reported.
    let response = submit(&client, &url, form(png(256, 192), "big.png", &[("tile", "128")])).await;
    assert_eq!(response.status(), 202);
    let id = text(&response.json().await.unwrap(), "id");
    let mut events = Events::open(&client, &url, &id).await;
    loop {
        let snapshot = next_event(&mut events).await.expect("the job ended before it was cancelled");
        assert_ne!(snapshot["state"], "done", "the job ended before it was cancelled");
        if snapshot["progress"]["done"].as_u64() >= Some(1) {
            break;
        }
    }
    let deleted: Value = client.delete(format!("{url}/api/jobs/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(deleted["error"], "cancelled", "{deleted}");
    // The stream ends with the job cancelled, well before its last tile.
    let mut last = Value::Null;
    while let Some(snapshot) = next_event(&mut events).await {
        last = snapshot;
    }
    assert_eq!(last["state"], "cancelled", "{last}");
    assert!(last["progress"]["done"].as_u64() < last["progress"]["total"].as_u64(), "{last}");
    assert_eq!(client.get(format!("{url}/api/jobs/{id}")).send().await.unwrap().status(), 404);
    assert!(server.files_gone_within(Duration::from_secs(10)).await, "{:?}", server.files());
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sana_sr_jobs_total{outcome=\"cancelled\"} 1"), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_upload_leaves_no_job_file_or_queue_place() {
    let server = start(|config| config.max_queue = 1).await;
    let address = server.url.trim_start_matches("http://").to_string();
    let body_start = "--X\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n";
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "POST /api/jobs HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary=X\r\n\
         Content-Length: 1000000\r\n\r\n{body_start}"
    )
    .unwrap();
    stream.write_all(&png(64, 64)[..500]).unwrap();
    stream.flush().unwrap();
    // The upload's file exists while the client is there...
    let started = std::time::Instant::now();
    while server.files().is_empty() {
        assert!(started.elapsed() < LIMIT, "the upload never reached the disk");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.state.queue.len(), 1);
    // The one place is taken: another client is refused at once, told when to come back.
    let client = reqwest::Client::new();
    let busy = submit(&client, &server.url, form(png(8, 8), "b.png", &[])).await;
    assert_eq!(busy.status(), 429);
    assert!(busy.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(busy.text().await.unwrap().contains("the queue is full"));
    drop(stream);
    // ...and goes with it, with its place in the queue.
    assert!(server.files_gone_within(Duration::from_secs(10)).await, "{:?}", server.files());
    let started = std::time::Instant::now();
    while !server.state.queue.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "the queue place was not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(server.state.jobs.is_empty());
    let response = submit(&client, &server.url, form(png(8, 8), "a.png", &[])).await;
    assert_eq!(response.status(), 202, "the queue's one place is free again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_expire_and_their_files_are_deleted() {
    let server = start(|config| config.keep_results = Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    let response = submit(&client, &server.url, form(png(8, 8), "a.png", &[])).await;
    let id = text(&response.json().await.unwrap(), "id");
    assert_eq!(follow(&client, &server.url, &id, LIMIT).await.last().unwrap()["state"], "done");
    assert_eq!(server.files().len(), 1, "the result waits in the server's folder");
    // Expiry runs every second at most.
    assert!(server.files_gone_within(Duration::from_secs(5)).await, "{:?}", server.files());
    assert_eq!(client.get(format!("{}/api/jobs/{id}", server.url)).send().await.unwrap().status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_stopping_new_jobs_get_503_and_health_says_so() {
    let server = start(|_| {}).await;
    let client = reqwest::Client::new();
    server.state.stopping.cancel();
    let response = submit(&client, &server.url, form(png(8, 8), "a.png", &[])).await;
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("shutting down"));
    assert_eq!(client.get(format!("{}/healthz", server.url)).send().await.unwrap().status(), 503);
    server.stop().await;
}
