//! A small ONNX reader and interpreter for `campplus.onnx` (the CAM++ x-vector network the
//! 25 Hz tokenizer folder ships), so that no runtime binary is needed at build or run time.
//!
//! * [`proto`]: a protobuf wire-format reader for the parts of `ModelProto` a graph needs
//!   (nodes, attributes, initializers, inputs/outputs). External data files are not supported.
//! * [`OnnxModel`]: runs the graph in topological order on candle tensors (float) and `i64`
//!   vectors (shape arithmetic). Supported operators cover what a TorchScript-exported
//!   CAM++/ECAPA-style network uses: Conv (1-D/2-D, strides, padding, dilation, groups),
//!   BatchNormalization, Relu/Sigmoid/Tanh/Softmax, elementwise arithmetic with broadcasting,
//!   Reduce{Mean,Sum,Max,Prod}, MatMul/Gemm, AveragePool/GlobalAveragePool, Transpose, Reshape,
//!   Flatten, (Un)Squeeze, Concat, Slice, Gather, Shape, Expand, Constant(OfShape), Cast, Pad,
//!   Identity, Dropout, Split, Where, Equal. Unknown operators are reported by name.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use qwen3_speech_engine::{Error, Result};

pub mod proto {
    //! Protobuf wire format: varints, fixed32/64 and length-delimited fields.

    use qwen3_speech_engine::{Error, Result};

    fn err(m: &str) -> Error {
        Error::Model(format!("campplus.onnx: malformed protobuf ({m})"))
    }

    /// One field of a message.
    #[derive(Debug, Clone)]
    pub enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
        Fixed32(u32),
    }

    pub fn read_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let byte = *b.get(*pos).ok_or_else(|| err("truncated varint"))?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift >= 64 {
                return Err(err("varint too long"));
            }
        }
    }

    /// All `(field number, value)` pairs of a message, in order.
    pub fn fields(b: &[u8]) -> Result<Vec<(u32, Field<'_>)>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let key = read_varint(b, &mut pos)?;
            let num = (key >> 3) as u32;
            let f = match key & 7 {
                0 => Field::Varint(read_varint(b, &mut pos)?),
                1 => {
                    let s = b
                        .get(pos..pos + 8)
                        .ok_or_else(|| err("truncated fixed64"))?;
                    pos += 8;
                    Field::Fixed64(u64::from_le_bytes(
                        s.try_into().map_err(|_| err("fixed64"))?,
                    ))
                }
                2 => {
                    let n = read_varint(b, &mut pos)? as usize;
                    let s = b.get(pos..pos + n).ok_or_else(|| err("truncated bytes"))?;
                    pos += n;
                    Field::Bytes(s)
                }
                5 => {
                    let s = b
                        .get(pos..pos + 4)
                        .ok_or_else(|| err("truncated fixed32"))?;
                    pos += 4;
                    Field::Fixed32(u32::from_le_bytes(
                        s.try_into().map_err(|_| err("fixed32"))?,
                    ))
                }
                w => return Err(err(&format!("wire type {w}"))),
            };
            out.push((num, f));
        }
        Ok(out)
    }

    /// Repeated int64 values (packed or not) of field `num`.
    pub fn ints(fs: &[(u32, Field<'_>)], num: u32) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for (n, f) in fs {
            if *n != num {
                continue;
            }
            match f {
                Field::Varint(v) => out.push(*v as i64),
                Field::Bytes(b) => {
                    let mut p = 0;
                    while p < b.len() {
                        out.push(read_varint(b, &mut p)? as i64);
                    }
                }
                _ => return Err(err("int field")),
            }
        }
        Ok(out)
    }

    /// Repeated float values (packed or not) of field `num`.
    pub fn floats(fs: &[(u32, Field<'_>)], num: u32) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for (n, f) in fs {
            if *n != num {
                continue;
            }
            match f {
                Field::Fixed32(v) => out.push(f32::from_bits(*v)),
                Field::Bytes(b) => out.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ),
                _ => return Err(err("float field")),
            }
        }
        Ok(out)
    }

    pub fn bytes<'a>(fs: &[(u32, Field<'a>)], num: u32) -> Vec<&'a [u8]> {
        fs.iter()
            .filter_map(|(n, f)| match f {
                Field::Bytes(b) if *n == num => Some(*b),
                _ => None,
            })
            .collect()
    }

    pub fn string(fs: &[(u32, Field<'_>)], num: u32) -> String {
        bytes(fs, num)
            .first()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }

    pub fn varint(fs: &[(u32, Field<'_>)], num: u32) -> Option<u64> {
        fs.iter().rev().find_map(|(n, f)| match f {
            Field::Varint(v) if *n == num => Some(*v),
            _ => None,
        })
    }
}

use proto::Field;

/// A value flowing through the graph.
#[derive(Debug, Clone)]
pub enum Value {
    /// Float tensor (any float ONNX type is computed in f32).
    F(Tensor),
    /// Integer or boolean tensor: values and shape.
    I(Vec<i64>, Vec<usize>),
}

impl Value {
    fn shape(&self) -> Result<Vec<usize>> {
        Ok(match self {
            Value::F(t) => t.dims().to_vec(),
            Value::I(_, s) => s.clone(),
        })
    }
}

#[derive(Debug, Clone)]
enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Tensor(Value),
}

#[derive(Debug, Clone)]
struct Node {
    op: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: HashMap<String, Attr>,
}

impl Node {
    fn int(&self, k: &str, d: i64) -> i64 {
        match self.attrs.get(k) {
            Some(Attr::Int(v)) => *v,
            _ => d,
        }
    }
    fn float(&self, k: &str, d: f32) -> f32 {
        match self.attrs.get(k) {
            Some(Attr::Float(v)) => *v,
            _ => d,
        }
    }
    fn ints(&self, k: &str) -> Option<Vec<i64>> {
        match self.attrs.get(k) {
            Some(Attr::Ints(v)) => Some(v.clone()),
            _ => None,
        }
    }
    fn err(&self, m: impl std::fmt::Display) -> Error {
        Error::Model(format!(
            "campplus.onnx: node '{}' ({}): {m}",
            self.name, self.op
        ))
    }
}

/// A loaded ONNX graph.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    nodes: Vec<Node>,
    inits: HashMap<String, Value>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    device: Device,
}

fn parse_tensor(b: &[u8], dev: &Device) -> Result<(String, Value)> {
    let fs = proto::fields(b)?;
    let dims: Vec<usize> = proto::ints(&fs, 1)?
        .into_iter()
        .map(|d| d.max(0) as usize)
        .collect();
    let dtype = proto::varint(&fs, 2).unwrap_or(1);
    let name = proto::string(&fs, 8);
    if proto::varint(&fs, 14) == Some(1) {
        return Err(Error::Model(format!(
            "campplus.onnx: tensor '{name}' uses external data, which is not supported"
        )));
    }
    let raw = proto::bytes(&fs, 9);
    let raw = raw.first().copied();
    let n: usize = dims.iter().product();
    let v = match dtype {
        1 => {
            let data = match raw {
                Some(r) => r
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                None => proto::floats(&fs, 4)?,
            };
            if data.len() != n {
                return Err(Error::Model(format!(
                    "campplus.onnx: tensor '{name}' has {} values for {dims:?}",
                    data.len()
                )));
            }
            Value::F(Tensor::from_vec(data, dims, dev)?)
        }
        11 => {
            let data: Vec<f32> = match raw {
                Some(r) => r
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                    .collect(),
                None => fs
                    .iter()
                    .filter_map(|(k, f)| match f {
                        Field::Fixed64(v) if *k == 10 => Some(f64::from_bits(*v) as f32),
                        _ => None,
                    })
                    .collect(),
            };
            Value::F(Tensor::from_vec(data, dims, dev)?)
        }
        6 | 7 | 9 | 2 | 3 | 4 | 5 | 12 | 13 => {
            let data: Vec<i64> = match raw {
                Some(r) => match dtype {
                    7 | 13 => r
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                        .collect(),
                    6 | 12 => r
                        .chunks_exact(4)
                        .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                    _ => r.iter().map(|&x| i64::from(x)).collect(),
                },
                None => {
                    if dtype == 7 {
                        proto::ints(&fs, 7)?
                    } else {
                        proto::ints(&fs, 5)?
                    }
                }
            };
            Value::I(data, dims)
        }
        t => {
            return Err(Error::Model(format!(
                "campplus.onnx: tensor '{name}' has unsupported data type {t}"
            )));
        }
    };
    Ok((name, v))
}

fn parse_attr(b: &[u8], dev: &Device) -> Result<(String, Attr)> {
    let fs = proto::fields(b)?;
    let name = proto::string(&fs, 1);
    let ty = proto::varint(&fs, 20).unwrap_or(0);
    let a = match ty {
        1 => Attr::Float(proto::floats(&fs, 2)?.first().copied().unwrap_or(0.0)),
        2 => Attr::Int(proto::varint(&fs, 3).unwrap_or(0) as i64),
        3 => Attr::Str(proto::string(&fs, 4)),
        4 => {
            let t = proto::bytes(&fs, 5);
            let t = t.first().ok_or_else(|| {
                Error::Model(format!("campplus.onnx: attribute {name} without tensor"))
            })?;
            Attr::Tensor(parse_tensor(t, dev)?.1)
        }
        6 => Attr::Floats(proto::floats(&fs, 7)?),
        7 => Attr::Ints(proto::ints(&fs, 8)?),
        _ => Attr::Str(String::new()),
    };
    Ok((name, a))
}

fn value_info_name(b: &[u8]) -> Result<String> {
    Ok(proto::string(&proto::fields(b)?, 1))
}

impl OnnxModel {
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Model(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(&bytes, device)
    }

    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let model = proto::fields(bytes)?;
        let graph = proto::bytes(&model, 7);
        let graph = graph
            .first()
            .ok_or_else(|| Error::Model("campplus.onnx: no graph".into()))?;
        let g = proto::fields(graph)?;
        let mut inits = HashMap::new();
        for t in proto::bytes(&g, 5) {
            let (n, v) = parse_tensor(t, device)?;
            inits.insert(n, v);
        }
        let mut nodes = Vec::new();
        for nb in proto::bytes(&g, 1) {
            let fs = proto::fields(nb)?;
            let mut attrs = HashMap::new();
            for a in proto::bytes(&fs, 5) {
                let (k, v) = parse_attr(a, device)?;
                attrs.insert(k, v);
            }
            let strs = |num| -> Vec<String> {
                proto::bytes(&fs, num)
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            };
            nodes.push(Node {
                op: proto::string(&fs, 4),
                name: proto::string(&fs, 3),
                inputs: strs(1),
                outputs: strs(2),
                attrs,
            });
        }
        let inputs = proto::bytes(&g, 11)
            .into_iter()
            .map(value_info_name)
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|n| !inits.contains_key(n))
            .collect::<Vec<_>>();
        let outputs = proto::bytes(&g, 12)
            .into_iter()
            .map(value_info_name)
            .collect::<Result<Vec<_>>>()?;
        if inputs.len() != 1 || outputs.is_empty() {
            return Err(Error::Model(format!(
                "campplus.onnx: expected one input and at least one output, found {} and {}",
                inputs.len(),
                outputs.len()
            )));
        }
        Ok(OnnxModel {
            nodes,
            inits,
            inputs,
            outputs,
            device: device.clone(),
        })
    }

    /// Runs the graph on its single input; returns the first output as a float tensor.
    pub fn run_single(&self, x: Tensor) -> Result<Tensor> {
        let mut env: HashMap<String, Value> = HashMap::new();
        env.insert(self.inputs[0].clone(), Value::F(x));
        for node in &self.nodes {
            let ins: Vec<Option<Value>> = node
                .inputs
                .iter()
                .map(|n| {
                    if n.is_empty() {
                        Ok(None)
                    } else {
                        env.get(n)
                            .or_else(|| self.inits.get(n))
                            .cloned()
                            .map(Some)
                            .ok_or_else(|| node.err(format!("input '{n}' is not computed")))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let outs = self.eval(node, &ins)?;
            for (name, v) in node.outputs.iter().zip(outs) {
                env.insert(name.clone(), v);
            }
        }
        match env.remove(&self.outputs[0]) {
            Some(Value::F(t)) => Ok(t),
            _ => Err(Error::Model(
                "campplus.onnx: output is not a float tensor".into(),
            )),
        }
    }

    fn eval(&self, n: &Node, ins: &[Option<Value>]) -> Result<Vec<Value>> {
        let dev = &self.device;
        let input = |i: usize| -> Result<&Value> {
            ins.get(i)
                .and_then(|v| v.as_ref())
                .ok_or_else(|| n.err(format!("missing input {i}")))
        };
        let f = |i: usize| -> Result<Tensor> { to_f(input(i)?, dev) };
        let ints_in = |i: usize| -> Result<Option<Vec<i64>>> {
            match ins.get(i).and_then(|v| v.as_ref()) {
                None => Ok(None),
                Some(Value::I(v, _)) => Ok(Some(v.clone())),
                Some(Value::F(t)) => Ok(Some(
                    t.flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .map(|&x| x as i64)
                        .collect(),
                )),
            }
        };
        let one = |v: Value| -> Result<Vec<Value>> { Ok(vec![v]) };
        match n.op.as_str() {
            "Identity" | "Dropout" => one(input(0)?.clone()),
            "Constant" => match n.attrs.get("value") {
                Some(Attr::Tensor(v)) => one(v.clone()),
                Some(Attr::Float(x)) => one(Value::F(Tensor::new(*x, dev)?)),
                Some(Attr::Int(x)) => one(Value::I(vec![*x], vec![])),
                Some(Attr::Ints(x)) => one(Value::I(x.clone(), vec![x.len()])),
                Some(Attr::Floats(x)) => one(Value::F(Tensor::from_slice(x, x.len(), dev)?)),
                _ => match (
                    n.attrs.get("value_float"),
                    n.attrs.get("value_int"),
                    n.attrs.get("value_ints"),
                ) {
                    (Some(Attr::Float(x)), _, _) => one(Value::F(Tensor::new(*x, dev)?)),
                    (_, Some(Attr::Int(x)), _) => one(Value::I(vec![*x], vec![])),
                    (_, _, Some(Attr::Ints(x))) => one(Value::I(x.clone(), vec![x.len()])),
                    _ => Err(n.err("unsupported constant")),
                },
            },
            "Shape" => {
                let s = input(0)?.shape()?;
                let v: Vec<i64> = s.iter().map(|&d| d as i64).collect();
                let r = v.len() as i64;
                let norm = |x: i64| (if x < 0 { (x + r).max(0) } else { x.min(r) }) as usize;
                let start = norm(n.int("start", 0));
                let end = norm(n.int("end", r));
                let v = v[start..end.max(start)].to_vec();
                one(Value::I(v.clone(), vec![v.len()]))
            }
            "Cast" => {
                let to = n.int("to", 1);
                match (to, input(0)?) {
                    (1 | 10 | 11 | 16, v) => one(Value::F(to_f(v, dev)?)),
                    (_, Value::I(v, s)) => {
                        let v = if to == 9 {
                            v.iter().map(|&x| i64::from(x != 0)).collect()
                        } else {
                            v.clone()
                        };
                        one(Value::I(v, s.clone()))
                    }
                    (_, Value::F(t)) => {
                        let v: Vec<i64> = t
                            .flatten_all()?
                            .to_vec1::<f32>()?
                            .iter()
                            .map(|&x| {
                                if to == 9 {
                                    i64::from(x != 0.0)
                                } else {
                                    x as i64
                                }
                            })
                            .collect();
                        one(Value::I(v, t.dims().to_vec()))
                    }
                }
            }
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "Max"
            | "Min" => {
                let (a, b) = (input(0)?, input(1)?);
                if let (Value::I(x, xs), Value::I(y, ys)) = (a, b) {
                    return one(int_binary(&n.op, x, xs, y, ys).map_err(|m| n.err(m))?);
                }
                let (x, y) = (to_f(a, dev)?, to_f(b, dev)?);
                let r = match n.op.as_str() {
                    "Add" => x.broadcast_add(&y)?,
                    "Sub" => x.broadcast_sub(&y)?,
                    "Mul" => x.broadcast_mul(&y)?,
                    "Div" => x.broadcast_div(&y)?,
                    "Max" => x.broadcast_maximum(&y)?,
                    "Min" => x.broadcast_minimum(&y)?,
                    "Pow" => {
                        let e: Vec<f32> = y.flatten_all()?.to_vec1()?;
                        if e.len() == 1 && e[0] == 2.0 {
                            x.sqr()?
                        } else if e.len() == 1 && e[0] == 0.5 {
                            x.sqrt()?
                        } else {
                            x.abs()?.log()?.broadcast_mul(&y)?.exp()?
                        }
                    }
                    op => {
                        let (x, y) = (
                            x.broadcast_as(bshape(x.dims(), y.dims()).map_err(|m| n.err(m))?)?,
                            y.broadcast_as(bshape(x.dims(), y.dims()).map_err(|m| n.err(m))?)?,
                        );
                        let c = match op {
                            "Equal" => x.eq(&y)?,
                            "Less" => x.lt(&y)?,
                            _ => x.gt(&y)?,
                        };
                        let v: Vec<i64> = c
                            .flatten_all()?
                            .to_vec1::<u8>()?
                            .iter()
                            .map(|&b| i64::from(b))
                            .collect();
                        return one(Value::I(v, c.dims().to_vec()));
                    }
                };
                one(Value::F(r))
            }
            "Neg" => one(Value::F(f(0)?.neg()?)),
            "Sqrt" => one(Value::F(f(0)?.sqrt()?)),
            "Exp" => one(Value::F(f(0)?.exp()?)),
            "Log" => one(Value::F(f(0)?.log()?)),
            "Abs" => one(Value::F(f(0)?.abs()?)),
            "Reciprocal" => one(Value::F(f(0)?.recip()?)),
            "Relu" => one(Value::F(f(0)?.relu()?)),
            "Sigmoid" => one(Value::F(candle_nn::ops::sigmoid(&f(0)?)?)),
            "Tanh" => one(Value::F(f(0)?.tanh()?)),
            "Clip" => {
                let x = f(0)?;
                let lo = match ins.get(1).and_then(|v| v.as_ref()) {
                    Some(v) => scalar_f(v)?,
                    None => n.float("min", f32::MIN),
                };
                let hi = match ins.get(2).and_then(|v| v.as_ref()) {
                    Some(v) => scalar_f(v)?,
                    None => n.float("max", f32::MAX),
                };
                one(Value::F(x.clamp(lo, hi)?))
            }
            "Softmax" => {
                let x = f(0)?;
                let axis = norm_axis(n.int("axis", -1), x.rank());
                one(Value::F(candle_nn::ops::softmax(&x, axis)?))
            }
            "ReduceProd" | "ReduceSum" if matches!(input(0)?, Value::I(..)) => {
                let Value::I(v, sh) = input(0)? else {
                    return Err(n.err("integer reduction"));
                };
                let all = n
                    .ints("axes")
                    .or(ints_in(1)?)
                    .is_none_or(|a| a.len() == sh.len() || sh.len() <= 1);
                if !all {
                    return Err(n.err("integer reduction over some axes"));
                }
                let r = if n.op == "ReduceProd" {
                    v.iter().product()
                } else {
                    v.iter().sum()
                };
                let keep = n.int("keepdims", 1) != 0;
                one(Value::I(
                    vec![r],
                    if keep { vec![1; sh.len()] } else { vec![] },
                ))
            }
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceProd" => {
                let x = f(0)?;
                let axes = match n.ints("axes") {
                    Some(a) => a,
                    None => ints_in(1)?.unwrap_or_else(|| (0..x.rank() as i64).collect()),
                };
                let keep = n.int("keepdims", 1) != 0;
                let mut axes: Vec<usize> = axes.iter().map(|&a| norm_axis(a, x.rank())).collect();
                axes.sort_unstable();
                let mut y = x;
                for &a in axes.iter().rev() {
                    y = match n.op.as_str() {
                        "ReduceMean" => y.mean_keepdim(a)?,
                        "ReduceSum" => y.sum_keepdim(a)?,
                        "ReduceMax" => y.max_keepdim(a)?,
                        _ => {
                            // Product along `a`: a running product over the slices.
                            let len = y.dim(a)?;
                            let mut p = y.narrow(a, 0, 1)?;
                            for i in 1..len {
                                p = (p * y.narrow(a, i, 1)?)?;
                            }
                            p
                        }
                    };
                    if !keep {
                        y = y.squeeze(a)?;
                    }
                }
                one(Value::F(y))
            }
            "MatMul" => {
                let (a, b) = (f(0)?, f(1)?);
                let r = if b.rank() == 2 && a.rank() > 2 {
                    let lead: Vec<usize> = a.dims()[..a.rank() - 1].to_vec();
                    let k = a.dim(a.rank() - 1)?;
                    let y = a.reshape((lead.iter().product::<usize>(), k))?.matmul(&b)?;
                    let mut s = lead;
                    s.push(b.dim(1)?);
                    y.reshape(s)?
                } else {
                    a.broadcast_matmul(&b)?
                };
                one(Value::F(r))
            }
            "Gemm" => {
                let mut a = f(0)?;
                let mut b = f(1)?;
                if n.int("transA", 0) != 0 {
                    a = a.t()?;
                }
                if n.int("transB", 0) != 0 {
                    b = b.t()?;
                }
                let mut y =
                    (a.contiguous()?.matmul(&b.contiguous()?)? * f64::from(n.float("alpha", 1.0)))?;
                if let Some(c) = ins.get(2).and_then(|v| v.as_ref()) {
                    y = y.broadcast_add(&(to_f(c, dev)? * f64::from(n.float("beta", 1.0)))?)?;
                }
                one(Value::F(y))
            }
            "Conv" => one(Value::F(conv(
                n,
                &f(0)?,
                &f(1)?,
                ins.get(2)
                    .and_then(|v| v.as_ref())
                    .map(|v| to_f(v, dev))
                    .transpose()?,
            )?)),
            "BatchNormalization" => {
                let x = f(0)?;
                let (scale, bias, mean, var) = (f(1)?, f(2)?, f(3)?, f(4)?);
                let eps = f64::from(n.float("epsilon", 1e-5));
                let mut s = vec![1usize; x.rank()];
                s[1] = x.dim(1)?;
                let inv = ((var + eps)?.sqrt()?.recip()? * scale)?;
                let shift = (bias - (mean * &inv)?)?;
                one(Value::F(
                    x.broadcast_mul(&inv.reshape(s.clone())?)?
                        .broadcast_add(&shift.reshape(s)?)?,
                ))
            }
            "AveragePool" | "GlobalAveragePool" => {
                let x = f(0)?;
                if n.op == "GlobalAveragePool" {
                    let mut y = x;
                    for a in (2..y.rank()).rev() {
                        y = y.mean_keepdim(a)?;
                    }
                    return one(Value::F(y));
                }
                one(Value::F(avg_pool(n, &x)?))
            }
            "Transpose" => {
                let x = input(0)?;
                let r = x.shape()?.len();
                let perm: Vec<usize> = n
                    .ints("perm")
                    .map(|p| p.iter().map(|&a| a as usize).collect())
                    .unwrap_or_else(|| (0..r).rev().collect());
                match x {
                    Value::F(t) => one(Value::F(t.permute(perm)?.contiguous()?)),
                    Value::I(..) => Err(n.err("integer transpose")),
                }
            }
            "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Expand" => {
                let x = input(0)?;
                let s = x.shape()?;
                let new: Vec<usize> = match n.op.as_str() {
                    "Reshape" => {
                        let spec = ints_in(1)?.ok_or_else(|| n.err("no shape"))?;
                        let total: usize = s.iter().product();
                        let mut out: Vec<usize> = Vec::new();
                        let mut infer = None;
                        for (i, &d) in spec.iter().enumerate() {
                            match d {
                                0 if n.int("allowzero", 0) == 0 => {
                                    out.push(*s.get(i).ok_or_else(|| n.err("0 beyond rank"))?)
                                }
                                -1 => {
                                    infer = Some(i);
                                    out.push(1);
                                }
                                d => out.push(d as usize),
                            }
                        }
                        if let Some(i) = infer {
                            let known: usize = out.iter().product();
                            out[i] = total.checked_div(known).unwrap_or(0);
                        }
                        out
                    }
                    "Flatten" => {
                        let a = norm_axis(n.int("axis", 1), s.len() + 1);
                        vec![s[..a].iter().product(), s[a..].iter().product()]
                    }
                    "Squeeze" => {
                        let axes = n.ints("axes").or(ints_in(1)?);
                        match axes {
                            Some(a) => {
                                let a: Vec<usize> =
                                    a.iter().map(|&x| norm_axis(x, s.len())).collect();
                                s.iter()
                                    .enumerate()
                                    .filter(|(i, _)| !a.contains(i))
                                    .map(|(_, &d)| d)
                                    .collect()
                            }
                            None => s.iter().copied().filter(|&d| d != 1).collect(),
                        }
                    }
                    "Unsqueeze" => {
                        let axes = n
                            .ints("axes")
                            .or(ints_in(1)?)
                            .ok_or_else(|| n.err("no axes"))?;
                        let r = s.len() + axes.len();
                        let mut a: Vec<usize> = axes.iter().map(|&x| norm_axis(x, r)).collect();
                        a.sort_unstable();
                        let mut out = s.clone();
                        for &i in &a {
                            out.insert(i, 1);
                        }
                        out
                    }
                    _ => {
                        let spec: Vec<usize> = ints_in(1)?
                            .ok_or_else(|| n.err("no shape"))?
                            .iter()
                            .map(|&d| d.max(0) as usize)
                            .collect();
                        bshape(&s, &spec).map_err(|m| n.err(m))?
                    }
                };
                match x {
                    Value::F(t) => {
                        let t = if n.op == "Expand" {
                            t.broadcast_as(new)?.contiguous()?
                        } else {
                            t.reshape(new)?
                        };
                        one(Value::F(t))
                    }
                    Value::I(v, _) => {
                        if n.op == "Expand" {
                            let t = Tensor::from_vec(v.clone(), s.clone(), dev)?
                                .broadcast_as(new.clone())?
                                .contiguous()?;
                            one(Value::I(t.flatten_all()?.to_vec1()?, new))
                        } else {
                            one(Value::I(v.clone(), new))
                        }
                    }
                }
            }
            "Concat" => {
                let vals: Vec<&Value> = ins.iter().flatten().collect();
                let rank = vals
                    .first()
                    .ok_or_else(|| n.err("no inputs"))?
                    .shape()?
                    .len();
                let axis = norm_axis(n.int("axis", 0), rank);
                if vals.iter().all(|v| matches!(v, Value::I(..))) {
                    if rank != 1 {
                        return Err(n.err("integer concat above rank 1"));
                    }
                    let v: Vec<i64> = vals
                        .iter()
                        .flat_map(|v| {
                            if let Value::I(x, _) = v {
                                x.clone()
                            } else {
                                vec![]
                            }
                        })
                        .collect();
                    return one(Value::I(v.clone(), vec![v.len()]));
                }
                let ts = vals
                    .iter()
                    .map(|v| to_f(v, dev))
                    .collect::<Result<Vec<_>>>()?;
                one(Value::F(Tensor::cat(&ts, axis)?))
            }
            "Split" => {
                let x = f(0)?;
                let axis = norm_axis(n.int("axis", 0), x.rank());
                let total = x.dim(axis)?;
                let sizes = n.ints("split").or(ints_in(1)?).unwrap_or_else(|| {
                    let k = n.outputs.len().max(1);
                    vec![(total / k) as i64; k]
                });
                let mut start = 0;
                let mut outs = Vec::new();
                for s in sizes {
                    outs.push(Value::F(x.narrow(axis, start, s as usize)?));
                    start += s as usize;
                }
                Ok(outs)
            }
            "Slice" => {
                let x = input(0)?;
                let s = x.shape()?;
                let (starts, ends, axes, steps) = if let Some(st) = n.ints("starts") {
                    (st, n.ints("ends").unwrap_or_default(), n.ints("axes"), None)
                } else {
                    (
                        ints_in(1)?.unwrap_or_default(),
                        ints_in(2)?.unwrap_or_default(),
                        ints_in(3)?,
                        ints_in(4)?,
                    )
                };
                let axes: Vec<usize> = axes
                    .unwrap_or_else(|| (0..starts.len() as i64).collect())
                    .iter()
                    .map(|&a| norm_axis(a, s.len()))
                    .collect();
                if steps.as_ref().is_some_and(|st| st.iter().any(|&v| v != 1)) {
                    return Err(n.err("slice steps other than 1"));
                }
                let mut ranges: Vec<(usize, usize)> = s.iter().map(|&d| (0, d)).collect();
                for ((&a, &st), &en) in axes.iter().zip(&starts).zip(&ends) {
                    let d = s[a] as i64;
                    let c = |v: i64| if v < 0 { (v + d).max(0) } else { v.min(d) };
                    let (b, e) = (c(st), c(en));
                    ranges[a] = (b as usize, e.max(b) as usize);
                }
                match x {
                    Value::F(t) => {
                        let mut t = t.clone();
                        for (a, &(b, e)) in ranges.iter().enumerate() {
                            if (b, e) != (0, s[a]) {
                                t = t.narrow(a, b, e - b)?;
                            }
                        }
                        one(Value::F(t.contiguous()?))
                    }
                    Value::I(v, _) => {
                        if s.len() != 1 {
                            return Err(n.err("integer slice above rank 1"));
                        }
                        let (b, e) = ranges[0];
                        one(Value::I(v[b..e].to_vec(), vec![e - b]))
                    }
                }
            }
            "Gather" => {
                let x = input(0)?;
                let idx = input(1)?;
                let (iv, is) = match idx {
                    Value::I(v, s) => (v.clone(), s.clone()),
                    Value::F(_) => return Err(n.err("float indices")),
                };
                let s = x.shape()?;
                let axis = norm_axis(n.int("axis", 0), s.len());
                let d = s[axis] as i64;
                let iv: Vec<u32> = iv
                    .iter()
                    .map(|&i| (if i < 0 { i + d } else { i }) as u32)
                    .collect();
                match x {
                    Value::I(v, _) if s.len() == 1 => {
                        let out: Vec<i64> = iv
                            .iter()
                            .map(|&i| v.get(i as usize).copied().unwrap_or(0))
                            .collect();
                        one(Value::I(out, is))
                    }
                    Value::F(t) => {
                        let ids = Tensor::from_vec(iv.clone(), iv.len(), dev)?;
                        let g = t.index_select(&ids, axis)?;
                        let mut shape = s[..axis].to_vec();
                        shape.extend(&is);
                        shape.extend(&s[axis + 1..]);
                        one(Value::F(g.reshape(shape)?))
                    }
                    _ => Err(n.err("integer gather above rank 1")),
                }
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = ints_in(0)?
                    .unwrap_or_default()
                    .iter()
                    .map(|&d| d as usize)
                    .collect();
                match n.attrs.get("value") {
                    Some(Attr::Tensor(Value::I(v, _))) => {
                        let c = v.first().copied().unwrap_or(0);
                        one(Value::I(vec![c; shape.iter().product()], shape))
                    }
                    Some(Attr::Tensor(Value::F(t))) => {
                        let c = t
                            .flatten_all()?
                            .to_vec1::<f32>()?
                            .first()
                            .copied()
                            .unwrap_or(0.0);
                        one(Value::F(Tensor::full(c, shape, dev)?))
                    }
                    _ => one(Value::F(Tensor::zeros(shape, DType::F32, dev)?)),
                }
            }
            "Where" if matches!((input(1)?, input(2)?), (Value::I(..), Value::I(..))) => {
                let (Value::I(c, cs), Value::I(a, as_), Value::I(b, bs)) =
                    (input(0)?, input(1)?, input(2)?)
                else {
                    return Err(n.err("integer where needs an integer condition"));
                };
                let s =
                    bshape(&bshape(cs, as_).map_err(|m| n.err(m))?, bs).map_err(|m| n.err(m))?;
                let len: usize = s.iter().product();
                for v in [c, a, b] {
                    if v.len() != 1 && v.len() != len {
                        return Err(n.err("integer where beyond scalar broadcasting"));
                    }
                }
                let at = |v: &Vec<i64>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
                let out = (0..len)
                    .map(|i| if at(c, i) != 0 { at(a, i) } else { at(b, i) })
                    .collect();
                one(Value::I(out, s))
            }
            "Where" => {
                let c = match input(0)? {
                    Value::I(v, s) => Tensor::from_vec(
                        v.iter().map(|&b| u8::from(b != 0)).collect::<Vec<u8>>(),
                        s.clone(),
                        dev,
                    )?,
                    Value::F(t) => t.ne(0f32)?,
                };
                let (a, b) = (f(1)?, f(2)?);
                let s = bshape(&bshape(c.dims(), a.dims()).map_err(|m| n.err(m))?, b.dims())
                    .map_err(|m| n.err(m))?;
                one(Value::F(c.broadcast_as(s.clone())?.where_cond(
                    &a.broadcast_as(s.clone())?,
                    &b.broadcast_as(s)?,
                )?))
            }
            "Pad" => {
                let x = f(0)?;
                let pads = n
                    .ints("pads")
                    .or(ints_in(1)?)
                    .ok_or_else(|| n.err("no pads"))?;
                let mode = match n.attrs.get("mode") {
                    Some(Attr::Str(s)) => s.clone(),
                    _ => "constant".into(),
                };
                let r = x.rank();
                let mut y = x;
                for a in 0..r {
                    let (l, rr) = (pads[a].max(0) as usize, pads[a + r].max(0) as usize);
                    if l + rr == 0 {
                        continue;
                    }
                    y = match mode.as_str() {
                        "constant" => y.pad_with_zeros(a, l, rr)?,
                        "edge" => y.pad_with_same(a, l, rr)?,
                        "reflect" => {
                            let t = y.dim(a)?;
                            let mut idx: Vec<u32> = (1..=l).rev().map(|i| i as u32).collect();
                            idx.extend((0..t).map(|i| i as u32));
                            idx.extend((0..rr).map(|i| (t - 2 - i) as u32));
                            let ids = Tensor::from_vec(idx, l + t + rr, dev)?;
                            y.index_select(&ids, a)?
                        }
                        m => return Err(n.err(format!("pad mode {m}"))),
                    };
                }
                one(Value::F(y))
            }
            op => Err(n.err(format!(
                "operator {op} is not supported by the built-in ONNX interpreter"
            ))),
        }
    }
}

fn to_f(v: &Value, dev: &Device) -> Result<Tensor> {
    Ok(match v {
        Value::F(t) => t.clone(),
        Value::I(x, s) => Tensor::from_vec(
            x.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
            s.clone(),
            dev,
        )?,
    })
}

fn scalar_f(v: &Value) -> Result<f32> {
    Ok(match v {
        Value::F(t) => t
            .flatten_all()?
            .to_vec1::<f32>()?
            .first()
            .copied()
            .unwrap_or(0.0),
        Value::I(x, _) => x.first().copied().unwrap_or(0) as f32,
    })
}

fn norm_axis(a: i64, rank: usize) -> usize {
    if a < 0 {
        (a + rank as i64).max(0) as usize
    } else {
        a as usize
    }
}

fn bshape(a: &[usize], b: &[usize]) -> std::result::Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let x = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let y = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return Err(format!("shapes {a:?} and {b:?} do not broadcast"));
        };
    }
    Ok(out)
}

fn int_binary(
    op: &str,
    x: &[i64],
    xs: &[usize],
    y: &[i64],
    ys: &[usize],
) -> std::result::Result<Value, String> {
    let s = bshape(xs, ys)?;
    let n: usize = s.iter().product();
    let at = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i % v.len()] };
    if x.len() != 1 && y.len() != 1 && x.len() != y.len() {
        return Err("integer broadcasting beyond scalars".into());
    }
    let out = (0..n)
        .map(|i| {
            let (a, b) = (at(x, i), at(y, i));
            match op {
                "Add" => a + b,
                "Sub" => a - b,
                "Mul" => a * b,
                "Div" => {
                    if b == 0 {
                        0
                    } else {
                        a.div_euclid(b)
                    }
                }
                "Pow" => a.pow(b.max(0) as u32),
                "Equal" => i64::from(a == b),
                "Less" => i64::from(a < b),
                "Greater" => i64::from(a > b),
                "Max" => a.max(b),
                _ => a.min(b),
            }
        })
        .collect();
    Ok(Value::I(out, s))
}

fn conv(n: &Node, x: &Tensor, w: &Tensor, b: Option<Tensor>) -> Result<Tensor> {
    let spatial = w.rank() - 2;
    let groups = n.int("group", 1) as usize;
    let strides = n.ints("strides").unwrap_or_else(|| vec![1; spatial]);
    let dil = n.ints("dilations").unwrap_or_else(|| vec![1; spatial]);
    let pads = n.ints("pads").unwrap_or_else(|| vec![0; 2 * spatial]);
    if let Some(Attr::Str(p)) = n.attrs.get("auto_pad")
        && p != "NOTSET"
        && !p.is_empty()
    {
        return Err(n.err(format!("auto_pad {p}")));
    }
    let mut x = x.clone();
    for a in 0..spatial {
        let (l, r) = (pads[a] as usize, pads[a + spatial] as usize);
        if l + r > 0 {
            x = x.pad_with_zeros(2 + a, l, r)?;
        }
    }
    let x = x.contiguous()?;
    let y = match spatial {
        1 => x.conv1d(w, 0, strides[0] as usize, dil[0] as usize, groups)?,
        2 => {
            if strides[0] != strides[1] || dil[0] != dil[1] {
                // candle's conv2d has one stride/dilation for both axes: run row-strided via
                // a stride-1 conv along rows, then subsample.
                let y = x.conv2d(w, 0, 1, dil[0] as usize, groups)?;
                if dil[0] != dil[1] {
                    return Err(n.err("different dilations per axis"));
                }
                let (s0, s1) = (strides[0] as usize, strides[1] as usize);
                let h = y.dim(2)?.div_ceil(s0);
                let wd = y.dim(3)?.div_ceil(s1);
                let ih = Tensor::from_vec(
                    (0..h).map(|i| (i * s0) as u32).collect::<Vec<_>>(),
                    h,
                    x.device(),
                )?;
                let iw = Tensor::from_vec(
                    (0..wd).map(|i| (i * s1) as u32).collect::<Vec<_>>(),
                    wd,
                    x.device(),
                )?;
                y.index_select(&ih, 2)?.index_select(&iw, 3)?
            } else {
                x.conv2d(w, 0, strides[0] as usize, dil[0] as usize, groups)?
            }
        }
        s => return Err(n.err(format!("{s}-D convolution"))),
    };
    Ok(match b {
        Some(b) => {
            let mut s = vec![1usize; y.rank()];
            s[1] = b.dim(0)?;
            y.broadcast_add(&b.reshape(s)?)?
        }
        None => y,
    })
}

fn avg_pool(n: &Node, x: &Tensor) -> Result<Tensor> {
    let k = n
        .ints("kernel_shape")
        .ok_or_else(|| n.err("no kernel_shape"))?;
    if k.len() != 1 {
        return Err(n.err("only 1-D average pooling is supported"));
    }
    let k = k[0] as usize;
    let s = n.ints("strides").map(|v| v[0] as usize).unwrap_or(1);
    let pads = n.ints("pads").unwrap_or_else(|| vec![0, 0]);
    let ceil = n.int("ceil_mode", 0) != 0;
    let include_pad = n.int("count_include_pad", 0) != 0;
    let (pl, pr) = (pads[0] as usize, pads[1] as usize);
    let t = x.dim(2)?;
    if s == 0 || k == 0 {
        return Err(n.err("kernel and stride must be positive"));
    }
    // Output length as torch / ONNX compute it, in signed arithmetic: in ceil mode a window
    // longer than the (padded) input still gives one output (CAM++'s 100-frame segment
    // pooling on an utterance shorter than 100 frames), averaged over what it covers.
    let (span, k_i, s_i) = ((t + pl + pr) as i64, k as i64, s as i64);
    let steps = if ceil {
        (span - k_i + s_i - 1).div_euclid(s_i)
    } else {
        (span - k_i).div_euclid(s_i)
    };
    if steps < 0 {
        return Err(n.err("pooling window longer than the input"));
    }
    let mut out_len = steps as usize + 1;
    if ceil && out_len > 1 && (out_len - 1) * s >= t + pl {
        out_len -= 1;
    }
    let mut cols = Vec::with_capacity(out_len);
    for o in 0..out_len {
        let start = (o * s) as i64 - pl as i64;
        let end = (start + k as i64).min((t + pr) as i64);
        let (a, b) = (start.max(0) as usize, (end.max(0) as usize).min(t));
        let count = if include_pad {
            (end - start) as usize
        } else {
            b - a
        };
        let sum = x.narrow(2, a, b - a)?.sum_keepdim(2)?;
        cols.push((sum / count.max(1) as f64)?);
    }
    Ok(Tensor::cat(&cols, 2)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_node(k: i64, s: i64, ceil: bool, include_pad: bool) -> Node {
        let mut attrs = HashMap::new();
        attrs.insert("kernel_shape".to_owned(), Attr::Ints(vec![k]));
        attrs.insert("strides".to_owned(), Attr::Ints(vec![s]));
        attrs.insert("ceil_mode".to_owned(), Attr::Int(i64::from(ceil)));
        attrs.insert(
            "count_include_pad".to_owned(),
            Attr::Int(i64::from(include_pad)),
        );
        Node {
            op: "AveragePool".into(),
            name: "pool".into(),
            inputs: vec!["x".into()],
            outputs: vec!["y".into()],
            attrs,
        }
    }

    fn pooled(node: &Node, x: &[f32]) -> Result<Vec<f32>> {
        let t = Tensor::from_slice(x, (1, 1, x.len()), &Device::Cpu)?;
        Ok(avg_pool(node, &t)?.flatten_all()?.to_vec1()?)
    }

    #[test]
    fn ceil_mode_segments_average_what_they_cover() {
        let x: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        // torch.nn.functional.avg_pool1d(x, 3, 3, ceil_mode=True): [2, 5, 7]
        let y = pooled(&pool_node(3, 3, true, true), &x).unwrap();
        assert_eq!(y, vec![2.0, 5.0, 7.0]);
        // floor mode drops the partial window
        let y = pooled(&pool_node(3, 3, false, true), &x).unwrap();
        assert_eq!(y, vec![2.0, 5.0]);
    }

    #[test]
    fn ceil_mode_window_longer_than_the_input() {
        // CAM++'s segment pooling (kernel = stride = 100) on 7 frames: one output, the mean
        // of the 7 (torch: avg_pool1d(x, 100, 100, ceil_mode=True) -> [4.0]).
        let x: Vec<f32> = (1..=7).map(|v| v as f32).collect();
        for include_pad in [true, false] {
            let y = pooled(&pool_node(100, 100, true, include_pad), &x).unwrap();
            assert_eq!(y, vec![4.0]);
        }
        // Without ceil mode there is no output: an error, not a panic.
        assert!(pooled(&pool_node(100, 100, false, true), &x).is_err());
        assert!(pooled(&pool_node(0, 1, true, true), &x).is_err());
    }
}
