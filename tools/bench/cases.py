"""The benchmark cases; `sana-sr bench --list` prints the same names (crates/cli/src/commands/bench.rs)."""

CASES = {
    "dcae-encode-512": {"model": "dc-ae-f32c32-sana-1.0", "op": "encode", "size": 512},
    "dit-600m-16": {"model": "sana-600m", "op": "forward", "size": 16},
    "dit-600m-32": {"model": "sana-600m", "op": "forward", "size": 32},
    "dit-1600m-16": {"model": "sana-1600m", "op": "forward", "size": 16},
    "dit-1600m-32": {"model": "sana-1600m", "op": "forward", "size": 32},
    "dcae-decode-512": {"model": "dc-ae-f32c32-sana-1.0", "op": "decode", "size": 16},
}
