"""The DC-AE EfficientViT block's op sequences timed in PyTorch: as sana-sr runs them, and the alternatives
weighed (decisions.md, "The default pruned by half").

Shapes: the 1/8 latent of a 1200x1000 output (150x125 pixels, 128 channels, head dim 16, one extra 5x5
scale), random weights, 2 threads, median of 15 after a warm-up, under sana-sr's allocator settings (freed
memory kept for reuse), so that the figures compare op sequences, not allocations:

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 .venv/bin/python tools/bench/dcae_block_ops.py

Cases: the linear attention's normaliser from a ones row appended under the values (the reference's, and
sana-sr's before) against the key sums (sana-sr's now); the attention's heads laid out head-major (`[heads,
head_dim, pixels]`, the reference's reshape, sana-sr's before) against token-major (`[heads, pixels,
head_dim]`, views of the projections' rows: sana-sr's now), from channels-last activations; the channel RMS
norm of a ResBlock (bf16 conv output, f32 weights, plus the f32 residual) on the 1/4 grid, 64 channels, as the
reference's steps, as torch's `rms_norm` op on NCHW and on channels-last activations; the GLUMBConv with
fresh and in-place activations; the full-resolution 3x3 stem conv plus pixel-unshuffle against the
equivalent stride-2 4x4 conv.
"""

import time

import torch
import torch.nn.functional as F

HEIGHT, WIDTH, CHANNELS, HEAD_DIM, HIDDEN = 125, 150, 128, 16, 512


def median_ms(fn, runs=15):
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[runs // 2] * 1e3


def attention_cases():
    pixels = HEIGHT * WIDTH
    qkv = torch.randn(1, 2 * 3 * CHANNELS, pixels).reshape(1, -1, 3 * HEAD_DIM, pixels)
    q, k, v = qkv.chunk(3, 2)
    q, k = q.relu(), k.relu()

    def ones_row():
        ones = torch.ones(1, v.shape[1], 1, pixels)
        out = torch.cat([v, ones], 2).matmul(k.transpose(-1, -2)).matmul(q)
        return out[:, :, :HEAD_DIM] / (out[:, :, HEAD_DIM:] + 1e-15)

    def key_sums():
        numerator = v.matmul(k.transpose(-1, -2)).matmul(q)
        return numerator / (k.sum(-1, keepdim=True).transpose(-1, -2).matmul(q) + 1e-15)

    difference = (ones_row() - key_sums()).abs().max().item()
    return [("linear attention, ones row under the values", ones_row),
            (f"linear attention, key sums (max difference {difference:.1e})", key_sums)]


def attention_layout_cases():
    pixels = HEIGHT * WIDTH
    # q, k, v of two scales (the projections and one 5x5 scale), channels-last: the tokens are the rows.
    qkv = torch.randn(1, HEIGHT, WIDTH, 2 * 3 * CHANNELS).movedim(-1, 1)

    def head_major():
        h = qkv.reshape(1, -1, 3 * HEAD_DIM, pixels)
        q, k, v = h.chunk(3, 2)
        q, k = q.relu(), k.relu()
        numerator = v.matmul(k.transpose(-1, -2)).matmul(q)
        out = numerator / (k.sum(-1, keepdim=True).transpose(-1, -2).matmul(q) + 1e-15)
        return out.reshape(1, -1, HEIGHT, WIDTH).movedim(1, -1).contiguous()

    def token_major():
        h = qkv.movedim(1, -1).reshape(1, pixels, -1, 3 * HEAD_DIM)
        q, k, v = (t.transpose(1, 2) for t in h.chunk(3, -1))
        q, k = q.relu(), k.relu()
        numerator = q.matmul(k.transpose(-1, -2).matmul(v))
        out = numerator / (q.matmul(k.sum(-2, keepdim=True).transpose(-1, -2)) + 1e-15)
        return out.transpose(1, 2).reshape(1, HEIGHT, WIDTH, -1)

    difference = (head_major() - token_major()).abs().max().item()
    return [("attention heads head-major", head_major),
            (f"attention heads token-major (max difference {difference:.1e})", token_major)]


def norm_cases():
    channels, height, width = 64, 2 * HEIGHT, 2 * WIDTH
    conv_out = torch.randn(1, channels, height, width).bfloat16()
    residual = torch.randn(1, channels, height, width)
    weight, bias = torch.randn(channels), torch.randn(channels)
    conv_out_cl, residual_cl = (t.contiguous(memory_format=torch.channels_last) for t in (conv_out, residual))

    def reference():
        h = conv_out.movedim(1, -1)
        variance = h.float().pow(2).mean(-1, keepdim=True)
        return (h * torch.rsqrt(variance + 1e-5) * weight + bias).movedim(-1, 1) + residual

    def rms_norm(h, res):
        return (F.rms_norm(h.movedim(1, -1).float(), (channels,), weight, 1e-5) + bias).movedim(-1, 1) + res

    difference = (reference() - rms_norm(conv_out_cl, residual_cl)).abs().max().item()
    return [("channel RMS norm, the reference's steps", reference),
            ("channel RMS norm, torch's rms_norm", lambda: rms_norm(conv_out, residual)),
            (f"channel RMS norm, torch's rms_norm, channels-last (max difference {difference:.1e})",
             lambda: rms_norm(conv_out_cl, residual_cl))]


def glumbconv_cases():
    x = torch.randn(1, CHANNELS, HEIGHT, WIDTH)
    w_inverted, b_inverted = torch.randn(2 * HIDDEN, CHANNELS, 1, 1) * 0.05, torch.randn(2 * HIDDEN)
    w_depth, b_depth = torch.randn(2 * HIDDEN, 1, 3, 3) * 0.1, torch.randn(2 * HIDDEN)
    w_point = torch.randn(CHANNELS, HIDDEN, 1, 1) * 0.05

    def block(inplace):
        h = F.silu(F.conv2d(x, w_inverted, b_inverted), inplace=inplace)
        value, gate = F.conv2d(h, w_depth, b_depth, padding=1, groups=2 * HIDDEN).chunk(2, 1)
        gated = value.mul_(F.silu(gate, inplace=True)) if inplace else value * F.silu(gate)
        return F.conv2d(gated, w_point)

    return [("GLUMBConv, fresh activations", lambda: block(False)),
            ("GLUMBConv, in-place activations", lambda: block(True))]


def stem_cases():
    image = torch.randn(1, 3, 8 * HEIGHT, 8 * WIDTH)
    w3, b3 = torch.randn(4, 3, 3, 3), torch.randn(4)
    # The same map as one strided conv: output channel 4c + 2dy + dx holds conv channel c at offset (dy, dx).
    w4 = torch.zeros(16, 3, 4, 4)
    for c in range(4):
        for dy in range(2):
            for dx in range(2):
                w4[4 * c + 2 * dy + dx, :, dy:dy + 3, dx:dx + 3] = w3[c]
    b4 = b3.repeat_interleave(4)

    def unshuffled():
        return F.pixel_unshuffle(F.conv2d(image, w3, b3, padding=1), 2)

    def strided():
        return F.conv2d(F.pad(image, (1, 1, 1, 1)), w4, b4, stride=2)

    difference = (unshuffled() - strided()).abs().max().item()
    return [("stem, 3x3 conv at full resolution + pixel-unshuffle", unshuffled),
            (f"stem, one stride-2 4x4 conv (max difference {difference:.1e})", strided)]


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    with torch.no_grad():
        cases = attention_cases() + attention_layout_cases() + norm_cases() + glumbconv_cases() + stem_cases()
        for name, fn in cases:
            print(f"{median_ms(fn):8.1f} ms  {name}")


if __name__ == "__main__":
    main()
