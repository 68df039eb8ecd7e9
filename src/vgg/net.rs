//! The fast CPU network: a hand-written forward that keeps what the backward needs (each layer's
//! ReLU output, which is both the ReLU mask and the max-pool argmax source) and a hand-written
//! backward to the input image. No candle autograd; buffers are pooled and reused across calls.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};

use super::ops::conv3x3::{DirectConv, Tile, WinogradConv};
use super::ops::{elementwise, maxpool, Act};
use super::weights::{Preprocess, VggWeights};
use super::{LayerKind, Pick, Result};

enum ConvImpl {
    Wino(WinogradConv),
    Direct(DirectConv),
}

impl ConvImpl {
    fn forward(&self, input: &Act, out: &mut Act, relu: bool) {
        match self {
            ConvImpl::Wino(c) => c.forward(input, out, relu),
            ConvImpl::Direct(c) => c.forward(input, out, relu),
        }
    }
}

struct FastConv {
    /// GEMMs in bf16 ([`super::Precision::Bf16`]).
    bf16: bool,
    cin: usize,
    cout: usize,
    /// A 2×2 max-pool follows this conv's ReLU (last conv of a block).
    pool_after: bool,
    /// OIHW `[cout, cin, 3, 3]` and `[cout]`, until both directions are built from them.
    raw: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
    /// Built on first use: convs deeper than any requested layer (conv5_2, conv5_3 for the
    /// style loss) never cost their transformed weights (4× the raw ones per direction with
    /// F(4,3)), and backward weights exist only once a backward runs.
    fwd: OnceLock<ConvImpl>,
    bwd: OnceLock<ConvImpl>,
}

impl FastConv {
    fn fwd(&self) -> &ConvImpl {
        let bf16 = self.bf16;
        self.built(&self.fwd, |w, b, cin, cout| {
            if cin < 16 {
                ConvImpl::Direct(DirectConv::new(w, Some(b), cout, cin))
            } else if bf16 {
                ConvImpl::Wino(WinogradConv::with_bf16(tile_for(cin, cout), w, Some(b), cout, cin))
            } else {
                ConvImpl::Wino(WinogradConv::new(tile_for(cin, cout), w, Some(b), cout, cin))
            }
        })
    }

    fn bwd(&self) -> &ConvImpl {
        let bf16 = self.bf16;
        self.built(&self.bwd, |w, _, cin, cout| {
            if cin < 16 {
                ConvImpl::Direct(DirectConv::backward_of(w, cout, cin))
            } else if bf16 {
                ConvImpl::Wino(WinogradConv::backward_of_bf16(tile_for(cin, cout), w, cout, cin))
            } else {
                ConvImpl::Wino(WinogradConv::backward_of(tile_for(cin, cout), w, cout, cin))
            }
        })
    }

    /// `slot`, built from the raw weights on first use; the raw weights are dropped once both
    /// directions exist.
    fn built<'a>(&'a self, slot: &'a OnceLock<ConvImpl>, make: impl FnOnce(&[f32], &[f32], usize, usize) -> ConvImpl) -> &'a ConvImpl {
        if let Some(c) = slot.get() {
            return c;
        }
        let c = slot.get_or_init(|| {
            let raw = self.raw.lock().unwrap_or_else(|e| e.into_inner());
            let (w, b) = raw.as_ref().expect("raw weights are kept until both directions are built");
            make(w, b, self.cin, self.cout)
        });
        if self.fwd.get().is_some() && self.bwd.get().is_some() {
            *self.raw.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        c
    }
}

/// Winograd tile per layer: F(4,3) everywhere (36 multiplies per 16 outputs; 2.25× fewer than
/// F(2,3)'s 16 per 4). F(2,3) on the 512-channel layers measured 13 % slower for the whole
/// 256² step and keeps 1.8× (not 4×) the weights: 147 MB less in all.
pub fn tile_for(_cin: usize, _cout: usize) -> Tile {
    Tile::F4
}

/// `TEXSTYLE_VGG_PROFILE=1` prints per-layer times to stderr (for tuning).
fn profiling() -> bool {
    static P: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *P.get_or_init(|| std::env::var_os("TEXSTYLE_VGG_PROFILE").is_some())
}

fn timed<R>(what: std::fmt::Arguments<'_>, f: impl FnOnce() -> R) -> R {
    if !profiling() {
        return f();
    }
    let t0 = std::time::Instant::now();
    let r = f();
    eprintln!("vgg-profile {what} {:.2} ms", t0.elapsed().as_secs_f64() * 1e3);
    r
}

pub(crate) struct FastNet {
    pub preprocess: Preprocess,
    convs: Vec<FastConv>,
    pool: Mutex<Vec<Act>>,
}

/// What the forward kept: per conv `k`, its ReLU output `a[k]`, the pooled output when a pool
/// follows, and the pre-ReLU output for convs asked for as `convX_Y` layers.
pub(crate) struct Trace {
    pub input: Act,
    pub a: Vec<Act>,
    pub pooled: Vec<Option<Act>>,
    pub z: HashMap<usize, Act>,
}

/// The traces of one batch, per image, for [`FastTrace::backward`]; back to the pool when dropped.
pub(crate) struct FastTrace<'a> {
    net: &'a FastNet,
    picks: Vec<Pick>,
    items: Vec<Trace>,
}

impl FastTrace<'_> {
    /// `dL/dimage` `[b, 3, h, w]` from `seeds[i] = dL/dfeatures[i]` (`[b, c, h, w]`, shapes
    /// checked by the caller against `features`).
    pub fn backward(mut self, seeds: &[Option<Tensor>], features: &[Tensor]) -> Result<Tensor> {
        let device = features.first().map_or(Device::Cpu, |f| f.device().clone());
        let mut grads = Vec::with_capacity(self.items.len());
        for (bi, t) in self.items.iter().enumerate() {
            let mut per_item = Vec::new();
            for (p, s) in self.picks.iter().zip(seeds) {
                let Some(s) = s else { continue };
                let (_, c, h, w) = s.dims4()?;
                // Channels-last seeds (the loss keeps the features' layout) need no transpose, and
                // are read in place.
                // (Permute before taking the image: `get` on a strided tensor copies.)
                let hwc = s.permute((0, 2, 3, 1))?.get(bi)?.to_dtype(DType::F32)?.contiguous()?;
                let mut a = self.net.take(h, w, c);
                let (storage, layout) = hwc.storage_and_layout();
                match (&*storage, layout.contiguous_offsets()) {
                    (Storage::Cpu(CpuStorage::F32(v)), Some((start, end))) => a.set_hwc(&v[start..end]),
                    _ => a.set_hwc(&hwc.flatten_all()?.to_vec1::<f32>()?),
                }
                per_item.push((p.conv, p.kind, a));
            }
            let (h, w) = (t.input.h, t.input.w);
            let dx = self.net.backward(t, per_item);
            grads.push(Tensor::from_vec(self.net.input_grad_to_rgb(&dx), (3, h, w), &device)?);
            self.net.give(dx);
        }
        let items = std::mem::take(&mut self.items);
        items.into_iter().for_each(|t| self.net.recycle(t));
        Ok(Tensor::stack(&grads, 0)?)
    }
}

impl Drop for FastTrace<'_> {
    fn drop(&mut self) {
        std::mem::take(&mut self.items).into_iter().for_each(|t| self.net.recycle(t));
    }
}

impl FastNet {
    pub fn new(w: &VggWeights, precision: super::Precision) -> Self {
        let convs = w
            .convs
            .iter()
            .map(|c| FastConv {
                bf16: precision == super::Precision::Bf16,
                cin: c.keys.in_channels,
                cout: c.keys.out_channels,
                pool_after: c.keys.pool_after,
                raw: Mutex::new(Some((c.weight.clone(), c.bias.clone()))),
                fwd: OnceLock::new(),
                bwd: OnceLock::new(),
            })
            .collect();
        FastNet { preprocess: w.preprocess, convs, pool: Mutex::new(Vec::new()) }
    }

    /// A buffer of that shape from the pool (image region holds stale values, border is zero).
    /// Every buffer given back must have come from here, or the pool would grow each call.
    fn take(&self, h: usize, w: usize, c: usize) -> Act {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|a| (a.h, a.w, a.c) == (h, w, c)) {
            Some(i) => pool.swap_remove(i),
            None => Act::zeros(h, w, c),
        }
    }

    /// Frees every pooled buffer: after a forward at a size no later call uses (the painting's),
    /// its buffers would otherwise stay allocated for the rest of the run.
    pub fn release_buffers(&self) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn give(&self, a: Act) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(a);
    }

    fn recycle(&self, t: Trace) {
        self.give(t.input);
        t.a.into_iter().for_each(|a| self.give(a));
        t.pooled.into_iter().flatten().for_each(|a| self.give(a));
        t.z.into_values().for_each(|a| self.give(a));
    }

    /// Features at `picks` for an RGB `image` `[b, 3, h, w]` in [0, 1], as tensors on `device`
    /// (`[b, c, h, w]` views of channels-last data: no transposing copy). `last` is the deepest
    /// picked conv.
    pub fn features(&self, image: &Tensor, picks: &[Pick], last: usize, device: &Device) -> Result<Vec<Tensor>> {
        Ok(self.run(image, picks, last, device, false)?.0)
    }

    /// Like [`FastNet::features`], with the traces for the backward.
    pub fn forward_kept(&self, image: &Tensor, picks: &[Pick], last: usize, device: &Device) -> Result<(Vec<Tensor>, FastTrace<'_>)> {
        let (features, items) = self.run(image, picks, last, device, true)?;
        Ok((features, FastTrace { net: self, picks: picks.to_vec(), items }))
    }

    /// The forward of each image of the batch; traces are kept with `keep`, else recycled at once.
    fn run(&self, image: &Tensor, picks: &[Pick], last: usize, device: &Device, keep: bool) -> Result<(Vec<Tensor>, Vec<Trace>)> {
        let (b, _, h, w) = image.dims4()?;
        let rgb = image.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let keep_z: Vec<usize> = picks.iter().filter(|p| p.kind == LayerKind::Conv).map(|p| p.conv).collect();
        let mut per_pick: Vec<Vec<f32>> = vec![Vec::new(); picks.len()];
        let mut shapes = vec![(0, 0, 0); picks.len()];
        let mut items = Vec::new();
        for i in 0..b {
            let x = self.input(&rgb[i * 3 * h * w..][..3 * h * w], h, w);
            let t = self.forward(x, last, &keep_z);
            for (j, p) in picks.iter().enumerate() {
                let a = if p.kind == LayerKind::Relu { &t.a[p.conv] } else { &t.z[&p.conv] };
                per_pick[j].extend(a.to_hwc());
                shapes[j] = (a.c, a.h, a.w);
            }
            if keep {
                items.push(t);
            } else {
                self.recycle(t);
            }
        }
        let features = per_pick
            .into_iter()
            .zip(shapes)
            .map(|(v, (c, hh, ww))| Ok(Tensor::from_vec(v, (b, hh, ww, c), device)?.permute((0, 3, 1, 2))?))
            .collect::<Result<Vec<_>>>()?;
        Ok((features, items))
    }

    /// Preprocesses one RGB image `[3, h, w]` in [0, 1] into the network's input.
    fn input(&self, rgb: &[f32], h: usize, w: usize) -> Act {
        let mut x = self.take(h, w, 3);
        let map = self.preprocess.channel_map();
        for y in 0..h {
            for xx in 0..w {
                let o = x.at(y, xx);
                for (c, &(src, scale, offset)) in map.iter().enumerate() {
                    x.data[o + c] = rgb[(src * h + y) * w + xx] * scale + offset;
                }
            }
        }
        x
    }

    /// Runs convs `0..=last`; `keep_z` lists convs whose pre-ReLU output must be kept.
    fn forward(&self, input: Act, last: usize, keep_z: &[usize]) -> Trace {
        let mut t = Trace { input, a: Vec::new(), pooled: Vec::new(), z: HashMap::new() };
        for k in 0..=last {
            let conv = &self.convs[k];
            let x = if k == 0 { &t.input } else { t.pooled[k - 1].as_ref().unwrap_or(&t.a[k - 1]) };
            let (h, w) = (x.h, x.w);
            debug_assert_eq!(x.c, conv.cin);
            let mut a = self.take(h, w, conv.cout);
            if keep_z.contains(&k) {
                let mut z = self.take(h, w, conv.cout);
                conv.fwd().forward(x, &mut z, false);
                a.data.iter_mut().zip(&z.data).for_each(|(a, z)| *a = z.max(0.0));
                t.z.insert(k, z);
            } else {
                timed(format_args!("fwd conv{k} {}x{} {}->{}", h, w, conv.cin, conv.cout), || conv.fwd().forward(x, &mut a, true));
            }
            let pooled = (conv.pool_after && k < last).then(|| {
                let mut p = self.take(h / 2, w / 2, conv.cout);
                maxpool::maxpool(&a, &mut p);
                p
            });
            t.a.push(a);
            t.pooled.push(pooled);
        }
        t
    }

    /// Backward from `seeds` (per conv index: gradients at its ReLU output or pre-ReLU output) to
    /// the network input (`[h, w, 3]`, preprocessed space).
    fn backward(&self, t: &Trace, seeds: Vec<(usize, LayerKind, Act)>) -> Act {
        let last = t.a.len() - 1;
        let mut by_layer: HashMap<usize, Vec<(LayerKind, Act)>> = HashMap::new();
        for (k, kind, s) in seeds {
            by_layer.entry(k).or_default().push((kind, s));
        }
        // g: dL/d(a[k]) flowing down, None while nothing above contributed; with `masked` it is
        // already through the ReLU (dL/dz[k]: the pool or conv below fused the mask in).
        let mut g: Option<(Act, bool)> = None;
        for k in (0..=last).rev() {
            let conv = &self.convs[k];
            let a = &t.a[k];
            let Some(gz) = self.grad_at_z(g.take(), by_layer.remove(&k).unwrap_or_default(), a) else {
                // Only possible above every seed: nothing to propagate yet.
                continue;
            };
            let x_is_pooled = k > 0 && self.convs[k - 1].pool_after;
            let (xh, xw) = if k == 0 {
                (t.input.h, t.input.w)
            } else if x_is_pooled {
                (t.a[k - 1].h / 2, t.a[k - 1].w / 2)
            } else {
                (t.a[k - 1].h, t.a[k - 1].w)
            };
            let mut dx = self.take(xh, xw, conv.cin);
            // Below a conv without a pool, its ReLU backward is fused into this conv's output.
            let mask = (k > 0 && !x_is_pooled).then(|| &t.a[k - 1]);
            timed(format_args!("bwd conv{k} {}x{} {}->{}", a.h, a.w, conv.cout, conv.cin), || match (conv.bwd(), mask) {
                (ConvImpl::Wino(c), m) => c.forward_masked(&gz, &mut dx, false, m),
                (c, None) => c.forward(&gz, &mut dx, false),
                (c, Some(m)) => {
                    c.forward(&gz, &mut dx, false);
                    elementwise::relu_backward(&mut dx.data, &m.data);
                }
            });
            self.give(gz);
            if k == 0 {
                return dx;
            }
            g = Some(if x_is_pooled {
                let prev = &t.a[k - 1];
                let mut gp = self.take(prev.h, prev.w, prev.c);
                timed(format_args!("bwd pool{k}"), || maxpool::maxpool_relu_backward(prev, &dx, &mut gp));
                self.give(dx);
                (gp, true)
            } else {
                (dx, mask.is_some())
            });
        }
        // No seed at all: zero gradient.
        let mut z = self.take(t.input.h, t.input.w, 3);
        z.data.fill(0.0);
        z
    }

    /// dL/dz at one conv: what flows down from above (`g`, as in [`Self::backward`]) taken
    /// through the conv's ReLU (`a` its output), plus the `seeds` entering at its ReLU or
    /// pre-ReLU output. `None` where neither exists yet.
    fn grad_at_z(&self, mut g: Option<(Act, bool)>, seeds: Vec<(LayerKind, Act)>, a: &Act) -> Option<Act> {
        let mut seed_z: Option<Act> = None;
        for (kind, d) in seeds {
            match (kind, g.as_mut()) {
                (LayerKind::Conv, _) => Self::add_seed(&mut seed_z, d),
                (LayerKind::Relu, None) => g = Some((d, false)),
                (LayerKind::Relu, Some((ga, false))) => {
                    elementwise::add(&mut ga.data, &d.data);
                    self.give(d);
                }
                (LayerKind::Relu, Some((ga, true))) => {
                    elementwise::add_relu_backward(&mut ga.data, &d.data, &a.data);
                    self.give(d);
                }
            }
        }
        // dL/dz = dL/da ⊙ [a > 0] + the seed at z.
        match (g, seed_z) {
            (Some((mut ga, masked)), sz) => {
                if !masked {
                    elementwise::relu_backward(&mut ga.data, &a.data);
                }
                if let Some(sz) = sz {
                    elementwise::add(&mut ga.data, &sz.data);
                    self.give(sz);
                }
                Some(ga)
            }
            (None, sz) => sz,
        }
    }

    /// Adds the gradient `d` entering at a layer to what already flows there.
    fn add_seed(slot: &mut Option<Act>, d: Act) {
        match slot.as_mut() {
            Some(g) => g.data.iter_mut().zip(&d.data).for_each(|(g, d)| *g += d),
            None => *slot = Some(d),
        }
    }

    /// Gradient in preprocessed space `[h, w, 3]` → gradient w.r.t. the RGB image, `[3, h, w]`.
    fn input_grad_to_rgb(&self, d: &Act) -> Vec<f32> {
        let (h, w) = (d.h, d.w);
        let mut out = vec![0.0; 3 * h * w];
        for (c, &(src, scale, _)) in self.preprocess.channel_map().iter().enumerate() {
            for y in 0..h {
                for x in 0..w {
                    out[(src * h + y) * w + x] += d.data[d.at(y, x) + c] * scale;
                }
            }
        }
        out
    }
}
