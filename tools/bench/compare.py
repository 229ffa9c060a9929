"""Runs every benchmark case for sana-sr and for diffusers/PyTorch, alternating, each in its own process
(so peak memory is per case), and prints a markdown table with the ratio ours/PyTorch.

Usage: .venv/bin/python tools/bench/compare.py [--threads 2] [--repeats 3] [--cases a,b] [--bin target/release/sana-sr]
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
    args = parser.parse_args()
    common = ["--threads", str(args.threads), "--repeats", str(args.repeats)]
    with tempfile.TemporaryDirectory() as configs:
        subprocess.run([args.bin, "bench", "--write-configs", configs], check=True)
        print("| case | sana-sr (s) | PyTorch (s) | ratio ours/PyTorch | sana-sr peak RSS (MiB) | PyTorch peak RSS (MiB) |")
        print("|---|---|---|---|---|---|")
        for case in args.cases.split(","):
            ours = run_json([args.bin, "bench", "--case", case, *common])
            ref = run_json([sys.executable, str(HERE / "reference.py"), configs, case, *common])
            ratio = ours["median_s"] / ref["median_s"]
            print(f"| {case} | {ours['median_s']:.3f} | {ref['median_s']:.3f} | {ratio:.2f} | "
                  f"{ours['peak_rss_mib']} | {ref['peak_rss_mib']} |", flush=True)


if __name__ == "__main__":
    main()
