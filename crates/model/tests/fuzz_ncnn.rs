//! The ncnn importer under a mutation fuzzer ([`sana_sr_core::fuzz`]): tiny RRDBNet and SRVGGNetCompact
//! files (`tests/fuzz/ncnn/`, each `[.param length: u32 LE][.param][.bin]`), mutated as bytes and as
//! `.param` text (a line dropped or repeated, a token replaced by a number that breaks size arithmetic);
//! any panic or hang is a finding, saved beside the seeds and replayed by every run after.
//! `SANA_SR_FUZZ_SECONDS=1800 cargo test -p sana-sr-model --test fuzz_ncnn -- --nocapture` is a long run
//! (docs/fuzzing.md).

use std::path::{Path, PathBuf};

use sana_sr_core::fuzz::{self, Options, Rng, INTERESTING};
use sana_sr_model::esrgan::ncnn;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/ncnn")
}

/// The `.param` text and the `.bin` bytes of a fuzz input.
fn split(input: &[u8]) -> (&[u8], &[u8]) {
    let len = input.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    let rest = input.get(4..).unwrap_or_default();
    rest.split_at(len.min(rest.len()))
}

fn join(param: &[u8], bin: &[u8]) -> Vec<u8> {
    let mut out = (param.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(param);
    out.extend_from_slice(bin);
    out
}

fn import(input: &[u8]) -> String {
    let (param, bin) = split(input);
    let text = String::from_utf8_lossy(param);
    match ncnn::import_from(&text, Path::new("f.param"), bin, Path::new("f.bin")) {
        Ok(imported) => format!("ok {}", imported.config.architecture()),
        Err(err) => err.to_string(),
    }
}

/// A `.param` line dropped, repeated or swapped with another, or one token replaced: by an interesting
/// number (negative too), by another token of the file, or with a `k=v` value changed; the `.bin` cut or
/// grown by a few bytes.
fn mutate_text(rng: &mut Rng, input: &[u8]) -> Option<Vec<u8>> {
    let (param, bin) = split(input);
    let text = std::str::from_utf8(param).ok()?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return None;
    }
    let mut bin = bin.to_vec();
    let i = rng.below(lines.len());
    match rng.below(6) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let line = lines[i].clone();
            lines.insert(rng.below(lines.len() + 1), line);
        }
        2 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
        3 => {
            let cut = bin.len().saturating_sub(rng.below(64));
            bin.truncate(cut);
            if rng.chance(2) {
                bin.extend((0..rng.below(64)).map(|_| rng.next_u64() as u8));
            }
        }
        _ => {
            let mut tokens: Vec<String> = lines[i].split(' ').map(str::to_string).collect();
            let t = rng.below(tokens.len());
            let number = match rng.below(3) {
                0 => format!("-{}", rng.pick(INTERESTING)),
                1 => format!("{:e}", f64::from_bits(rng.next_u64())),
                _ => rng.pick(INTERESTING).to_string(),
            };
            tokens[t] = match tokens[t].split_once('=') {
                Some((key, _)) if rng.chance(2) => format!("{key}={number}"),
                _ if rng.chance(3) => {
                    let all: Vec<&str> = text.split_whitespace().collect();
                    rng.pick(&all).to_string()
                }
                _ => number,
            };
            lines[i] = tokens.join(" ");
        }
    }
    Some(join((lines.join("\n") + "\n").as_bytes(), &bin))
}

#[test]
fn the_ncnn_importer_survives_mutated_files() {
    let report = fuzz::run(&folder(), &Options::default(), mutate_text, import);
    println!("{}", report.summary("ncnn"));
    assert!(report.crashes.is_empty() && report.replay_failures.is_empty(), "{}", report.summary("ncnn"));
}
