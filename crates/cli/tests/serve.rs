//! `sana-sr serve` as a user starts it: it prints where it listens, answers, and on SIGTERM stops and says
//! how its jobs ended, exit code 0. The service itself is tested in crates/server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// `GET path` on `address`: the status line and the body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn serve_prints_its_address_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sana-sr"))
        .args(["serve", "--port", "0", "--device", "cpu", "--token", "t0ken"])
        .current_dir(dir.path())
        .env("SANA_SR_MODELS", dir.path().join("models"))
        .env("TMPDIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let address = first.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{first}")).to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    assert_eq!(get(&address, "/healthz").0, "HTTP/1.1 200 OK");
    assert!(get(&address, "/").1.contains("<title>sana-sr</title>"));
    assert_eq!(get(&address, "/api/models").0, "HTTP/1.1 401 Unauthorized");
    // The service's temporary folder is in TMPDIR while it runs.
    let folders = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("sana-sr-serve-"))
            .count()
    };
    assert_eq!(folders(), 1);

    // SAFETY: sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    assert!(stderr.contains("stopped; 0 jobs known at shutdown"), "{stderr}");
    assert_eq!(folders(), 0, "the service's folder outlived it");
}

#[test]
fn serve_refuses_options_it_cannot_run_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::sana_sr(&["serve", "--workers", "0"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    let out = common::sana_sr(&["serve", "--model", "no-such-model", "--port", "0"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("no model named `no-such-model`"), "{}", common::stderr(&out));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = common::sana_sr(&["serve", "--port", &port, "--device", "cpu"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains(&format!("cannot listen on 127.0.0.1:{port}")), "{}", common::stderr(&out));
}
