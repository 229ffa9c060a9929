"""Side-by-side crops of several upscalers on chosen regions of LR photos: the README's picture.

Each case is a region of an LR image (its top-left corner and side in LR pixels) and, where the set has one,
the ground truth it was made from. Every method upscales the region with `CONTEXT` LR pixels around it (so
that no method sees a cut-off border where the crop is taken), and the picture shows, per row, the LR region
nearest-upscaled | each method | GT (a grey cell where there is none).

    D=../shared/datasets I=$D/ImageNet-ValSR
    SANA_SR_MODELS=data/peers/models .venv/bin/python tools/analysis/comparison_picture.py \\
        --case "$I/lq/ILSVRC2012_val_00000219.png@8,8=$I/gt/ILSVRC2012_val_00000219.png" \\
        --case "$I/lq/ILSVRC2012_val_00000079.png@8,8=$I/gt/ILSVRC2012_val_00000079.png" \\
        --case "$D/RealSRSet+5images/ppt3.png@8,178" --case "$D/RealSet65/supermarket1.jpeg@18,88" \\
        --case "$D/RealSRSet+5images/foreman.png@78,6" --case "$D/RealSRSet+5images/tiger.png@150,196" \\
        --method bicubic --method "x4plus=realesrgan-x4plus" --method "general-x4v3=realesr-general-x4v3" \\
        --method "sana-sr (built in)=sana-sr-compact-pruned-gan-extrapolated" -o docs/comparison.png

`bicubic` is Pillow's (the cubic kernel with a = -0.5 that MATLAB's `imresize` uses); every other method is a
model `sana-sr upscale --model` takes. Needs Pillow in the venv and a release build.
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[2]
SCALE = 4
# LR pixels of context each side of a region: more than a peer's or the built-in model's tile margin.
CONTEXT = 16
LABEL_HEIGHT = 28


def parse_case(spec: str) -> tuple[Path, int, int, Path | None]:
    lr, _, gt = spec.partition("=")
    path, _, corner = lr.rpartition("@")
    x, y = (int(v) for v in corner.split(","))
    return Path(path), x, y, Path(gt) if gt else None


def upscale(binary: Path, model: str, lr: Image.Image, tmp: Path) -> Image.Image:
    if model == "bicubic":
        return lr.resize((lr.width * SCALE, lr.height * SCALE), Image.Resampling.BICUBIC)
    src, dst = tmp / "in.png", tmp / "out.png"
    lr.save(src)
    subprocess.run([str(binary), "upscale", str(src), "-m", model, "-o", str(dst), "--overwrite", "--tile", "0",
                    "--device", "cpu"], check=True, capture_output=True)
    return Image.open(dst).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", required=True, help="LR@X,Y[=GT]: region's top-left, LR px")
    parser.add_argument("--method", action="append", required=True, help="LABEL=MODEL, or bicubic")
    parser.add_argument("--side", type=int, default=48, help="region side in LR pixels")
    parser.add_argument("--binary", type=Path, default=ROOT / "target/release/sana-sr")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    methods = [m.partition("=")[::2] if "=" in m else (m, m) for m in args.method]
    cell = args.side * SCALE
    columns = ["LR"] + [label for label, _ in methods] + ["GT"]
    picture = Image.new("RGB", (cell * len(columns), LABEL_HEIGHT + cell * len(args.case)), "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=18)
    for i, name in enumerate(columns):
        draw.text((i * cell + 6, 4), name, fill="black", font=font)

    with tempfile.TemporaryDirectory() as tmp:
        for row, spec in enumerate(args.case):
            path, x, y, gt = parse_case(spec)
            image = Image.open(path).convert("RGB")
            box = (max(x - CONTEXT, 0), max(y - CONTEXT, 0),
                   min(x + args.side + CONTEXT, image.width), min(y + args.side + CONTEXT, image.height))
            context = image.crop(box)
            # The region inside the upscaled context, in output pixels.
            inner = ((x - box[0]) * SCALE, (y - box[1]) * SCALE)
            inner = inner + (inner[0] + cell, inner[1] + cell)
            cells = [image.crop((x, y, x + args.side, y + args.side)).resize((cell, cell), Image.Resampling.NEAREST)]
            cells += [upscale(args.binary, model, context, Path(tmp)).crop(inner) for _, model in methods]
            if gt is not None:
                hr = Image.open(gt).convert("RGB")
                cells.append(hr.crop((x * SCALE, y * SCALE, x * SCALE + cell, y * SCALE + cell)))
            else:
                blank = Image.new("RGB", (cell, cell), (200, 200, 200))
                ImageDraw.Draw(blank).text((6, cell // 2 - 10), "no ground truth", fill="black", font=font)
                cells.append(blank)
            for col, tile in enumerate(cells):
                picture.paste(tile, (col * cell, LABEL_HEIGHT + row * cell))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.output)
    print(f"wrote {args.output} ({picture.width}x{picture.height})")


if __name__ == "__main__":
    main()
