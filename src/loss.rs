//! The objective of one step: Gatys' style loss against the painting's Gram
//! matrices, with a moving average of Gram matrices across views, plus a
//! content loss. The network itself (features, Grams, the gradient to the
//! image) is [`crate::vgg`]; this module decides WHAT is compared.
//!
//! - Style: per layer `l` of [`STYLE_LAYERS`](crate::vgg::STYLE_LAYERS),
//!   `style_weight / (L · ‖T_l‖²) · ‖G_used,l − T_l‖²`, with `T_l` the
//!   painting's Gram and `G = F Fᵀ / (C·H·W)`. Dividing by `‖T_l‖²` makes
//!   every layer a relative error of about the same size, so no layer's
//!   activation scale drowns the others.
//! - Memory across views: `G_used = G_now + stopgrad(Ĝ − G_now)`, `Ĝ` the
//!   bias-corrected exponential moving average of `G_now` (decay 0.95 by
//!   default): `Ĝ_t = EMA_t / (1 − decay^t)`. The reference started its EMA
//!   at zero without the correction, so its first ~45 steps compared a Gram
//!   that was too small.
//! - Content: `content_weight / ‖T_c‖² · ‖F_c(learned) − T_c‖²` at
//!   [`CONTENT_LAYER`](crate::vgg::CONTENT_LAYER), `T_c = F_c(content image)`.

use candle_core::Tensor;

use crate::vgg::{self, ContentTerm, Layer, Objective, StyleTerm, Vgg};

/// The bias-corrected moving average of each style layer's Gram matrix.
#[derive(Debug)]
pub struct GramMemory {
    pub decay: f32,
    /// Uncorrected averages, one per style layer (None before the first view).
    ema: Vec<Option<Tensor>>,
    /// Views folded in so far, per layer.
    count: Vec<i32>,
}

impl GramMemory {
    pub fn new(layers: usize, decay: f32) -> GramMemory {
        GramMemory { decay, ema: vec![None; layers], count: vec![0; layers] }
    }

    /// Folds in this view's Gram of layer `l` and returns the Gram to use:
    /// the bias-corrected average (with decay 0, just `g_now`).
    pub fn update(&mut self, l: usize, g_now: &Tensor) -> candle_core::Result<Tensor> {
        let d = self.decay as f64;
        let next = match &self.ema[l] {
            Some(e) => ((e * d)? + (g_now * (1.0 - d))?)?,
            None => (g_now * (1.0 - d))?,
        };
        self.count[l] += 1;
        let corrected = (&next / (1.0 - d.powi(self.count[l])))?;
        self.ema[l] = Some(next);
        Ok(corrected)
    }
}

/// Style targets: the painting's Gram matrices and their normalized weights.
#[derive(Debug, Clone)]
pub struct StyleTargets {
    pub terms: Vec<StyleTerm>,
}

impl StyleTargets {
    /// Grams of `painting` (`[1, 3, H, W]` RGB in [0, 1]) at the style layers.
    pub fn new(vgg: &Vgg, painting: &Tensor, style_weight: f32) -> vgg::Result<StyleTargets> {
        let layers = vgg::layers(&vgg::STYLE_LAYERS)?;
        let grams = vgg.grams(painting, &layers)?;
        let n = layers.len() as f32;
        let terms = layers
            .into_iter()
            .zip(grams)
            .map(|(layer, g)| {
                let target = g.get(0)?;
                let norm = target.sqr()?.sum_all()?.to_scalar::<f32>()?.max(1e-12);
                Ok(StyleTerm { layer, target, weight: style_weight / (n * norm) })
            })
            .collect::<vgg::Result<Vec<_>>>()?;
        Ok(StyleTargets { terms })
    }
}

/// The objective for one view: the style targets, and the content term
/// when a content image (`[1, 3, H, W]`) exists.
pub fn objective(vgg: &Vgg, style: &StyleTargets, content: Option<&Tensor>, content_weight: f32) -> vgg::Result<Objective> {
    let content = match content {
        Some(img) if content_weight > 0.0 => {
            let layer: Layer = vgg::CONTENT_LAYER.parse()?;
            let target = vgg.features(img, &[layer])?.remove(0);
            let norm = target.sqr()?.sum_all()?.to_scalar::<f32>()?.max(1e-12);
            Some(ContentTerm { layer, target, weight: content_weight / norm })
        }
        _ => None,
    };
    Ok(Objective { style: style.terms.clone(), content })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bias_corrected_average_is_exact_from_the_first_view() {
        let mut m = GramMemory::new(1, 0.95);
        let g = Tensor::new(&[[2.0f32, 1.0], [1.0, 3.0]], &Device::Cpu).unwrap();
        // A constant Gram averages to itself at every step (no warm-up bias).
        for _ in 0..5 {
            let used = m.update(0, &g).unwrap();
            let diff = (used - &g).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "{diff}");
        }
        // Then it follows a change gradually: one new view moves it by 1 − 0.95 of the
        // way, renormalized by (1 − 0.95⁶).
        let used = m.update(0, &(&g * 2.0).unwrap()).unwrap();
        let w_new = 0.05 / (1.0 - 0.95f32.powi(6));
        let expect = 2.0 * (1.0 - w_new) + 4.0 * w_new;
        let got = used.get(0).unwrap().get(0).unwrap().to_scalar::<f32>().unwrap();
        assert!((got - expect).abs() < 1e-4, "{got} vs {expect}");
    }

    #[test]
    fn zero_decay_is_the_current_view() {
        let mut m = GramMemory::new(2, 0.0);
        let g = Tensor::new(&[[1.0f32]], &Device::Cpu).unwrap();
        m.update(1, &g).unwrap();
        let h = Tensor::new(&[[5.0f32]], &Device::Cpu).unwrap();
        assert_eq!(m.update(1, &h).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), [5.0]);
    }
}
