//! Pixel parameterization: one logit per texel and channel, texture = sigmoid(θ),
//! θ ~ N(0, 0.01²).

use candle_core::{Device, Result, Tensor, Var};

pub struct Pixel {
    /// `[materials, 3, height, width]`
    theta: Var,
}

impl Pixel {
    pub fn new(materials: usize, height: usize, width: usize, seed: u64) -> Result<Pixel> {
        let n = materials * 3 * height * width;
        let theta = Var::from_vec(super::normal(n, super::INIT_SIGMA, seed), (materials, 3, height, width), &Device::Cpu)?;
        Ok(Pixel { theta })
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![self.theta.clone()]
    }

    pub fn texture(&self) -> Result<Tensor> {
        candle_nn::ops::sigmoid(self.theta.as_tensor())
    }
}
