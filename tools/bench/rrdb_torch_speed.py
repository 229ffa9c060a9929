"""PyTorch's own time for Real-ESRGAN x4plus's network (RRDBNet: 64 features, growth 32, two nearest x2
upsamplings), random weights, on this CPU: what the in-process engine's time per LR pixel is to be read
against. Runs `--blocks` RRDB blocks on a 128x128 input and scales the body's time to x4plus's 23 blocks
(the upsampling tail is counted once, as it is); f32 in NCHW and channels-last, and bf16 with `--bf16`.

    .venv/bin/python tools/bench/rrdb_torch_speed.py [--blocks 8] [--threads 2] [--bf16]
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn


class DenseBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(64 + 32 * i, 32 if i < 4 else 64, 3, 1, 1) for i in range(5))

    def forward(self, x):
        features = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(features, 1))
            if i < 4:
                features.append(F.leaky_relu(y, 0.2))
        return y * 0.2 + x


class Rrdbnet(nn.Module):
    def __init__(self, blocks: int):
        super().__init__()
        self.first = nn.Conv2d(3, 64, 3, 1, 1)
        self.body = nn.Sequential(*(DenseBlock() for _ in range(3 * blocks)))
        self.body_conv = nn.Conv2d(64, 64, 3, 1, 1)
        self.up1, self.up2, self.hr = (nn.Conv2d(64, 64, 3, 1, 1) for _ in range(3))
        self.last = nn.Conv2d(64, 3, 3, 1, 1)

    def forward(self, x):
        f = self.first(x)
        f = f + self.body_conv(self.body(f))
        f = F.leaky_relu(self.up1(F.interpolate(f, scale_factor=2, mode="nearest")), 0.2)
        f = F.leaky_relu(self.up2(F.interpolate(f, scale_factor=2, mode="nearest")), 0.2)
        return self.last(F.leaky_relu(self.hr(f), 0.2))


def ms_per_pixel(net: nn.Module, x: torch.Tensor, blocks: int) -> float:
    with torch.inference_mode():
        net(x)
        start = time.perf_counter()
        net(x)
        net(x)
    seconds = (time.perf_counter() - start) / 2
    return seconds / (x.shape[2] * x.shape[3]) * 1e3 * 23 / blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also bf16 (slow on CPUs without a fast bf16 path)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 128, 128)
    cases = [(torch.float32, torch.contiguous_format), (torch.float32, torch.channels_last)]
    if args.bf16:
        cases += [(torch.bfloat16, torch.contiguous_format), (torch.bfloat16, torch.channels_last)]
    for dtype, layout in cases:
        net = Rrdbnet(args.blocks).eval().to(dtype=dtype, memory_format=layout)
        ms = ms_per_pixel(net, x.to(dtype=dtype, memory_format=layout), args.blocks)
        print(f"{str(dtype).removeprefix('torch.')} {str(layout).removeprefix('torch.')}: {ms:.3f} ms per LR pixel")


if __name__ == "__main__":
    main()
