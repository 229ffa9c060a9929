//! What the service's tests share: a server on a free loopback port with a folder of its own, test images,
//! and a client that submits forms and follows jobs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sana_sr_core::Device;
use sana_sr_pipeline::ModelSource;
use sana_sr_server::{serve, AppState, CancellationToken, Config, Report, ServeError};
use serde_json::Value;

pub struct TestServer {
    pub url: String,
    pub state: Arc<AppState>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<Report, ServeError>>,
    _dir: tempfile::TempDir,
}

/// The built-in model on the CPU, `configure`d, serving on 127.0.0.1.
pub async fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(ModelSource::default_model(), Device::Cpu);
    config.temp_dir = dir.path().to_path_buf();
    configure(&mut config);
    let state = tokio::task::spawn_blocking(|| AppState::new(config)).await.unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(state.clone(), listener, shutdown.clone()));
    TestServer { url, state, shutdown, task, _dir: dir }
}

impl TestServer {
    /// Files in the server's own folder (uploads, results).
    pub fn files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.files.path()).unwrap().map(|e| e.unwrap().path()).collect()
    }

    /// Waits up to `limit` for the server's folder to be empty, and says whether it is.
    pub async fn files_gone_within(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while !self.files().is_empty() {
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    pub async fn stop(self) -> Report {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap()
    }
}

/// A `width` x `height` RGB PNG (a smooth ramp with some texture).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, ((x * 7 + y * 13) % 256) as u8])
    });
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// The start of a PNG of `width` x `height` RGB pixels: its header and a first, cut-off data chunk, which is
/// all a decoder reads before it knows the size.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(kind);
        out.extend(data);
        out.extend(crc32fast::hash(&[&kind[..], data].concat()).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &[&width.to_be_bytes()[..], &height.to_be_bytes(), &[8, 2, 0, 0, 0]].concat());
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0, 0, 0, 0]);
    png
}

/// A form with `bytes` as the file `name` in field `image`, and the given option fields.
pub fn form(bytes: Vec<u8>, name: &str, options: &[(&str, &str)]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new()
        .part("image", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
    for (field, value) in options {
        form = form.text(field.to_string(), value.to_string());
    }
    form
}

pub async fn submit(client: &reqwest::Client, url: &str, form: reqwest::multipart::Form) -> reqwest::Response {
    client.post(format!("{url}/api/jobs")).multipart(form).send().await.unwrap()
}

/// A job's server-sent events as they come.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub async fn open(client: &reqwest::Client, url: &str, id: &str) -> Self {
        let response = client.get(format!("{url}/api/jobs/{id}/events")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self { response, buffer: String::new() }
    }

    /// The next snapshot; `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return Some(serde_json::from_str(data).unwrap());
                }
            }
            let chunk = self.response.chunk().await.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// Every snapshot of the job's events until it has ended; fails the test after `limit`.
pub async fn follow(client: &reqwest::Client, url: &str, id: &str, limit: Duration) -> Vec<Value> {
    let read = async {
        let mut events = Events::open(client, url, id).await;
        let mut snapshots = Vec::new();
        while let Some(snapshot) = events.next().await {
            snapshots.push(snapshot);
        }
        snapshots
    };
    tokio::time::timeout(limit, read).await.unwrap_or_else(|_| panic!("job {id} did not end within {limit:?}"))
}

/// The value of a JSON field as a string.
pub fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_else(|| panic!("no `{field}` in {value}")).to_string()
}

/// The process's peak resident memory so far, in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}
