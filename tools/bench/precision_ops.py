"""Why bfloat16 inference is or is not faster on this CPU: single operations of the SANA networks' shapes in
float32 and bfloat16, through the same libtorch sana-sr runs on (PyPI torch). Prints milliseconds per call.

  - a linear layer (256 tokens, 1152 wide): weights already in bf16, and cast on every call (what a layer
    under `with_compute_kind` does with float32 weights);
  - the Mix-FFN's depthwise 3x3 convolution (5760 channels, 16x16);
  - a 1x1 convolution (1152 -> 5760, 16x16), NCHW and channels-last.

Run: .venv/bin/python tools/bench/precision_ops.py [--threads 2]
"""

import argparse
import time

import torch
import torch.nn.functional as F


def per_call(f, repeats=5):
    f()
    start = time.perf_counter()
    for _ in range(repeats):
        f()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(parser.parse_args().threads)
    x, w = torch.randn(1, 256, 1152), torch.randn(1152, 1152)
    h, dw = torch.randn(1, 5760, 16, 16), torch.randn(5760, 1, 3, 3)
    c_in, c1 = torch.randn(1, 1152, 16, 16), torch.randn(5760, 1152, 1, 1)
    last = torch.channels_last
    for kind in (torch.float32, torch.bfloat16):
        xk, wk = x.to(kind), w.to(kind)
        rows = {
            "linear": per_call(lambda: F.linear(xk, wk)),
            "linear, weight cast per call": per_call(lambda: F.linear(x.to(kind), w.to(kind))),
            "depthwise 3x3": per_call(lambda: F.conv2d(h.to(kind), dw.to(kind), padding=1, groups=5760)),
            "1x1 conv": per_call(lambda: F.conv2d(c_in.to(kind), c1.to(kind))),
        }
        ck, wk1 = c_in.to(kind).contiguous(memory_format=last), c1.to(kind).contiguous(memory_format=last)
        rows["1x1 conv, channels-last"] = per_call(lambda: F.conv2d(ck, wk1))
        for name, ms in rows.items():
            print(f"{str(kind).removeprefix('torch.'):9} {name:30} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
