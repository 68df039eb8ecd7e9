//! The learned texture and how it is parameterized (the Distill article's
//! point: the same loss optimized through another parameterization gives a
//! different, often better, result).
//!
//! [`TextureParam::texture`] gives `[materials, 3, height, width]` RGB in
//! (0, 1), rows top-down (see [`crate::conventions`]), as a candle tensor on
//! the autograd tape, so the gradient of anything computed from it reaches
//! the parameters ([`TextureParam::vars`]). One variant per parameterization,
//! each in its own file and owning its state:
//! - [`pixel`]: texture = sigmoid(θ), θ ~ N(0, 0.01²).
//! - [`fft`]: θ is a half spectrum, inverse real FFT ([`irfft`]), decorrelated
//!   colour, sigmoid — lucid's constants.
//! - [`pyramid`]: θ is a Laplacian pyramid (full size down to 8 texels),
//!   summed after bilinear upsampling, decorrelated colour, sigmoid.
//!
//! The optimization step goes through [`TextureParam::view`] and
//! [`TextureParam::descend`]: the pyramid evaluates, differentiates and
//! updates only the texels a view reads (its cost grows with the view far
//! more than with the texture size); the others take the dense way, [`TextureParam::texture`]
//! on candle's tape (the FFT's every coefficient touches every texel anyway).

pub mod fft;
pub mod irfft;
pub mod pixel;
pub mod pyramid;

use std::sync::Arc;

use candle_core::{Result, Tensor, Var};

use crate::adam::Adam;
use crate::lookup::{self, LookupTable};

pub use crate::image_io::tensor_to_image;

/// Which parameterization (the `--param` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ParamKind {
    /// Fourier spectrum with decorrelated colour (the Distill article's).
    Fft,
    /// One logit per texel and channel.
    Pixel,
    /// Laplacian pyramid with decorrelated colour: large strokes first, no texel speckle.
    Pyramid,
}

impl ParamKind {
    /// The coarsest mip level that textures of `height × width` parameterized
    /// this way can serve to minified lookups; `None`: only the finest. The
    /// pyramid's levels are its mips; the others have none.
    pub fn max_mip_level(self, height: u32, width: u32) -> Option<u32> {
        (self == ParamKind::Pyramid)
            .then(|| pyramid::level_sizes(height as usize, width as usize).len() as u32 - 1)
    }
}

/// The parameters of all material textures, same size each.
pub enum TextureParam {
    Pixel(pixel::Pixel),
    Fft(fft::Fft),
    Pyramid(pyramid::Pyramid),
}

/// Standard deviation of the initial parameters (lucid's).
const INIT_SIGMA: f32 = 0.01;

/// Deterministic N(0, σ²) samples: a seed gives the same initial texture on
/// every machine.
fn normal(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::SplitMix(seed);
    let mut v = crate::hugepages::zeroed(n);
    v.iter_mut().for_each(|x| *x = rng.normal() * sigma);
    v
}

impl TextureParam {
    /// Fresh parameters for `materials` textures of `height × width`.
    pub fn new(
        kind: ParamKind,
        materials: usize,
        height: usize,
        width: usize,
        seed: u64,
    ) -> Result<TextureParam> {
        Ok(match kind {
            ParamKind::Pixel => {
                TextureParam::Pixel(pixel::Pixel::new(materials, height, width, seed)?)
            }
            ParamKind::Fft => TextureParam::Fft(fft::Fft::new(materials, height, width, seed)?),
            ParamKind::Pyramid => {
                TextureParam::Pyramid(pyramid::Pyramid::new(materials, height, width, seed)?)
            }
        })
    }

    /// The trainable variables.
    pub fn vars(&self) -> Vec<Var> {
        match self {
            TextureParam::Pixel(p) => p.vars(),
            TextureParam::Fft(p) => p.vars(),
            TextureParam::Pyramid(p) => p.vars(),
        }
    }

    /// The textures, `[materials, 3, height, width]`, values in (0, 1).
    pub fn texture(&self) -> Result<Tensor> {
        match self {
            TextureParam::Pixel(p) => p.texture(),
            TextureParam::Fft(p) => p.texture(),
            TextureParam::Pyramid(p) => p.texture(),
        }
    }
}

/// One view's learned image and what its backward pass needs.
pub struct LearnedView {
    /// `[1, 3, height, width]`, detached from any tape.
    pub image: Tensor,
    /// The dense parameterizations: the same image on candle's tape.
    taped: Option<Tensor>,
    table: Arc<LookupTable>,
}

impl TextureParam {
    /// The learned image of the view `table` describes, over `background`.
    pub fn view(&mut self, table: &Arc<LookupTable>, background: [f32; 3]) -> Result<LearnedView> {
        if let TextureParam::Pyramid(p) = self {
            let image = p.view(table, background)?;
            return Ok(LearnedView {
                image,
                taped: None,
                table: table.clone(),
            });
        }
        let taped = lookup::lookup(&self.texture()?, table, background)?;
        Ok(LearnedView {
            image: taped.detach(),
            taped: Some(taped),
            table: table.clone(),
        })
    }

    /// Takes `grad_image`, dL/d`view.image`, back to the parameters and makes
    /// one Adam step.
    pub fn descend(
        &mut self,
        view: &LearnedView,
        grad_image: &Tensor,
        adam: &mut Adam,
    ) -> Result<()> {
        match (self, &view.taped) {
            (TextureParam::Pyramid(p), _) => p.descend(&view.table, grad_image, adam),
            // The surrogate Σ learned ⊙ stopgrad(dL/dimage) has gradient Jᵀ · dL/dimage in θ.
            (_, Some(taped)) => adam.step(
                &(taped * grad_image.to_device(taped.device())?)?
                    .sum_all()?
                    .backward()?,
            ),
            (_, None) => {
                candle_core::bail!("texture: a dense parameterization's view lost its tape")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn initial_textures_are_near_grey_and_seeded() {
        for kind in [ParamKind::Pixel, ParamKind::Fft, ParamKind::Pyramid] {
            let p = TextureParam::new(kind, 2, 16, 16, 1).unwrap();
            let t = p.texture().unwrap();
            assert_eq!(t.dims(), [2, 3, 16, 16]);
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|&x| (x - 0.5).abs() < 0.2), "{kind:?}");
            let again = TextureParam::new(kind, 2, 16, 16, 1)
                .unwrap()
                .texture()
                .unwrap();
            assert_eq!(v, again.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
    }

    #[test]
    fn gradient_reaches_the_parameters_through_either_parameterization() {
        for kind in [ParamKind::Pixel, ParamKind::Fft, ParamKind::Pyramid] {
            let p = TextureParam::new(kind, 1, 8, 8, 2).unwrap();
            // Push the texture towards red: loss = Σ (t - red)².
            let red =
                Tensor::from_vec([1f32, 0.0, 0.0].to_vec(), (1, 3, 1, 1), &Device::Cpu).unwrap();
            let loss = |p: &TextureParam| {
                p.texture()
                    .unwrap()
                    .broadcast_sub(&red)
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
            };
            let before = loss(&p).to_scalar::<f32>().unwrap();
            let mut opt = <candle_nn::AdamW as candle_nn::Optimizer>::new(
                p.vars(),
                candle_nn::ParamsAdamW {
                    lr: 0.05,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            )
            .unwrap();
            for _ in 0..200 {
                let g = loss(&p).backward().unwrap();
                candle_nn::Optimizer::step(&mut opt, &g).unwrap();
            }
            let after = loss(&p).to_scalar::<f32>().unwrap();
            // The FFT parameterization moves the mean colour slowly by design
            // (its DC term gets no boost), hence the modest bound.
            assert!(after < 0.75 * before, "{kind:?}: {before} → {after}");
        }
    }
}
