//! The options of a run ([`Config`]) and its schedules: the view size, the
//! learning rate and the content weight of each step.

use crate::camera::CameraRange;
use crate::loss::LossKind;
use crate::raster::ViewSize;
use crate::texture::ParamKind;

/// Everything the loop needs to know. See the CLI for units and defaults.
#[derive(Clone, Debug)]
pub struct Config {
    pub steps: usize,
    pub texture_size: u32,
    pub render_size: u32,
    /// Views start this size and grow to `render_size` over the run
    /// (coarse to fine: early steps shape large strokes cheaply).
    pub start_render_size: u32,
    /// Supersampling per axis of the rendered views (1 = none).
    pub samples: u32,
    /// Mip-mapped lookups (pyramid only): minified samples read coarser levels.
    pub mip: bool,
    pub style_weight: f32,
    pub content_weight: f32,
    /// The layers the content loss compares (each a relative error, averaged).
    pub content_layers: Vec<crate::vgg::Layer>,
    /// Per style layer ([`crate::loss::STYLE_LAYERS`]), a factor on its weight (mean 1).
    pub style_layer_weights: [f32; 5],
    pub gram_decay: f32,
    /// The losses: Gram (+ content), or also NNFM with weight `nnfm_weight`.
    pub loss: LossKind,
    pub nnfm_weight: f32,
    pub param: ParamKind,
    pub lr: f64,
    /// The learning rate falls from `lr` to `lr · lr_end` on a cosine over the run.
    pub lr_end: f64,
    /// The content weight falls linearly to `content_weight · content_end` over the run.
    pub content_end: f32,
    pub seed: u64,
    pub background: [f32; 3],
    pub cameras: CameraRange,
    /// Held-out views on which the style loss is measured before and after.
    pub eval_views: usize,
    /// `--keep-colors`: the painting's colours matched to the object's first ([`super::colors`]).
    pub keep_colors: bool,
    /// `--protect`: texels of one material kept as they were ([`super::protect`]).
    pub protect: Option<super::Protect>,
}

/// Where `step` (1-based) lies in a run of `steps`: 0 at the first, 1 at the last.
fn progress(step: usize, steps: usize) -> f64 {
    if steps <= 1 {
        1.0
    } else {
        (step - 1) as f64 / (steps - 1) as f64
    }
}

impl Config {
    /// The view size of `step`: `start_render_size` rising linearly to `render_size`,
    /// in multiples of 32 pixels (the network's buffers are reused per size).
    pub fn render_size_at(&self, step: usize) -> u32 {
        let (a, b) = (self.start_render_size as f64, self.render_size as f64);
        if a == b || step >= self.steps {
            return self.render_size;
        }
        let s = a + (b - a) * progress(step, self.steps);
        ((s / 32.0).round() as u32 * 32).clamp(a.min(b) as u32, a.max(b) as u32)
    }

    /// The view of `step`: [`Config::render_size_at`] square, `samples` per axis.
    pub fn view_size_at(&self, step: usize) -> ViewSize {
        let s = self.render_size_at(step);
        ViewSize {
            width: s,
            height: s,
            samples: self.samples,
        }
    }

    /// The learning rate of `step` (cosine from `lr` to `lr · lr_end`).
    pub fn lr_at(&self, step: usize) -> f64 {
        let c = 0.5 * (1.0 + (std::f64::consts::PI * progress(step, self.steps)).cos());
        self.lr * (self.lr_end + (1.0 - self.lr_end) * c)
    }

    /// The content weight of `step` (linear from `content_weight` to `content_weight · content_end`).
    pub fn content_weight_at(&self, step: usize) -> f32 {
        let t = progress(step, self.steps) as f32;
        self.content_weight * (1.0 + (self.content_end - 1.0) * t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(steps: usize) -> Config {
        Config {
            steps,
            texture_size: 64,
            render_size: 256,
            start_render_size: 128,
            samples: 1,
            mip: true,
            style_weight: 1.0,
            content_weight: 0.5,
            content_layers: vec![crate::loss::CONTENT_LAYER.parse().unwrap()],
            style_layer_weights: [1.0; 5],
            gram_decay: 0.95,
            loss: LossKind::Gram,
            nnfm_weight: 1.0,
            param: ParamKind::Fft,
            lr: 0.1,
            lr_end: 0.1,
            content_end: 0.2,
            seed: 0,
            background: [0.0; 3],
            cameras: CameraRange::default(),
            eval_views: 1,
            keep_colors: false,
            protect: None,
        }
    }

    #[test]
    fn schedules_run_from_their_start_to_their_end() {
        let c = cfg(101);
        assert_eq!(
            (
                c.render_size_at(1),
                c.render_size_at(51),
                c.render_size_at(101)
            ),
            (128, 192, 256)
        );
        assert!((c.lr_at(1) - 0.1).abs() < 1e-12 && (c.lr_at(101) - 0.01).abs() < 1e-12);
        assert!((c.lr_at(51) - 0.055).abs() < 1e-9, "{}", c.lr_at(51));
        assert!(
            (c.content_weight_at(1) - 0.5).abs() < 1e-6
                && (c.content_weight_at(101) - 0.1).abs() < 1e-6
        );
        // Sizes only ever rise, in steps of 32.
        let sizes: Vec<u32> = (1..=101).map(|s| c.render_size_at(s)).collect();
        assert!(sizes.windows(2).all(|w| w[0] <= w[1]) && sizes.iter().all(|s| s % 32 == 0));
        // A one-step run is at its end.
        assert_eq!(cfg(1).render_size_at(1), 256);
        // The last step is at --render-size even when that is not a multiple of 32.
        let odd = Config {
            render_size: 100,
            start_render_size: 64,
            ..cfg(10)
        };
        assert_eq!((odd.render_size_at(1), odd.render_size_at(10)), (64, 100));
    }

    #[test]
    fn constant_schedules_are_the_plain_values() {
        let c = Config {
            start_render_size: 256,
            lr_end: 1.0,
            content_end: 1.0,
            ..cfg(50)
        };
        for s in [1, 17, 50] {
            assert_eq!(c.render_size_at(s), 256);
            assert_eq!(c.lr_at(s), 0.1);
            assert_eq!(c.content_weight_at(s), 0.5);
        }
    }
}
