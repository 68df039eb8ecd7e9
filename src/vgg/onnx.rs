//! Minimal ONNX reader: just enough protobuf wire format to list a model's float initializers
//! (`ModelProto.graph.initializer`, `TensorProto{dims, data_type, name, raw_data | float_data}`)
//! and its Conv nodes in graph order. Written by hand to avoid a protobuf/onnx dependency for
//! a one-off import of VGG16 weights.

use std::collections::HashMap;

/// A float32 initializer found in the ONNX graph.
#[derive(Debug, Clone)]
pub struct OnnxTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// What the importer needs from the model: initializers by name and each Conv node's inputs
/// (`[X, W, B]`) in graph order.
#[derive(Debug, Default)]
pub struct OnnxModel {
    pub initializers: HashMap<String, OnnxTensor>,
    pub conv_inputs: Vec<Vec<String>>,
}

/// What is malformed in an ONNX file.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("malformed ONNX protobuf: truncated varint")]
    TruncatedVarint,
    #[error("malformed ONNX protobuf: varint longer than 10 bytes")]
    LongVarint,
    #[error("malformed ONNX protobuf: field of {0} bytes runs past the end of its message")]
    PastEnd(usize),
    #[error("malformed ONNX protobuf: unsupported wire type {0}")]
    WireType(u64),
    #[error("malformed ONNX protobuf: no graph (ModelProto field 7)")]
    NoGraph,
    #[error("malformed ONNX protobuf: packed float_data length not a multiple of 4")]
    PackedFloats,
    #[error("malformed ONNX protobuf: raw_data of {name} is {len} bytes, not a multiple of 4")]
    RawData { name: String, len: usize },
    #[error("malformed ONNX protobuf: initializer {name}: dims {dims:?} need {need} floats, found {found}")]
    InitializerSize { name: String, dims: Vec<usize>, need: usize, found: usize },
}

impl OnnxError {
    /// A malformed model is the file the user gave.
    pub fn blame(&self) -> crate::error::Blame {
        crate::error::Blame::Input
    }
}

/// One protobuf field: number and payload.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, OnnxError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(OnnxError::TruncatedVarint);
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(OnnxError::LongVarint)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], OnnxError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(OnnxError::PastEnd(n));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Next `(field number, value)`, or `None` at the end of the message.
    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, OnnxError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let v = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = self.varint()? as usize;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(OnnxError::WireType(w)),
        };
        Ok(Some((key >> 3, v)))
    }
}

const ONNX_FLOAT: u64 = 1;

/// Parses a serialized `ModelProto`.
pub fn parse_model(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
    let mut model = OnnxModel::default();
    let mut r = Reader::new(bytes);
    let mut seen_graph = false;
    while let Some((field, v)) = r.next()? {
        if let (7, Value::Bytes(graph)) = (field, v) {
            seen_graph = true;
            parse_graph(graph, &mut model)?;
        }
    }
    if !seen_graph {
        return Err(OnnxError::NoGraph);
    }
    Ok(model)
}

fn parse_graph(bytes: &[u8], model: &mut OnnxModel) -> Result<(), OnnxError> {
    let mut r = Reader::new(bytes);
    while let Some((field, v)) = r.next()? {
        match (field, v) {
            (1, Value::Bytes(node)) => {
                if let Some(inputs) = parse_conv_node(node)? {
                    model.conv_inputs.push(inputs);
                }
            }
            (5, Value::Bytes(t)) => {
                if let Some(t) = parse_tensor(t)? {
                    model.initializers.insert(t.name.clone(), t);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Inputs of a `NodeProto` whose op_type is "Conv"; `None` for other ops.
fn parse_conv_node(bytes: &[u8]) -> Result<Option<Vec<String>>, OnnxError> {
    let mut r = Reader::new(bytes);
    let (mut inputs, mut op) = (Vec::new(), String::new());
    while let Some((field, v)) = r.next()? {
        match (field, v) {
            (1, Value::Bytes(s)) => inputs.push(String::from_utf8_lossy(s).into_owned()),
            (4, Value::Bytes(s)) => op = String::from_utf8_lossy(s).into_owned(),
            _ => {}
        }
    }
    Ok((op == "Conv").then_some(inputs))
}

/// A float `TensorProto` with inline data; other dtypes and external data are skipped (`None`).
fn parse_tensor(bytes: &[u8]) -> Result<Option<OnnxTensor>, OnnxError> {
    let mut r = Reader::new(bytes);
    let (mut dims, mut dtype, mut name) = (Vec::new(), 0u64, String::new());
    let (mut raw, mut floats): (Option<&[u8]>, Vec<f32>) = (None, Vec::new());
    while let Some((field, v)) = r.next()? {
        match (field, v) {
            (1, Value::Varint(d)) => dims.push(d as usize),
            (1, Value::Bytes(packed)) => {
                let mut p = Reader::new(packed);
                while p.pos < packed.len() {
                    dims.push(p.varint()? as usize);
                }
            }
            (2, Value::Varint(t)) => dtype = t,
            (4, Value::Fixed32(f)) => floats.push(f32::from_bits(f)),
            (4, Value::Bytes(packed)) => {
                if packed.len() % 4 != 0 {
                    return Err(OnnxError::PackedFloats);
                }
                floats.extend(packed.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            }
            (8, Value::Bytes(s)) => name = String::from_utf8_lossy(s).into_owned(),
            (9, Value::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    if dtype != ONNX_FLOAT {
        return Ok(None);
    }
    let data = match raw {
        Some(b) => {
            if b.len() % 4 != 0 {
                return Err(OnnxError::RawData { name, len: b.len() });
            }
            b.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        None => floats,
    };
    let n: usize = dims.iter().product();
    if n != data.len() {
        return Err(OnnxError::InitializerSize { name, dims, need: n, found: data.len() });
    }
    Ok(Some(OnnxTensor { name, dims, data }))
}

/// Protobuf writing for tests that build models by hand.
#[cfg(test)]
pub(crate) mod encode {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    pub fn bytes_field(field: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    /// A float `TensorProto` with raw data.
    pub fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Vec<u8> {
        let mut t = Vec::new();
        for &d in dims {
            varint(1 << 3, &mut t);
            varint(d as u64, &mut t);
        }
        varint(2 << 3, &mut t);
        varint(super::ONNX_FLOAT, &mut t);
        bytes_field(8, name.as_bytes(), &mut t);
        let raw: Vec<u8> = data.iter().flat_map(|f| f.to_le_bytes()).collect();
        bytes_field(9, &raw, &mut t);
        t
    }

    /// A `NodeProto` of `op` with `inputs`.
    pub fn node(op: &str, inputs: &[&str]) -> Vec<u8> {
        let mut n = Vec::new();
        for s in inputs {
            bytes_field(1, s.as_bytes(), &mut n);
        }
        bytes_field(4, op.as_bytes(), &mut n);
        n
    }

    /// A `ModelProto` whose graph holds `nodes` and `initializers` (encoded messages).
    pub fn model(nodes: &[Vec<u8>], initializers: &[Vec<u8>]) -> Vec<u8> {
        let mut g = Vec::new();
        nodes.iter().for_each(|n| bytes_field(1, n, &mut g));
        initializers.iter().for_each(|t| bytes_field(5, t, &mut g));
        let mut m = Vec::new();
        bytes_field(7, &g, &mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::encode::*;
    use super::*;

    #[test]
    fn parses_hand_built_model() {
        let m = model(&[node("Conv", &["x", "w", "b"])], &[tensor("w", &[2, 1], &[1.5, -2.0])]);
        let model = parse_model(&m).unwrap();
        assert_eq!(model.conv_inputs, vec![vec!["x", "w", "b"]]);
        let w = &model.initializers["w"];
        assert_eq!((w.dims.clone(), w.data.clone()), (vec![2, 1], vec![1.5, -2.0]));
        // Cut inside the tensor payload: an error, not a panic.
        assert!(parse_model(&m[..m.len() - 3]).is_err());
    }
}
