"""Times diffusers/PyTorch on one benchmark case, the same shapes and configs as `sana-sr bench`.

Usage: reference.py CONFIG_DIR CASE [--threads 2] [--repeats 3]
CONFIG_DIR holds the config.json files written by `sana-sr bench --write-configs DIR`, so both sides build
exactly the same models. Prints one JSON line: {"case", "impl", "median_s", "times_s", "peak_rss_mib"}.
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


def run_case(model, case: dict):
    if case["op"] == "encode":
        x = torch.randn(1, 3, case["size"], case["size"])
        return lambda: model.encode(x).latent
    if case["op"] == "decode":
        z = torch.randn(1, 32, case["size"], case["size"])
        return lambda: model.decode(z).sample
    cfg = model.config
    z = torch.randn(1, cfg.in_channels, case["size"], case["size"])
    text = torch.randn(1, 300, cfg.caption_channels)
    mask = torch.ones(1, 300)
    t = torch.tensor([999.0])
    return lambda: model(z, encoder_hidden_states=text, timestep=t, encoder_attention_mask=mask).sample


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config_dir", type=Path)
    parser.add_argument("case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    case = CASES[args.case]
    with torch.inference_mode():
        step = run_case(build(args.config_dir, case), case)
        step()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"case": args.case, "impl": "pytorch", "median_s": statistics.median(times),
                      "times_s": times, "peak_rss_mib": round(peak)}))


if __name__ == "__main__":
    main()
