"""Runs every benchmark case for sana-sr and for diffusers/PyTorch eager in float32 and in bfloat16 (autocast),
alternating, each in its own process (so peak memory is per case), and prints a markdown table with the
speed-ups: PyTorch's time over sana-sr's (above 1: sana-sr is faster).

Usage: .venv/bin/python tools/bench/compare.py [--threads 2] [--repeats 3] [--cases a,b]
           [--precision auto[,f32,...]] [--device cpu] [--bin target/release/sana-sr]
With several precisions, sana-sr runs once per precision (a row each) against the same PyTorch runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cases import CASES

HERE = Path(__file__).resolve().parent

# sana-sr keeps freed memory in glibc's heap (sana_sr_core::allocator); PyTorch gets the same settings through
# glibc's environment variables, so the two sides differ only in their own code.
SAME_ALLOCATOR = {**os.environ, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "2147483647"}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=SAME_ALLOCATOR).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--bin", default="target/release/sana-sr")
    parser.add_argument("--precision", default="auto", help="sana-sr's --precision (auto, f32, bf16, f16), comma-separated")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    common = ["--threads", str(args.threads), "--repeats", str(args.repeats), "--device", args.device]
    with tempfile.TemporaryDirectory() as configs:
        subprocess.run([args.bin, "bench", "--write-configs", configs], check=True)
        print("| case | sana-sr (s) | PyTorch f32 (s) | PyTorch bf16 (s) | PyTorch f32 / sana-sr | "
              "PyTorch bf16 / sana-sr | peak RSS (MiB): sana-sr, PyTorch f32, bf16 |")
        print("|---|---|---|---|---|---|---|")
        for case in args.cases.split(","):
            refs = [run_json([sys.executable, str(HERE / "reference.py"), configs, case, "--precision", p, *common])
                    for p in ("f32", "bf16")]
            for precision in args.precision.split(","):
                ours = run_json([args.bin, "bench", "--case", case, "--precision", precision, *common])
                speedups = " | ".join(f"{ref['median_s'] / ours['median_s']:.2f}" for ref in refs)
                peaks = ", ".join(str(r["peak_rss_mib"]) for r in (ours, *refs))
                print(f"| {case} ({precision}: {ours['precision']}) | {ours['median_s']:.3f} | "
                      f"{refs[0]['median_s']:.3f} | {refs[1]['median_s']:.3f} | {speedups} | {peaks} |", flush=True)


if __name__ == "__main__":
    main()
