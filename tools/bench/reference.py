"""Times diffusers/PyTorch on one benchmark case, the same shapes and configs as `sana-sr bench`.

Usage: reference.py CONFIG_DIR CASE [--threads 2] [--repeats 3] [--device cpu|cuda] [--precision f32|bf16]
CONFIG_DIR holds the config.json files written by `sana-sr bench --write-configs DIR`, so both sides build
exactly the same models. `--precision bf16` runs under torch.autocast in bfloat16 (float32 weights, products
in bf16), the PyTorch counterpart of `sana-sr --precision bf16`. Prints one JSON line: {"case", "impl",
"precision", "median_s", "times_s", "peak_rss_mib"}.
"""

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch
from diffusers import AutoencoderDC, SanaTransformer2DModel

from cases import CASES


def build(config_dir: Path, case: dict):
    config = json.loads((config_dir / case["model"] / "config.json").read_text())
    cls = AutoencoderDC if case["model"].startswith("dc-ae") else SanaTransformer2DModel
    return cls.from_config(config).eval()


def run_case(model, case: dict, device: str):
    def randn(*shape):
        return torch.randn(*shape, device=device)

    if case["op"] == "encode":
        x = randn(1, 3, case["size"], case["size"])
        return lambda: model.encode(x).latent
    if case["op"] == "decode":
        z = randn(1, 32, case["size"], case["size"])
        return lambda: model.decode(z).sample
    cfg = model.config
    z = randn(1, cfg.in_channels, case["size"], case["size"])
    text = randn(1, 300, cfg.caption_channels)
    mask = torch.ones(1, 300, device=device)
    t = torch.tensor([999.0], device=device)
    return lambda: model(z, encoder_hidden_states=text, timestep=t, encoder_attention_mask=mask).sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config_dir", type=Path)
    parser.add_argument("case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cuda = args.device.startswith("cuda")
    # sana-sr sets the same: cuDNN picks the fastest algorithm for each convolution shape.
    torch.backends.cudnn.benchmark = True
    case = CASES[args.case]
    autocast = torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.precision == "bf16")
    # Built on the device itself: random weights for 1.6 B parameters take seconds on a CPU.
    with torch.inference_mode(), autocast, torch.device(args.device):
        step = run_case(build(args.config_dir, case), case, args.device)

        def timed():
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - start

        timed()  # warm-up
        times = [timed() for _ in range(args.repeats)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"case": args.case, "impl": "pytorch", "precision": args.precision, "median_s": statistics.median(times),
              "times_s": times, "peak_rss_mib": round(peak)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
