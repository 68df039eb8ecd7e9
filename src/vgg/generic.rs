//! The device-generic network: candle's own ops (conv2d, relu) with candle autograd, for CUDA /
//! Metal, and on the CPU as the reference the fast path is compared with (`Backend::Generic`).
//! Max-pool is built from the four window elements and a detached first-maximum mask, so its
//! gradient is right (candle 0.11.1's max_pool2d backward is not) and follows the fast path's
//! tie rule.

use candle_core::{DType, Device, Tensor, Var};

use super::weights::VggWeights;
use super::{LayerKind, Pick, Result};

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
pub(crate) struct Outputs {
    pub z: Vec<Tensor>,
    pub a: Vec<Tensor>,
}

/// What the backward needs: the input as a variable and the picked features on candle's tape.
pub(crate) struct GenericTrace {
    x: Var,
    features: Vec<Tensor>,
}

impl GenericTrace {
    /// `dL/dx` through candle autograd of the surrogate `Σ_i Σ F_i ⊙ stopgrad(seed_i)`, whose
    /// gradient is exactly the seeds pulled back to the image.
    pub fn backward(self, seeds: &[Option<Tensor>]) -> Result<Tensor> {
        let x = self.x.as_tensor();
        let mut surrogate: Option<Tensor> = None;
        for (f, s) in self.features.iter().zip(seeds) {
            let Some(s) = s else { continue };
            let term = (f * s.detach())?.sum_all()?;
            surrogate = Some(match surrogate {
                Some(acc) => (acc + term)?,
                None => term,
            });
        }
        let Some(surrogate) = surrogate else { return Ok(x.zeros_like()?) };
        let store = surrogate.backward()?;
        Ok(store.get(x).cloned().unwrap_or(x.zeros_like()?))
    }
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

    /// Features at `picks` for an RGB `image` `[b, 3, h, w]` in [0, 1]; `last` is the deepest
    /// picked conv.
    pub fn features(&self, image: &Tensor, picks: &[Pick], last: usize) -> Result<Vec<Tensor>> {
        Ok(Self::pick(&self.forward(image, last)?, picks).iter().map(|f| f.detach()).collect())
    }

    /// Like [`GenericNet::features`] (detached), with the trace for the backward: the input as a
    /// variable and the features on candle's tape.
    pub fn forward_kept(&self, image: &Tensor, picks: &[Pick], last: usize) -> Result<(Vec<Tensor>, GenericTrace)> {
        let x = Var::from_tensor(image)?;
        let on_tape = Self::pick(&self.forward(x.as_tensor(), last)?, picks);
        let features = on_tape.iter().map(|f| f.detach()).collect();
        Ok((features, GenericTrace { x, features: on_tape }))
    }

    fn pick(out: &Outputs, picks: &[Pick]) -> Vec<Tensor> {
        picks.iter().map(|p| if p.kind == LayerKind::Relu { out.a[p.conv].clone() } else { out.z[p.conv].clone() }).collect()
    }

    /// `image`: RGB `[b, 3, h, w]` in [0, 1]; runs convs `0..=last`.
    fn forward(&self, image: &Tensor, last: usize) -> candle_core::Result<Outputs> {
        let mut x = image.index_select(&self.src, 1)?.broadcast_mul(&self.scale)?.broadcast_add(&self.offset)?;
        let mut t = Outputs { z: Vec::new(), a: Vec::new() };
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
