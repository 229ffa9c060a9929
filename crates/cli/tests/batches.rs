//! `sana-sr upscale` on folders, run again and again: earlier outputs passed over, sub-folders, outputs that
//! exist, and what it says to a person, a log file and a script.

mod common;

use std::path::Path;

use common::{photo, sana_sr, stderr, stdout};

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_second_run_passes_over_the_first_runs_outputs_even_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let photos = cwd.join("photos");
    std::fs::create_dir(&photos).unwrap();
    photo(&photos, "a.png", 12, 10);
    photo(&photos, "b.jpg", 10, 8);
    let out = sana_sr(&["upscale", "photos"], cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(files_under(&photos), ["a.png", "a_x4.png", "b.jpg", "b_x4.png"]);
    // An output renamed is still known, by the marker in its EXIF.
    std::fs::rename(photos.join("b_x4.png"), photos.join("b-sharp.png")).unwrap();

    // Run again: the outputs are not inputs. a.png's output exists, which is an error unless asked to pass
    // it by; b.jpg's was renamed away, so b.jpg is done again.
    let again = sana_sr(&["upscale", "photos"], cwd);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("a_x4.png exists already (pass --overwrite"), "{}", stderr(&again));
    assert!(stderr(&again).contains("1 of 2 image(s) failed"), "{}", stderr(&again));
    assert!(stderr(&again).contains("2 earlier output(s) passed over"), "{}", stderr(&again));
    let skipping = sana_sr(&["upscale", "photos", "--skip-existing"], cwd);
    assert!(skipping.status.success(), "{}", stderr(&skipping));
    assert!(stderr(&skipping).contains("3 earlier output(s) passed over"), "{}", stderr(&skipping));
    assert!(stderr(&skipping).contains("2 left alone as their outputs exist"), "{}", stderr(&skipping));
    assert_eq!(files_under(&photos), ["a.png", "a_x4.png", "b-sharp.png", "b.jpg", "b_x4.png"]);

    // Named on its own, an earlier output is upscaled like any photo.
    let named = sana_sr(&["upscale", "photos/a_x4.png", "-m", "sana-sr-tiny", "-s", "2"], cwd);
    assert!(named.status.success(), "{}", stderr(&named));
    assert!(photos.join("a_x4_x2.png").is_file());
}

#[test]
fn sub_folders_with_r_mirrored_in_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::create_dir_all(cwd.join("photos/2024/june")).unwrap();
    photo(&cwd.join("photos"), "a.png", 8, 8);
    photo(&cwd.join("photos/2024/june"), "b.png", 8, 8);
    // Extensionless photos are found by their content.
    photo(&cwd.join("photos/2024"), "c.png", 8, 8);
    std::fs::rename(cwd.join("photos/2024/c.png"), cwd.join("photos/2024/IMG_0003")).unwrap();

    let flat = sana_sr(&["upscale", "photos", "-o", "flat"], cwd);
    assert!(flat.status.success(), "{}", stderr(&flat));
    assert_eq!(files_under(&cwd.join("flat")), ["a_x4.png"]);

    let deep = sana_sr(&["upscale", "-r", "photos", "-o", "deep"], cwd);
    assert!(deep.status.success(), "{}", stderr(&deep));
    assert_eq!(files_under(&cwd.join("deep")), ["2024/IMG_0003_x4.png", "2024/june/b_x4.png", "a_x4.png"]);
}

#[test]
fn a_log_gets_a_line_per_image_a_script_json_and_quiet_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    photo(cwd, "a.png", 12, 10);
    std::fs::write(cwd.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();

    // stdout is a pipe here, as when it goes to a file.
    let logged = sana_sr(&["upscale", "a.png", "-o", "log"], cwd);
    assert!(logged.status.success(), "{}", stderr(&logged));
    let line = stdout(&logged);
    assert!(line.starts_with("a.png -> log/a_x4.png (48x40, ") && line.ends_with(" s)\n"), "{line}");

    let scripted = sana_sr(&["upscale", "a.png", "broken.png", "missing.png", "-o", "json", "--json"], cwd);
    assert_eq!(scripted.status.code(), Some(1), "{}", stderr(&scripted));
    let records: Vec<serde_json::Value> =
        stdout(&scripted).lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect();
    assert_eq!(records.len(), 3, "{}", stdout(&scripted));
    let by_input = |name: &str| records.iter().find(|r| r["input"] == name).unwrap_or_else(|| panic!("{name}"));
    let good = by_input("a.png");
    assert_eq!(good["output"], "json/a_x4.png");
    assert_eq!(good["size"], serde_json::json!([48, 40]));
    assert_eq!(good["model"], "sana-sr-compact-pruned-gan-extrapolated");
    assert!(good["seconds"].as_f64().is_some_and(|s| s > 0.0) && good["error"].is_null(), "{good}");
    assert!(by_input("broken.png")["error"].as_str().is_some_and(|e| e.contains("broken.png")));
    assert_eq!(by_input("missing.png")["error"], "no such file or folder");

    let quiet = sana_sr(&["upscale", "a.png", "-o", "quiet", "--quiet"], cwd);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty(), "{}{}", stdout(&quiet), stderr(&quiet));
    assert!(cwd.join("quiet/a_x4.png").is_file());
}
