//! The web page in a real browser: headless Chromium (Debian's `chromium`, which scripts/setup.sh installs
//! for CI) driven over the DevTools protocol. A photo from Set5 goes through the page's file input to a
//! before/after view and a download four times its size; a corrupt file shows its error.
//!
//! Where there is no Chromium these tests say so and pass, except in CI (`CI` set), where they fail: CI
//! must run them. `SANA_SR_PAGE_SCREENSHOT=docs/serve.png` keeps a picture of the page with its result.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::{SetDownloadBehaviorBehavior, SetDownloadBehaviorParams};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures_util::StreamExt;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(180);

/// Chromium: `$CHROME`, else `chromium` (Debian's name) or `chromium-browser` on the `PATH`. `None`, with the
/// reason printed, where there is none outside CI; a failure in CI.
fn chromium(test: &str) -> Option<PathBuf> {
    let on_path = |name: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    let found = std::env::var_os("CHROME")
        .map(PathBuf::from)
        .or_else(|| on_path("chromium"))
        .or_else(|| on_path("chromium-browser"));
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    match found {
        Some(path) => Some(path),
        None if in_ci => {
            panic!("{test}: no Chromium in CI (scripts/setup.sh installs Debian's chromium; or set CHROME)")
        }
        None => {
            eprintln!("skipped {test}: no Chromium (install Debian's chromium, or set CHROME to a Chrome or Chromium)");
            None
        }
    }
}

/// A headless browser (its profile in `profile`) with the page at `url` open.
async fn open(executable: &Path, profile: &Path, url: &str) -> (Browser, Page, tokio::task::JoinHandle<()>) {
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .user_data_dir(profile)
        // Root in a container has no user namespaces for the sandbox; the page is our own.
        .no_sandbox()
        .new_headless_mode()
        .arg("--disable-dev-shm-usage")
        .arg("--disable-gpu")
        .window_size(1100, 900)
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    // The protocol's events must be read for commands to complete; messages this client version does not
    // know are skipped.
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page(url).await.unwrap();
    wait_for(&page, "document.querySelectorAll('#model option').length > 0", "the model list").await;
    (browser, page, events)
}

async fn eval(page: &Page, script: &str) -> Value {
    page.evaluate(script).await.unwrap_or_else(|e| panic!("{script}: {e}")).into_value().unwrap()
}

/// Waits until `script` is true on the page.
async fn wait_for(page: &Page, script: &str, what: &str) {
    let started = Instant::now();
    while eval(page, script).await != Value::Bool(true) {
        assert!(started.elapsed() < LIMIT, "{what} never came ({script})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Chooses `file` in the page's file input, as a user does.
async fn choose(page: &Page, file: &Path) {
    let input = page.find_element("#files").await.unwrap();
    let choose = SetFileInputFilesParams::builder()
        .file(file.to_string_lossy())
        .backend_node_id(input.backend_node_id)
        .build()
        .unwrap();
    page.execute(choose).await.unwrap();
}

fn set5(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/Set5/LR_bicubic/X4").join(name);
    assert!(path.is_file(), "Set5 expected at {} (shared/ beside the repository)", path.display());
    // The browser reads the file itself, and refuses a path with `..` in it.
    path.canonicalize().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_upscales_a_set5_photo_shows_before_and_after_and_downloads_it() {
    let Some(executable) = chromium("the_page_upscales_a_set5_photo_shows_before_and_after_and_downloads_it") else {
        return;
    };
    let server = common::start(|_| {}).await;
    let (profile, downloads) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut browser, page, events) = open(&executable, profile.path(), &server.url).await;

    // Every control has a label a screen reader reads out.
    let unlabelled = eval(&page, "[...document.querySelectorAll('input, select')].filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.id)").await;
    assert_eq!(unlabelled, serde_json::json!([]), "controls without a label");

    let photo = set5("headx4.png");
    let (width, height) = image::image_dimensions(&photo).unwrap();
    choose(&page, &photo).await;
    wait_for(&page, "['done', 'failed'].includes(document.querySelector('.job')?.dataset.state)", "the job's end")
        .await;
    let job = eval(
        &page,
        "() => { const job = document.querySelector('.job'), q = (s) => job.querySelector(s);
           const box = (e) => { const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
           return { state: job.dataset.state, error: q('.error').textContent, compare: !q('.compare').hidden,
                    after: [q('img.after').naturalWidth, q('img.after').naturalHeight],
                    before: [q('img.before').naturalWidth, q('img.before').naturalHeight],
                    afterBox: box(q('img.after')), beforeBox: box(q('img.before')),
                    progress: [q('progress').value, q('progress').max], download: q('a.download').download }; }",
    )
    .await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["compare"], true, "{job}");
    assert_eq!(job["before"], serde_json::json!([width, height]), "{job}");
    assert_eq!(job["after"], serde_json::json!([4 * width, 4 * height]), "{job}");
    // Before and after are shown at the same zoom: the same box on the page.
    assert_eq!(job["beforeBox"], job["afterBox"], "{job}");
    assert_eq!(job["progress"][0], job["progress"][1], "{job}");
    assert_eq!(job["download"], "headx4_x4.png", "{job}");

    // The slider moves the line between before and after.
    let clip = eval(&page, "() => { const s = document.querySelector('.slider'); s.value = 20; s.dispatchEvent(new Event('input')); return document.querySelector('img.before').style.clipPath; }").await;
    assert_eq!(clip, "inset(0px 80% 0px 0px)");
    eval(&page, "() => { const s = document.querySelector('.slider'); s.value = 50; s.dispatchEvent(new Event('input')); return true; }").await;

    if let Some(path) = std::env::var_os("SANA_SR_PAGE_SCREENSHOT") {
        page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path).await.unwrap();
    }

    // The download, as the browser saves it.
    let allow = SetDownloadBehaviorParams::builder()
        .behavior(SetDownloadBehaviorBehavior::Allow)
        .download_path(downloads.path().to_string_lossy())
        .build()
        .unwrap();
    browser.execute(allow).await.unwrap();
    page.find_element("a.download").await.unwrap().click().await.unwrap();
    let saved = downloads.path().join("headx4_x4.png");
    let started = Instant::now();
    while !saved.is_file() {
        assert!(
            started.elapsed() < LIMIT,
            "no download in {:?}",
            std::fs::read_dir(downloads.path()).unwrap().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(image::image_dimensions(&saved).unwrap(), (4 * width, 4 * height));

    // On a phone-width screen the page fits: nothing to scroll sideways.
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true)).await.unwrap();
    let overflow = eval(&page, "document.documentElement.scrollWidth - window.innerWidth").await;
    let widest = eval(&page, "() => [...document.querySelectorAll('body *')].map(e => [e.tagName, e.id, Math.round(e.getBoundingClientRect().right)]).sort((a, b) => b[2] - a[2]).slice(0, 3)").await;
    assert!(
        overflow.as_f64().unwrap() <= 0.0,
        "the page is {overflow} px wider than a 390 px screen; widest: {widest}"
    );

    browser.close().await.unwrap();
    browser.wait().await.unwrap();
    events.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_why_a_corrupt_file_failed() {
    let Some(executable) = chromium("the_page_shows_why_a_corrupt_file_failed") else { return };
    let server = common::start(|_| {}).await;
    let (profile, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut browser, page, events) = open(&executable, profile.path(), &server.url).await;

    let corrupt = files.path().join("broken.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n this is not the rest of a PNG").unwrap();
    choose(&page, &corrupt).await;
    wait_for(&page, "document.querySelector('.job')?.dataset.state === 'failed'", "the job's failure").await;
    let shown = eval(&page, "() => { const e = document.querySelector('.job .error'); return { hidden: e.hidden, role: e.getAttribute('role'), text: e.textContent }; }").await;
    assert_eq!(shown["hidden"], false, "{shown}");
    assert_eq!(shown["role"], "alert", "{shown}");
    let text = shown["text"].as_str().unwrap();
    assert!(text.contains("broken.png") && text.contains("decode"), "{text}");
    assert!(!text.contains(&server.state.files.path().display().to_string()), "the server's paths leak: {text}");

    browser.close().await.unwrap();
    browser.wait().await.unwrap();
    events.abort();
    server.stop().await;
}
