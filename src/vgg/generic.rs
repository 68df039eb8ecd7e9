//! The device-generic network: candle's own ops (conv2d, relu) with candle autograd, for CUDA /
//! Metal, and on the CPU as the reference the fast path is compared with (`Backend::Generic`).
//! Max-pool is built from the four window elements and a detached first-maximum mask, so its
//! gradient is right (candle 0.11.1's max_pool2d backward is not) and follows the fast path's
//! tie rule.

use candle_core::{DType, Device, Tensor, D};

use super::weights::VggWeights;

pub(crate) struct GenericConv {
    /// `[cout, cin, 3, 3]`
    pub weight: Tensor,
    /// `[1, cout, 1, 1]`
    pub bias: Tensor,
    pub pool_after: bool,
}

pub(crate) struct GenericNet {
    pub convs: Vec<GenericConv>,
    /// Preprocessing as per-channel (source index, scale, offset) tensors.
    pub src: Tensor,
    pub scale: Tensor,
    pub offset: Tensor,
}

/// Output of the generic forward: per conv, pre-ReLU and ReLU outputs.
pub(crate) struct GenericTrace {
    pub z: Vec<Tensor>,
    pub a: Vec<Tensor>,
}

impl GenericNet {
    pub fn new(w: &VggWeights, device: &Device) -> candle_core::Result<Self> {
        let convs = w
            .convs
            .iter()
            .map(|c| {
                let (cin, cout) = (c.keys.in_channels, c.keys.out_channels);
                Ok(GenericConv {
                    weight: Tensor::from_slice(&c.weight, (cout, cin, 3, 3), device)?,
                    bias: Tensor::from_slice(&c.bias, (1, cout, 1, 1), device)?,
                    pool_after: c.keys.pool_after,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let map = w.preprocess.channel_map();
        Ok(GenericNet {
            convs,
            src: Tensor::new(&map.map(|m| m.0 as u32), device)?,
            scale: Tensor::new(&map.map(|m| m.1), device)?.reshape((1, 3, 1, 1))?,
            offset: Tensor::new(&map.map(|m| m.2), device)?.reshape((1, 3, 1, 1))?,
        })
    }

    /// `image`: RGB `[b, 3, h, w]` in [0, 1]; runs convs `0..=last`.
    pub fn forward(&self, image: &Tensor, last: usize) -> candle_core::Result<GenericTrace> {
        let mut x = image.index_select(&self.src, 1)?.broadcast_mul(&self.scale)?.broadcast_add(&self.offset)?;
        let mut t = GenericTrace { z: Vec::new(), a: Vec::new() };
        for (k, c) in self.convs.iter().enumerate().take(last + 1) {
            let z = x.conv2d(&c.weight, 1, 1, 1, 1)?.broadcast_add(&c.bias)?;
            let a = z.relu()?;
            x = if c.pool_after && k < last { maxpool2x2(&a)? } else { a.clone() };
            t.z.push(z);
            t.a.push(a);
        }
        Ok(t)
    }
}

/// 2×2 stride-2 max-pool of `[b, c, h, w]` (odd trailing row/column dropped) whose gradient goes
/// to the first maximum of each window in row-major order.
pub fn maxpool2x2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    let x = x.narrow(2, 0, 2 * ho)?.narrow(3, 0, 2 * wo)?.reshape((b, c, ho, 2, wo, 2))?;
    let v: Vec<Tensor> = [(0, 0), (0, 1), (1, 0), (1, 1)]
        .iter()
        .map(|&(dy, dx)| x.narrow(3, dy, 1)?.narrow(5, dx, 1)?.contiguous()?.reshape((b, c, ho, wo)))
        .collect::<candle_core::Result<_>>()?;
    let d: Vec<Tensor> = v.iter().map(|t| t.detach()).collect();
    let f = |t: Tensor| t.to_dtype(DType::F32);
    // sel_k: v_k is strictly greater than every earlier element and >= every later one.
    let mut out: Option<Tensor> = None;
    for k in 0..4 {
        let mut sel: Option<Tensor> = None;
        for j in 0..4 {
            if j == k {
                continue;
            }
            let m = if j < k { f(d[k].gt(&d[j])?)? } else { f(d[k].ge(&d[j])?)? };
            sel = Some(match sel {
                Some(s) => s.mul(&m)?,
                None => m,
            });
        }
        let term = v[k].mul(&sel.expect("three comparisons"))?;
        out = Some(match out {
            Some(o) => o.add(&term)?,
            None => term,
        });
    }
    Ok(out.expect("four terms"))
}

/// Gram matrices `[b, c, c]` of `[b, c, h, w]` features: `F Fᵀ / (C·H·W)`.
pub fn gram(f: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = f.dims4()?;
    let m = f.reshape((b, c, h * w))?;
    m.matmul(&m.transpose(1, 2)?)? / (c * h * w) as f64
}

/// Sum of all elements as f32 (any rank).
pub fn sum_all(t: &Tensor) -> candle_core::Result<f32> {
    t.flatten_all()?.sum(D::Minus1)?.to_dtype(DType::F32)?.to_scalar::<f32>()
}

/// Sum of all elements as a scalar tensor (differentiable).
pub fn sum_all_t(t: &Tensor) -> candle_core::Result<Tensor> {
    t.flatten_all()?.sum(D::Minus1)
}
