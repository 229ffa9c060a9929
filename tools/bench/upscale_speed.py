"""Whole `sana-sr upscale` commands timed side by side: process start to file written, per model.

Each model upscales the same photo (by default the top-left 300x250 of RealSR-LR4's Canon_001, a real camera
photo, to 1200x1000) `--runs` times, the models interleaved so that a change in machine load touches all of
them alike; prints min / median / max seconds per model and each median's ratio to the first model's.

    SANA_SR_MODELS=data/peers/models .venv/bin/python tools/bench/upscale_speed.py \\
        sana-sr-tiny realesr-general-x4v3 realesrgan-x4plus

With `--binary` given more than once, every model runs with every binary (a change against a build of the
commit before it, say), interleaved too; rows are then named BINARY:MODEL.

Needs Pillow in the venv (`.venv/bin/pip install pillow`) to cut the photo, and a release build.
"""

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PHOTO = ROOT.parent / "shared/datasets/RealSR-LR4/Canon_001_LR4.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="names or paths `sana-sr upscale --model` takes")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--size", default="300x250", help="the photo's top-left crop, WxH")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", type=Path, action="append", help="default: target/release/sana-sr")
    parser.add_argument("--device", help="upscale's --device (default: its own, auto)")
    parser.add_argument("--precision", help="upscale's --precision (default: its own, auto)")
    args = parser.parse_args()
    options = [arg for name in ("device", "precision") if getattr(args, name) for arg in (f"--{name}", getattr(args, name))]

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        Image.open(args.photo).convert("RGB").crop((0, 0, width, height)).save(photo)
        binaries = args.binary or [ROOT / "target/release/sana-sr"]
        runs = [(b, m, f"{b}:{m}" if len(binaries) > 1 else m) for m in args.models for b in binaries]
        seconds: dict[str, list[float]] = {name: [] for _, _, name in runs}
        for _ in range(args.runs):
            for binary, model, name in runs:
                out = Path(tmp) / "out.png"
                command = [str(binary), "upscale", str(photo), "-o", str(out), "--overwrite", "--model", model, *options]
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - start)

    first_name = runs[0][2]
    first = statistics.median(seconds[first_name])
    print(f"{width}x{height} -> x4, {args.runs} runs each, seconds (process start to file written); {cpu()}")
    print(f"| model | min | median | max | median / {first_name}'s |")
    print("|---|---|---|---|---|")
    for model, times in seconds.items():
        median = statistics.median(times)
        print(f"| {model} | {min(times):.2f} | {median:.2f} | {max(times):.2f} | {median / first:.2f} |")


def cpu() -> str:
    """The CPU in words, with its bfloat16 instructions: the default precision, and with it the peers' speed,
    turns on them (sana_sr_core::precision::native_bf16)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU unknown"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    bf16 = [label for flag, label in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX")) if flag in flags]
    return f"{name}, {' and '.join(bf16) if bf16 else 'no bfloat16 instructions'}"


if __name__ == "__main__":
    main()
