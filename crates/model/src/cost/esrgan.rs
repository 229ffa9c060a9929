//! The cost of Real-ESRGAN's generators (`crate::esrgan`) on an LR image, module by module.

use super::{conv2d, Cost, Part};
use crate::esrgan::{EsrganConfig, RrdbNetConfig, SrVggNetCompactConfig, VggActivation};

/// The network on an LR image of `size` (height, width): its parts under the reference's module names.
pub fn esrgan(cfg: &EsrganConfig, size: (i64, i64)) -> Vec<Part> {
    match cfg {
        EsrganConfig::Rrdbnet(c) => rrdbnet(c, size),
        EsrganConfig::SrvggnetCompact(c) => srvgg(c, size),
    }
}

fn rrdbnet(c: &RrdbNetConfig, size: (i64, i64)) -> Vec<Part> {
    let (f, g) = (c.num_feat, c.num_grow_ch);
    let conv = |size, in_ch, out_ch| conv2d(size, in_ch, out_ch, 3, 1, true);
    // Five dense convolutions, each reading the block input and every earlier output.
    let rdb = (0..5).map(|i| conv(size, f + i * g, if i == 4 { f } else { g })).sum::<Cost>();
    let mut parts = vec![Part::new("conv_first", conv(size, c.num_in_ch, f))];
    parts.extend((0..c.num_block).map(|i| Part::new(format!("body.{i}"), rdb + rdb + rdb)));
    parts.push(Part::new("conv_body", conv(size, f, f)));
    let (x2, x4) = ((size.0 * 2, size.1 * 2), (size.0 * 4, size.1 * 4));
    parts.push(Part::new("conv_up1", conv(x2, f, f)));
    parts.push(Part::new("conv_up2", conv(x4, f, f)));
    parts.push(Part::new("conv_hr", conv(x4, f, f)));
    parts.push(Part::new("conv_last", conv(x4, f, c.num_out_ch)));
    parts
}

fn srvgg(c: &SrVggNetCompactConfig, size: (i64, i64)) -> Vec<Part> {
    // `body` alternates convolution and activation; only PReLU has parameters (a slope per channel).
    let prelu = if c.act_type == VggActivation::Prelu { Cost::params(c.num_feat as u64) } else { Cost::default() };
    let mut parts = Vec::new();
    for i in 0..=c.num_conv {
        let in_ch = if i == 0 { c.num_in_ch } else { c.num_feat };
        parts.push(Part::new(format!("body.{}", 2 * i), conv2d(size, in_ch, c.num_feat, 3, 1, true)));
        parts.push(Part::new(format!("body.{}", 2 * i + 1), prelu));
    }
    let out = c.num_out_ch * c.upscale * c.upscale;
    parts.push(Part::new(format!("body.{}", 2 * c.num_conv + 2), conv2d(size, c.num_feat, out, 3, 1, true)));
    parts
}
