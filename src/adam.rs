//! Adam on the texture parameters, with its state in plain `f32` buffers so a
//! checkpoint can save and restore it exactly.
//!
//! candle-nn's `AdamW` keeps its moments private, so a run could not be
//! resumed bit for bit. This is the same update, written element by element in
//! the same order of floating-point operations as candle's tensor version
//! (`x * mul + add` for every scalar affine), so both give identical bits; a
//! test holds them to it. It runs as one fused pass over each parameter
//! instead of eleven tensor ops, in parallel chunks (element-wise, so the
//! result does not depend on the thread count).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use rayon::prelude::*;

/// Adam's hyper-parameters; the defaults are the usual ones (and candle's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamParams {
    fn default() -> AdamParams {
        AdamParams {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Everything Adam carries from one step to the next.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    /// Steps taken so far (for the bias correction).
    pub step: u64,
    /// First and second moments, one buffer per parameter, in `vars` order.
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

/// Adam over a fixed list of `f32` variables (no weight decay).
pub struct Adam {
    vars: Vec<Var>,
    pub params: AdamParams,
    state: AdamState,
}

/// Elements per parallel chunk: large enough to amortize the fork.
const CHUNK: usize = 1 << 15;

impl Adam {
    pub fn new(vars: Vec<Var>, params: AdamParams) -> Adam {
        let zeros = || vars.iter().map(|v| crate::hugepages::zeroed(v.elem_count())).collect();
        let state = AdamState {
            step: 0,
            m: zeros(),
            v: zeros(),
        };
        Adam {
            vars,
            params,
            state,
        }
    }

    pub fn state(&self) -> &AdamState {
        &self.state
    }

    /// Replaces the state, e.g. from a checkpoint. The buffer sizes must match the variables.
    pub fn set_state(&mut self, state: AdamState) -> Result<()> {
        let fits = |b: &[Vec<f32>]| {
            b.len() == self.vars.len()
                && b.iter()
                    .zip(&self.vars)
                    .all(|(b, v)| b.len() == v.elem_count())
        };
        if !(fits(&state.m) && fits(&state.v)) {
            candle_core::bail!("adam: the saved state does not match the parameters' sizes");
        }
        self.state = state;
        Ok(())
    }

    /// Counts a step and returns its per-element update.
    fn begin_step(&mut self) -> Update {
        self.state.step += 1;
        let p = self.params;
        let t = self.state.step as i32;
        // The scalars as candle casts them (f64 → f32 at the op).
        Update {
            b1: p.beta1 as f32,
            one_b1: (1.0 - p.beta1) as f32,
            b2: p.beta2 as f32,
            one_b2: (1.0 - p.beta2) as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(t))) as f32,
            eps: p.eps as f32,
            lr: p.lr as f32,
        }
    }

    /// One step on every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let s = self.begin_step();
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut theta = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let (m, v) = (&mut self.state.m[i], &mut self.state.v[i]);
            theta
                .par_chunks_mut(CHUNK)
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .zip(g.par_chunks(CHUNK))
                .for_each(|(((th, m), v), g)| s.apply_all(th, m, v, g));
            var.set(&Tensor::from_vec(theta, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    /// One lazy step (PyTorch's `SparseAdam`) on variable `i`, the only
    /// variable that takes part in this step: `visit` gets its values (in
    /// place, no copy) and moments as flat slices, and the update to apply to
    /// each element that has a gradient. Elements it skips keep their value
    /// and moments, where [`Adam::step`] would still move them by their
    /// momentum; that is what makes the step's cost follow the gradient's
    /// support instead of the parameter count.
    pub fn step_lazy(
        &mut self,
        i: usize,
        visit: impl FnOnce(&mut [f32], &mut [f32], &mut [f32], &Update) + Send,
    ) -> Result<()> {
        let s = self.begin_step();
        let (m, v) = (&mut self.state.m[i], &mut self.state.v[i]);
        let op = InPlace(std::sync::Mutex::new(Some(move |theta: &mut [f32]| {
            visit(theta, m, v, &s)
        })));
        self.vars[i].as_tensor().inplace_op1(&op)
    }
}

/// A closure run once on a CPU `f32` tensor's storage, in place.
struct InPlace<F>(std::sync::Mutex<Option<F>>);

impl<F: FnOnce(&mut [f32]) + Send> candle_core::InplaceOp1 for InPlace<F> {
    fn name(&self) -> &'static str {
        "adam-in-place"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<()> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("adam: expected f32 parameters")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("adam: parameters must be contiguous")
        };
        let f = self
            .0
            .lock()
            .map_err(|_| candle_core::Error::Msg("adam: poisoned".into()))?
            .take();
        if let Some(f) = f {
            f(&mut data[start..end]);
        }
        Ok(())
    }
}

/// One step's scalars: [`Update::apply`] is Adam's update of one element.
#[derive(Clone, Copy)]
pub struct Update {
    b1: f32,
    one_b1: f32,
    b2: f32,
    one_b2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
    lr: f32,
}

impl Update {
    /// candle's AdamW step for one element, op for op (weight decay 0: the
    /// `θ·(1 − lr·λ)` factor is `θ·1 + 0`, which `+ 0.0` reproduces even for −0).
    #[inline(always)]
    pub fn apply(&self, th: &mut f32, m: &mut f32, v: &mut f32, g: f32) {
        let s = self;
        let nm = (*m * s.b1 + 0.0) + (g * s.one_b1 + 0.0);
        let nv = (*v * s.b2 + 0.0) + ((g * g) * s.one_b2 + 0.0);
        let m_hat = nm * s.scale_m + 0.0;
        let v_hat = nv * s.scale_v + 0.0;
        let adjusted = m_hat / (v_hat.sqrt() * 1.0 + s.eps);
        *th = (*th * 1.0 + 0.0) - (adjusted * s.lr + 0.0);
        *m = nm;
        *v = nv;
    }

    /// [`Update::apply`] to each element of equal-length slices, vectorized
    /// to the CPU's widest lanes (the same bits: IEEE square root and
    /// division are exact in every lane).
    pub fn apply_all(&self, th: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        apply_all(self, th, m, v, g)
    }
}

#[inline(always)]
fn apply_all_body(s: &Update, th: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    let n = th.len();
    let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
    for i in 0..n {
        s.apply(&mut th[i], &mut m[i], &mut v[i], g[i]);
    }
}

crate::simd::multiversion!(fn apply_all(s: &Update, th: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) => apply_all_body);

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    /// A loss whose gradient varies with θ, so the moments see changing input.
    fn loss(x: &Var) -> Result<Tensor> {
        (x.as_tensor().sqr()? * 0.5)?.sin()?.sum_all()
    }

    #[test]
    fn same_bits_as_candle_adamw() -> Result<()> {
        let dev = Device::Cpu;
        let init: Vec<f32> = (0..(3 * CHUNK + 17))
            .map(|i| ((i as f32) * 0.37).sin() * 3.0)
            .collect();
        let n = init.len();
        let (a, b) = (
            Var::from_vec(init.clone(), n, &dev)?,
            Var::from_vec(init, n, &dev)?,
        );
        let params = AdamParams {
            lr: 0.05,
            ..Default::default()
        };
        let mut ours = Adam::new(vec![a.clone()], params);
        let mut theirs = AdamW::new(
            vec![b.clone()],
            ParamsAdamW {
                lr: 0.05,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        for _ in 0..7 {
            ours.step(&loss(&a)?.backward()?)?;
            theirs.step(&loss(&b)?.backward()?)?;
        }
        let (x, y) = (
            a.as_tensor().to_vec1::<f32>()?,
            b.as_tensor().to_vec1::<f32>()?,
        );
        let differ = x
            .iter()
            .zip(&y)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "{differ} of {n} parameters differ from candle's AdamW"
        );
        assert_ne!(
            x[5],
            ((5.0f32) * 0.37).sin() * 3.0,
            "the step moved nothing"
        );
        Ok(())
    }

    #[test]
    fn a_lazy_step_moves_only_what_it_visits_and_matches_a_dense_step_there() -> Result<()> {
        let dev = Device::Cpu;
        let init: Vec<f32> = (0..64).map(|i| (i as f32 * 0.3).sin()).collect();
        let (a, b) = (
            Var::from_vec(init.clone(), 64, &dev)?,
            Var::from_vec(init.clone(), 64, &dev)?,
        );
        let params = AdamParams {
            lr: 0.05,
            ..Default::default()
        };
        let (mut dense, mut lazy) = (
            Adam::new(vec![a.clone()], params),
            Adam::new(vec![b.clone()], params),
        );
        for step in 0..3 {
            let g = loss(&a)?.backward()?;
            let grad = g.get(&a).unwrap().to_vec1::<f32>()?;
            dense.step(&g)?;
            // The lazy step sees the same gradient but visits only even elements.
            lazy.step_lazy(0, |th, m, v, u| {
                for i in (0..th.len()).step_by(2) {
                    u.apply(&mut th[i], &mut m[i], &mut v[i], grad[i]);
                }
            })?;
            let (x, y) = (
                a.as_tensor().to_vec1::<f32>()?,
                b.as_tensor().to_vec1::<f32>()?,
            );
            for i in 0..64 {
                if i % 2 == 1 {
                    assert_eq!(y[i], init[i], "step {step}: element {i} was not visited");
                } else {
                    // Same values, gradients and moments there: same bits.
                    assert_eq!(x[i].to_bits(), y[i].to_bits(), "element {i}");
                }
            }
            // Keep the dense run on the lazy run's values so the gradients agree.
            a.set(b.as_tensor())?;
        }
        Ok(())
    }

    #[test]
    fn restored_state_continues_identically() -> Result<()> {
        let dev = Device::Cpu;
        let init: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.1).cos()).collect();
        let run = |split: bool| -> Result<Vec<f32>> {
            let x = Var::from_vec(init.clone(), init.len(), &dev)?;
            let params = AdamParams {
                lr: 0.1,
                ..Default::default()
            };
            let mut opt = Adam::new(vec![x.clone()], params);
            for step in 0..6 {
                if split && step == 3 {
                    // A fresh optimizer and variable from the saved values.
                    let saved = (opt.state().clone(), x.as_tensor().to_vec1::<f32>()?);
                    let y = Var::from_vec(saved.1, init.len(), &dev)?;
                    opt = Adam::new(vec![y.clone()], params);
                    opt.set_state(saved.0)?;
                    for _ in 3..6 {
                        opt.step(&loss(&y)?.backward()?)?;
                    }
                    return y.as_tensor().to_vec1::<f32>();
                }
                opt.step(&loss(&x)?.backward()?)?;
            }
            x.as_tensor().to_vec1::<f32>()
        };
        assert_eq!(run(false)?, run(true)?);
        let x = Var::from_vec(init.clone(), init.len(), &dev)?;
        let mut opt = Adam::new(vec![x], AdamParams::default());
        assert!(opt
            .set_state(AdamState {
                step: 1,
                m: vec![vec![0.0; 3]],
                v: vec![vec![0.0; 3]]
            })
            .is_err());
        Ok(())
    }
}
