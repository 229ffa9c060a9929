"""Fixtures for the Rust Real-ESRGAN networks (`crates/model/src/esrgan`): tiny random RRDBNet and
SRVGGNetCompact, defined below from basicsr's `archs/rrdbnet_arch.py` and Real-ESRGAN's
`realesrgan/archs/srvgg_arch.py` (written out here so that neither package is needed; same module names, so
the state-dict keys are the released checkpoints').

For each config below this writes `crates/model/tests/fixtures/esrgan/<name>/`:
  weights.safetensors  the state dict (float32), the config as JSON under the metadata key `config`
                       (the Rust `EsrganConfig`'s fields: `architecture` plus the reference's arguments)
  io.safetensors       `input` (NCHW in [0, 1]) and `output` (the network's, unclamped)

Run: .venv/bin/python tools/reference/make_esrgan_fixtures.py  (CPU, float32, seeded, deterministic.)
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

OUT = Path(__file__).resolve().parents[2] / "crates/model/tests/fixtures/esrgan"


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat, num_grow_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The x4 network (basicsr's x2/x1 pixel-unshuffle the input first; not built in Rust)."""

    def __init__(self, num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch):
        super().__init__()
        assert scale == 4
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch, num_out_ch, num_feat, num_conv, upscale, act_type):
        super().__init__()
        self.upscale = upscale
        act = lambda: {"relu": nn.ReLU(), "prelu": nn.PReLU(num_parameters=num_feat), "leakyrelu": nn.LeakyReLU(0.1)}[act_type]
        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), act()])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(act())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


CASES = {
    "rrdbnet": dict(
        seed=1,
        input=(1, 3, 12, 10),
        config=dict(architecture="rrdbnet", num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2, num_grow_ch=4),
    ),
    "srvgg": dict(
        seed=2,
        input=(2, 3, 9, 11),
        config=dict(
            architecture="srvggnet_compact", num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=4, upscale=4, act_type="prelu"
        ),
    ),
}


def main():
    for name, case in CASES.items():
        torch.manual_seed(case["seed"])
        args = {k: v for k, v in case["config"].items() if k != "architecture"}
        net = (RRDBNet if case["config"]["architecture"] == "rrdbnet" else SRVGGNetCompact)(**args).eval()
        with torch.no_grad():
            # PReLU slopes start at 0.25 everywhere; random ones test that each channel gets its own.
            for key, p in net.named_parameters():
                if p.ndim == 1 and key.startswith("body.") and key.endswith(".weight"):
                    p.uniform_(-0.3, 0.6)
            x = torch.rand(case["input"])
            y = net(x)
        out = OUT / name
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, out / "weights.safetensors", metadata={"config": json.dumps(case["config"])})
        save_file({"input": x, "output": y.contiguous()}, out / "io.safetensors")
        print(f"{name}: {sum(v.numel() for v in state.values())} parameters, output {tuple(y.shape)}")


if __name__ == "__main__":
    main()
