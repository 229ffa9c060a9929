"""The RMS norm of the DC-AE's ResBlocks on channels-last activations, three ways, timed in PyTorch.

The activations of the built-in model's 1200x1000 upscale (64 channels at 300x250, 16 at 600x500) arrive as
bfloat16 convolution outputs in channels-last layout, so the norm reduces rows of 16-64 contiguous values:

- `torch rms_norm`: `F.rms_norm` of the float32 copy (what sana-sr did);
- `pow(2).mean`: the reference's own steps (diffusers' RMSNorm);
- `norm kernel`: the sum of squares of the float32 copy by `torch.linalg.vector_norm`, squared back, then one
  product by the per-row factor and one fused weight-and-bias pass (`addcmul`), each over float32 operands of
  one kind (a bfloat16 operand beside a float32 one doubles a pass's time): what sana-sr does.

A 3x3 bfloat16 convolution of the same activations is timed beside them for scale. 2 threads, median of 15.

    .venv/bin/python tools/bench/rms_norm_ops.py
"""

import torch
import torch.nn.functional as F

from dcae_block_ops import median_ms

EPS = 1e-5


def torch_rms_norm(x, w, b):
    return F.rms_norm(x.float(), [x.shape[-1]], w, EPS) + b


def reference_steps(x, w, b):
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(variance + EPS) * w + b


def norm_kernel(x, w, b):
    x = x.float()
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.addcmul(b, x * torch.rsqrt(norm.square() / x.shape[-1] + EPS), w)


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for channels, height, width in [(64, 250, 300), (16, 500, 600)]:
        x = torch.randn(1, height, width, channels).bfloat16()
        w, b = torch.rand(channels) + 0.5, torch.rand(channels)
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).bfloat16()
        x_nchw = x.permute(0, 3, 1, 2)
        print(f"{channels} channels at {width}x{height}:")
        for name, f in [("torch rms_norm", torch_rms_norm), ("pow(2).mean", reference_steps), ("norm kernel", norm_kernel)]:
            difference = (f(x, w, b) - reference_steps(x, w, b)).abs().max().item()
            print(f"  {name:15} {median_ms(lambda: f(x, w, b)):7.2f} ms   max |difference| to the reference {difference:.1e}")
        with torch.no_grad():
            print(f"  {'3x3 conv bf16':15} {median_ms(lambda: conv(x_nchw)):7.2f} ms")


if __name__ == "__main__":
    main()
