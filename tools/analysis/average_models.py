"""Uniform weight average of sana-sr model files that share an architecture (snapshots of one run, or of runs
from the same initialisation), written as a model file `sana-sr eval --method model:LABEL=PATH` reads:

    .venv/bin/python tools/analysis/average_models.py out/avg.safetensors \
        runs/sana-sr-tiny-h1/snapshots/step_0000300.model.safetensors \
        runs/sana-sr-tiny-h1/snapshots/step_0000400.model.safetensors

Averages in float64 and stores each tensor in its input dtype; the first file's metadata (the model config)
is kept. Refuses files whose tensor names or shapes differ. Needs torch and safetensors (the project's .venv).
"""

import argparse
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the averaged model file to write")
    parser.add_argument("models", type=Path, nargs="+", help="model files to average")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; choose a new path")
    total, dtypes, metadata = {}, {}, None
    for path in args.models:
        with safe_open(path, "pt") as f:
            metadata = metadata or f.metadata()
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        if total and (tensors.keys() != total.keys()
                      or any(t.shape != total[n].shape for n, t in tensors.items())):
            parser.error(f"{path} does not hold the tensors of {args.models[0]}")
        for name, tensor in tensors.items():
            dtypes[name] = tensor.dtype
            total[name] = total.get(name, 0) + tensor.double()
    average = {name: (t / len(args.models)).to(dtypes[name]).contiguous() for name, t in total.items()}
    save_file(average, args.out, metadata=metadata)


if __name__ == "__main__":
    main()
