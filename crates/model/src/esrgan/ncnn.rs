//! Real-ESRGAN's networks from the ncnn files they are shipped in (`.param` text + `.bin` weights), mapped
//! onto the reference's state-dict keys.
//!
//! The formats, as Tencent ncnn reads them (`src/net.cpp`, `src/paramdict.cpp`, `src/modelbin.cpp`): the
//! `.param` is the magic `7767517`, a line `LAYERS BLOBS`, then one line per layer
//! `Type Name INPUTS OUTPUTS in_blob... out_blob... k=v ...`, where a key `-233xx=n,a,b,...` is the array
//! parameter `xx`. The `.bin` is every layer's weights in layer order: a convolution's weight is preceded by
//! a 4-byte tag (`0x01306B47` float16, padded to 4 bytes; `0` or `0x0002C056` float32; `0x000D4B38` int8),
//! its bias and a PReLU's slopes are raw float32.
//!
//! The graph is recognised as RRDBNet or SRVGGNetCompact by its layer sequence (`Split` layers, which only
//! fan a blob out, aside): the convolutions' channel counts give the config, fused activations
//! (`9=2` LeakyReLU with its slope in `-23310`) and the residual scaling (`Eltwise` sum with coefficients
//! 0.2, 1) must be the reference's. Anything else is refused with the layer where it departs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use sana_sr_core::{Kind, Tensor};

use super::rrdbnet::{LEAKY_SLOPE, RESIDUAL_SCALE};
use super::{EsrganConfig, RrdbNetConfig, SrVggNetCompactConfig, VggActivation};

/// First line of every `.param` text file.
pub const MAGIC: u32 = 7_767_517;
/// `.bin` tag of a float16 weight.
pub const TAG_F16: u32 = 0x0130_6B47;
/// `.bin` tag of an int8 weight (not supported: the released Real-ESRGAN files are float).
pub const TAG_INT8: u32 = 0x000D_4B38;
/// `.bin` tag of a float32 weight that carries an extra scale elsewhere; the data is plain float32.
pub const TAG_F32_SCALED: u32 = 0x0002_C056;

#[derive(Debug, thiserror::Error)]
pub enum NcnnError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}, line {line}: {reason}")]
    Param { path: PathBuf, line: usize, reason: String },
    #[error("{path}: layer {layer}: {reason}")]
    Layer { path: PathBuf, layer: String, reason: String },
    #[error("{path}: truncated: layer {layer} needs {needed} more bytes but only {available} are left")]
    Truncated { path: PathBuf, layer: String, needed: usize, available: usize },
    #[error("{path}: {left} bytes left over after the last layer's weights: it does not belong to this .param")]
    TrailingBytes { path: PathBuf, left: usize },
    #[error("{path}: not RRDBNet ({rrdb}) nor SRVGGNetCompact ({srvgg})")]
    Graph { path: PathBuf, rrdb: String, srvgg: String },
}

type Result<T> = std::result::Result<T, NcnnError>;

/// One line of a `.param` file.
#[derive(Debug, Clone)]
pub struct ParamLayer {
    pub kind: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Parameter id to its value(s), as written (an array's values without its count).
    pub params: HashMap<i32, Vec<String>>,
}

impl ParamLayer {
    /// `Type Name`, how errors name the layer.
    pub fn label(&self) -> String {
        format!("{} `{}`", self.kind, self.name)
    }

    fn int(&self, id: i32, default: i64) -> std::result::Result<i64, String> {
        match self.params.get(&id).map(Vec::as_slice) {
            None => Ok(default),
            Some([v]) => v.parse().map_err(|_| format!("parameter {id}={v} is not an integer")),
            Some(_) => Err(format!("parameter {id} is an array, expected an integer")),
        }
    }

    fn floats(&self, id: i32) -> std::result::Result<Vec<f64>, String> {
        let values = self.params.get(&id).map(Vec::as_slice).unwrap_or_default();
        values.iter().map(|v| v.parse().map_err(|_| format!("parameter {id} value {v} is not a number"))).collect()
    }
}

/// Parses a `.param` text; `path` names it in errors.
pub fn parse_param(text: &str, path: &Path) -> Result<Vec<ParamLayer>> {
    let error = |line: usize, reason: String| NcnnError::Param { path: path.into(), line, reason };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, l)) if l.trim().parse() == Ok(MAGIC) => {}
        _ => return Err(error(1, format!("not an ncnn .param file (the first line is not {MAGIC})"))),
    }
    let (count_line, counts) = lines.next().ok_or_else(|| error(2, "no layer and blob counts".into()))?;
    let counts: Vec<usize> = counts.split_whitespace().filter_map(|c| c.parse().ok()).collect();
    let &[layer_count, _blobs] = counts.as_slice() else {
        return Err(error(count_line + 1, "expected `LAYERS BLOBS`".into()));
    };
    // Not `with_capacity(layer_count)`: the count is the file's word, checked against the lines below.
    let mut layers = Vec::new();
    let mut blobs: HashSet<String> = HashSet::new();
    for (index, line) in lines {
        let error = |reason: String| error(index + 1, reason);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            return Err(error("expected `Type Name INPUTS OUTPUTS ...`".into()));
        }
        let count = |s: &str| s.parse::<usize>().map_err(|_| error(format!("`{s}` is not a blob count")));
        let (n_in, n_out) = (count(fields[2])?, count(fields[3])?);
        if n_in.checked_add(n_out).is_none_or(|n| fields.len() - 4 < n) {
            return Err(error(format!("{} `{}` lists fewer blobs than its counts", fields[0], fields[1])));
        }
        let inputs: Vec<String> = fields[4..4 + n_in].iter().map(|s| s.to_string()).collect();
        let outputs: Vec<String> = fields[4 + n_in..4 + n_in + n_out].iter().map(|s| s.to_string()).collect();
        if let Some(missing) = inputs.iter().find(|b| !blobs.contains(*b)) {
            return Err(error(format!(
                "{} `{}` reads blob `{missing}` before any layer writes it",
                fields[0], fields[1]
            )));
        }
        blobs.extend(outputs.iter().cloned());
        let mut params = HashMap::new();
        for pair in &fields[4 + n_in + n_out..] {
            let (key, value) = pair.split_once('=').ok_or_else(|| error(format!("`{pair}` is not `key=value`")))?;
            let key: i32 = key.parse().map_err(|_| error(format!("`{key}` is not a parameter id")))?;
            let (id, values) = if key <= -23300 {
                let mut items = value.split(',').map(str::to_string);
                let n: usize =
                    items.next().and_then(|n| n.parse().ok()).ok_or_else(|| error(format!("bad array `{pair}`")))?;
                let values: Vec<String> = items.collect();
                if values.len() != n {
                    return Err(error(format!("array `{pair}` says {n} values but has {}", values.len())));
                }
                (-key - 23300, values)
            } else {
                (key, vec![value.to_string()])
            };
            params.insert(id, values);
        }
        layers.push(ParamLayer { kind: fields[0].into(), name: fields[1].into(), inputs, outputs, params });
    }
    if layers.len() != layer_count {
        return Err(error(count_line + 1, format!("says {layer_count} layers but lists {}", layers.len())));
    }
    Ok(layers)
}

/// A layer of the graph with its weights read, `Split`s dropped.
#[derive(Debug)]
enum Node {
    Input,
    Conv {
        out: i64,
        input: i64,
        activation: Activation,
        weight: Tensor,
        bias: Option<Tensor>,
    },
    Prelu {
        slopes: Tensor,
    },
    Concat,
    /// `Eltwise` sum with coefficients.
    WeightedSum(Vec<f64>),
    Add,
    NearestUp(i64),
    PixelShuffle(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Activation {
    None,
    Relu,
    Leaky(f64),
}

/// A recognised network: its config and its weights under the reference's state-dict keys, float16 or
/// float32 as the `.bin` stores them.
#[derive(Debug)]
pub struct Imported {
    pub config: EsrganConfig,
    pub tensors: Vec<(String, Tensor)>,
}

impl Imported {
    /// Whether the convolution weights were stored as float16.
    pub fn is_half(&self) -> bool {
        self.tensors.iter().any(|(_, t)| t.kind() == Kind::Half)
    }
}

/// Reads `FILE.param` and the `FILE.bin` beside it.
pub fn import(param: &Path) -> Result<Imported> {
    let bin = param.with_extension("bin");
    let text = sana_sr_core::fs::read_text(param).map_err(|source| NcnnError::Io { path: param.into(), source })?;
    let mut bytes = Vec::new();
    sana_sr_core::fs::open_file(&bin)
        .and_then(|mut file| std::io::Read::read_to_end(&mut file, &mut bytes))
        .map_err(|source| NcnnError::Io { path: bin.clone(), source })?;
    import_from(&text, param, &bytes, &bin)
}

/// [`import`] from the two files' contents; the paths name them in errors.
pub fn import_from(param_text: &str, param_path: &Path, bin: &[u8], bin_path: &Path) -> Result<Imported> {
    let layers = parse_param(param_text, param_path)?;
    let mut reader = BinReader { bytes: bin, offset: 0, path: bin_path };
    let mut nodes = Vec::new();
    for layer in &layers {
        let layer_error = |reason: String| NcnnError::Layer { path: param_path.into(), layer: layer.label(), reason };
        let node = match layer.kind.as_str() {
            "Split" => continue,
            "Input" => Node::Input,
            "Concat" => match layer.int(0, 0).map_err(layer_error)? {
                0 => Node::Concat,
                axis => return Err(layer_error(format!("concatenates along axis {axis}, not channels"))),
            },
            "Convolution" => convolution(layer, &mut reader).map_err(|e| e.into_error(layer, param_path))?,
            "PReLU" => {
                let n = layer.int(0, 0).map_err(layer_error)?;
                let n = usize::try_from(n).map_err(|_| layer_error(format!("{n} slopes")))?;
                let slopes = reader.raw_f32(n, layer)?;
                Node::Prelu { slopes }
            }
            "Eltwise" => match layer.int(0, 1).map_err(layer_error)? {
                1 => Node::WeightedSum(layer.floats(1).map_err(layer_error)?),
                op => return Err(layer_error(format!("Eltwise operation {op} is not a sum"))),
            },
            "BinaryOp" => match (layer.int(0, 0), layer.int(1, 0)) {
                (Ok(0), Ok(0)) => Node::Add,
                _ => return Err(layer_error("only the addition of two blobs is supported".into())),
            },
            "Interp" => {
                let scales = (layer.floats(1).map_err(layer_error)?, layer.floats(2).map_err(layer_error)?);
                match (layer.int(0, 0).map_err(layer_error)?, scales) {
                    (1, (h, w)) if h.len() == 1 && h == w && h[0].fract() == 0.0 && h[0] >= 1.0 => {
                        Node::NearestUp(h[0] as i64)
                    }
                    _ => return Err(layer_error("only nearest upsampling by a whole factor is supported".into())),
                }
            }
            "PixelShuffle" => match (layer.int(0, 1).map_err(layer_error)?, layer.int(1, 0).map_err(layer_error)?) {
                (factor, 0) => Node::PixelShuffle(factor),
                _ => return Err(layer_error("only PyTorch's channel order (mode 0) is supported".into())),
            },
            other => {
                return Err(layer_error(format!(
                    "unknown layer type `{other}` (RRDBNet and SRVGGNetCompact use Input, Split, Convolution, PReLU, \
                     Concat, Eltwise, BinaryOp, Interp, PixelShuffle)"
                )))
            }
        };
        nodes.push((layer.label(), node));
    }
    if reader.offset != bin.len() {
        return Err(NcnnError::TrailingBytes { path: bin_path.into(), left: bin.len() - reader.offset });
    }
    let rrdb = match match_rrdbnet(&nodes) {
        Ok(imported) => return Ok(imported),
        Err(e) => e,
    };
    match match_srvgg(&nodes) {
        Ok(imported) => Ok(imported),
        Err(srvgg) => Err(NcnnError::Graph { path: param_path.into(), rrdb, srvgg }),
    }
}

enum ConvError {
    Param(String),
    Bin(NcnnError),
}

impl ConvError {
    fn into_error(self, layer: &ParamLayer, path: &Path) -> NcnnError {
        match self {
            Self::Param(reason) => NcnnError::Layer { path: path.into(), layer: layer.label(), reason },
            Self::Bin(e) => e,
        }
    }
}

fn convolution(layer: &ParamLayer, reader: &mut BinReader) -> std::result::Result<Node, ConvError> {
    let int = |id, default| layer.int(id, default).map_err(ConvError::Param);
    let out = int(0, 0)?;
    let kernel = int(1, 0)?;
    let size = int(6, 0)?;
    // ncnn's defaults: the height-wise values repeat the width-wise ones, the other pads repeat the left one.
    let (kernel_h, dilation) = (int(11, kernel)?, int(2, 1)?);
    let (stride, pad_left) = (int(3, 1)?, int(4, 0)?);
    let pad_top = int(14, pad_left)?;
    let geometry = [kernel, kernel_h, dilation, int(12, dilation)?, stride, int(13, stride)?];
    let pads = [pad_left, int(15, pad_left)?, pad_top, int(16, pad_top)?];
    // -233 is ncnn's "same" padding, which at 3x3 stride 1 is 1 on every side.
    if geometry != [3, 3, 1, 1, 1, 1] || pads.iter().any(|&p| p != 1 && p != -233) {
        return Err(ConvError::Param(
            "only 3x3 convolutions with stride 1, dilation 1 and padding 1 are supported".into(),
        ));
    }
    if int(8, 0)? != 0 || int(19, 0)? != 0 {
        return Err(ConvError::Param("int8-quantised and dynamic-weight convolutions are not supported".into()));
    }
    let activation = match int(9, 0)? {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => match layer.floats(10).map_err(ConvError::Param)?.as_slice() {
            [] => Activation::Leaky(0.0),
            [slope] => Activation::Leaky(*slope),
            _ => return Err(ConvError::Param("LeakyReLU takes one slope".into())),
        },
        other => return Err(ConvError::Param(format!("fused activation {other} is not supported"))),
    };
    if out < 1 || size < 1 || out.checked_mul(9).is_none_or(|per_input| size % per_input != 0) {
        return Err(ConvError::Param(format!("weight size {size} is not {out} outputs x 3x3 x inputs")));
    }
    let input = size / (out * 9);
    let weight = reader.tagged(size as usize, layer).map_err(ConvError::Bin)?.view([out, input, 3, 3]);
    let bias = match int(5, 0)? {
        0 => None,
        _ => Some(reader.raw_f32(out as usize, layer).map_err(ConvError::Bin)?),
    };
    Ok(Node::Conv { out, input, activation, weight, bias })
}

struct BinReader<'a> {
    bytes: &'a [u8],
    offset: usize,
    path: &'a Path,
}

impl BinReader<'_> {
    /// The next `count` elements of `size` bytes; more than the file holds (however many) is
    /// [`NcnnError::Truncated`].
    fn take_elements(&mut self, count: usize, size: usize, layer: &ParamLayer) -> Result<&[u8]> {
        self.take(count.saturating_mul(size), layer)
    }

    fn take(&mut self, n: usize, layer: &ParamLayer) -> Result<&[u8]> {
        let available = self.bytes.len() - self.offset;
        if n > available {
            return Err(NcnnError::Truncated { path: self.path.into(), layer: layer.label(), needed: n, available });
        }
        let slice = &self.bytes[self.offset..self.offset + n];
        self.offset += n;
        Ok(slice)
    }

    fn raw_f32(&mut self, n: usize, layer: &ParamLayer) -> Result<Tensor> {
        let bytes = self.take_elements(n, 4, layer)?;
        Ok(Tensor::from_data_size(bytes, &[n as i64], Kind::Float))
    }

    /// A weight with its storage tag: float16 stays float16, float32 float32.
    fn tagged(&mut self, n: usize, layer: &ParamLayer) -> Result<Tensor> {
        let tag = u32::from_le_bytes(self.take(4, layer)?.try_into().expect("4 bytes"));
        match tag {
            TAG_F16 => {
                // Padded to 4 bytes: whole pairs of float16.
                let bytes = self.take_elements(n.div_ceil(2), 4, layer)?;
                Ok(Tensor::from_data_size(&bytes[..n * 2], &[n as i64], Kind::Half))
            }
            0 | TAG_F32_SCALED => self.raw_f32(n, layer),
            other => Err(NcnnError::Layer {
                path: self.path.into(),
                layer: layer.label(),
                reason: match other {
                    TAG_INT8 => "its weight is int8-quantised, which is not supported".into(),
                    _ => format!(
                        "its weight has storage tag {other:#010x} (quantised?); only float16 and float32 are supported"
                    ),
                },
            }),
        }
    }
}

/// Walks the graph's nodes, naming the one where a pattern breaks.
struct Cursor<'a> {
    nodes: &'a [(String, Node)],
    at: usize,
    tensors: Vec<(String, Tensor)>,
}

impl<'a> Cursor<'a> {
    fn new(nodes: &'a [(String, Node)]) -> Self {
        Self { nodes, at: 0, tensors: Vec::new() }
    }

    fn peek(&self, ahead: usize) -> Option<&'a Node> {
        self.nodes.get(self.at + ahead).map(|(_, n)| n)
    }

    fn next(&mut self, want: &str) -> std::result::Result<&'a (String, Node), String> {
        let node = self.nodes.get(self.at).ok_or_else(|| format!("the graph ends where {want} was expected"))?;
        self.at += 1;
        Ok(node)
    }

    fn expect(&mut self, want: &str, ok: impl Fn(&Node) -> bool) -> std::result::Result<(), String> {
        let (label, node) = self.next(want)?;
        if ok(node) {
            Ok(())
        } else {
            Err(format!("at {label}: expected {want}"))
        }
    }

    /// A convolution of `input` -> `out` channels (`None`: any) with `activation`, whose weights go under
    /// `key`; returns its (input, output) channels.
    fn conv(
        &mut self,
        key: &str,
        input: Option<i64>,
        out: Option<i64>,
        activation: Activation,
    ) -> std::result::Result<(i64, i64), String> {
        let channels = |c: Option<i64>| c.map_or("?".to_string(), |c| c.to_string());
        let want = format!("a 3x3 convolution {}->{} with {activation:?} (`{key}`)", channels(input), channels(out));
        let (label, node) = self.next(&want)?;
        match node {
            Node::Conv { out: o, input: i, activation: a, weight, bias: Some(bias) }
                if input.is_none_or(|c| c == *i) && out.is_none_or(|c| c == *o) && same_activation(*a, activation) =>
            {
                self.tensors.push((format!("{key}.weight"), weight.shallow_clone()));
                self.tensors.push((format!("{key}.bias"), bias.shallow_clone()));
                Ok((*i, *o))
            }
            _ => Err(format!("at {label}: expected {want}")),
        }
    }

    fn end(&mut self) -> std::result::Result<(), String> {
        match self.nodes.get(self.at) {
            None => Ok(()),
            Some((label, _)) => Err(format!("at {label}: expected the end of the graph")),
        }
    }
}

fn is_conv(node: Option<&Node>, out: Option<i64>, activation: Activation) -> bool {
    matches!(node, Some(Node::Conv { out: o, activation: a, .. }) if out.is_none_or(|c| c == *o) && same_activation(*a, activation))
}

fn same_activation(a: Activation, b: Activation) -> bool {
    match (a, b) {
        (Activation::Leaky(x), Activation::Leaky(y)) => (x - y).abs() < 1e-6,
        _ => a == b,
    }
}

fn residual_sum(node: &Node) -> bool {
    matches!(node, Node::WeightedSum(c) if c.len() == 2 && (c[0] - RESIDUAL_SCALE).abs() < 1e-6 && c[1] == 1.0)
}

fn match_rrdbnet(nodes: &[(String, Node)]) -> std::result::Result<Imported, String> {
    let mut c = Cursor::new(nodes);
    let leaky = Activation::Leaky(LEAKY_SLOPE);
    c.expect("the Input", |n| matches!(n, Node::Input))?;
    let (num_in_ch, num_feat) = c.conv("conv_first", None, None, Activation::None)?;
    let mut num_grow_ch = None;
    let mut num_block = 0;
    // A block starts with its first dense conv (num_feat -> growth, LeakyReLU); conv_body has no activation.
    while num_block == 0 || is_conv(c.peek(0), num_grow_ch, leaky) {
        for rdb in 1..=3 {
            for k in 0..5 {
                let key = format!("body.{num_block}.rdb{rdb}.conv{}", k + 1);
                let input = num_feat + k * num_grow_ch.unwrap_or(0);
                if k == 4 {
                    c.conv(&key, Some(input), Some(num_feat), Activation::None)?;
                    c.expect("the dense block's residual (Eltwise sum 0.2, 1)", residual_sum)?;
                } else {
                    let (_, grow) = c.conv(&key, Some(input), num_grow_ch, leaky)?;
                    num_grow_ch.get_or_insert(grow);
                    c.expect("a Concat", |n| matches!(n, Node::Concat))?;
                }
            }
        }
        c.expect("the RRDB's residual (Eltwise sum 0.2, 1)", residual_sum)?;
        num_block += 1;
    }
    c.conv("conv_body", Some(num_feat), Some(num_feat), Activation::None)?;
    c.expect("the trunk's addition (BinaryOp add)", |n| matches!(n, Node::Add))?;
    for key in ["conv_up1", "conv_up2"] {
        c.expect("a nearest x2 upsampling (Interp)", |n| matches!(n, Node::NearestUp(2)))?;
        c.conv(key, Some(num_feat), Some(num_feat), leaky)?;
    }
    c.conv("conv_hr", Some(num_feat), Some(num_feat), leaky)?;
    let (_, num_out_ch) = c.conv("conv_last", Some(num_feat), None, Activation::None)?;
    c.end()?;
    let num_grow_ch = num_grow_ch.expect("one block was read");
    let config = RrdbNetConfig { num_in_ch, num_out_ch, scale: 4, num_feat, num_block, num_grow_ch };
    Ok(Imported { config: EsrganConfig::Rrdbnet(config), tensors: c.tensors })
}

fn match_srvgg(nodes: &[(String, Node)]) -> std::result::Result<Imported, String> {
    let mut c = Cursor::new(nodes);
    c.expect("the Input", |n| matches!(n, Node::Input))?;
    // The activation is a PReLU layer after each conv but the last, or fused into it (ReLU, LeakyReLU 0.1).
    let (fused, act_type) = match c.peek(0) {
        Some(Node::Conv { activation: Activation::Relu, .. }) => (Activation::Relu, VggActivation::Relu),
        Some(Node::Conv { activation: Activation::Leaky(s), .. }) if (s - 0.1).abs() < 1e-6 => {
            (Activation::Leaky(0.1), VggActivation::Leakyrelu)
        }
        _ => (Activation::None, VggActivation::Prelu),
    };
    let prelu = act_type == VggActivation::Prelu;
    let (num_in_ch, num_feat) = c.conv("body.0", None, None, fused)?;
    let mut index = 0;
    loop {
        if prelu {
            let (label, node) = c.next("a PReLU")?;
            match node {
                Node::Prelu { slopes } if slopes.size() == [num_feat] => {
                    c.tensors.push((format!("body.{}.weight", index + 1), slopes.shallow_clone()))
                }
                _ => return Err(format!("at {label}: expected a PReLU of {num_feat} slopes")),
            }
        }
        index += 2;
        // A body conv is followed by its activation; the last one by the pixel shuffle.
        let body = if prelu {
            is_conv(c.peek(0), Some(num_feat), fused) && matches!(c.peek(1), Some(Node::Prelu { .. }))
        } else {
            is_conv(c.peek(0), Some(num_feat), fused)
        };
        if !body {
            break;
        }
        c.conv(&format!("body.{index}"), Some(num_feat), Some(num_feat), fused)?;
    }
    let (_, out) = c.conv(&format!("body.{index}"), Some(num_feat), None, Activation::None)?;
    let (label, node) = c.next("a PixelShuffle")?;
    let Node::PixelShuffle(upscale) = *node else { return Err(format!("at {label}: expected a PixelShuffle")) };
    if upscale < 1 || upscale.checked_mul(upscale).is_none_or(|square| out % square != 0) {
        return Err(format!("at {label}: {out} channels do not pixel-shuffle by {upscale}"));
    }
    c.expect("the input upsampled by nearest (Interp)", |n| matches!(n, Node::NearestUp(f) if *f == upscale))?;
    c.expect("the addition of the upsampled input (BinaryOp add)", |n| matches!(n, Node::Add))?;
    c.end()?;
    let config = SrVggNetCompactConfig {
        num_in_ch,
        num_out_ch: out / (upscale * upscale),
        num_feat,
        num_conv: index / 2 - 1,
        upscale,
        act_type,
    };
    Ok(Imported { config: EsrganConfig::SrvggnetCompact(config), tensors: c.tensors })
}
