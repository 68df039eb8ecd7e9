//! The optimization loop: every step one random view, the whole data path
//! forward, the gradient back into the texture parameters, one Adam step.
//!
//! ```text
//! camera → raster frame → lookup(texture) = learned image ─┐
//!                       → lookup(original) = content image ─┴→ VGG loss → dL/dimage
//! dL/dimage → (lookup)ᵀ → dL/dtexture → (parameterization)ᵀ → dL/dθ → Adam
//! ```
//!
//! Texture, raster frame and lookup live on the CPU; the network runs on
//! whatever device the [`Vgg`] was loaded on (CUDA/Metal builds), with the
//! view and its gradient copied across. The loss ([`crate::loss`], through
//! the network) returns `dL/dimage` directly; [`TextureParam::descend`]
//! carries it the rest of the way (sparsely for the pyramid, through candle's
//! autograd for the others).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

use crate::adam::{Adam, AdamParams, AdamState};
use crate::camera::{CameraRange, ViewSampler};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::image_io::{image_to_tensor, Image};
use crate::lookup::{self, LookupTable};
use crate::loss::{self, GramMemory, StyleTargets};
use crate::mesh::Mesh;
use crate::raster::{Raster, RasterMesh, ViewSize};
use crate::fill::fill_unseen_materials;
use crate::texture::{tensor_to_image, ParamKind, TextureParam};
use crate::vgg::Vgg;

/// Mixed into the seed for the held-out views, so they are not the first
/// training views.
const EVAL_SEED_SALT: u64 = 0xE7A1_5EED;

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
    pub gram_decay: f32,
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
}

/// Losses and where the time of one step went.
#[derive(Clone, Debug, Default)]
pub struct StepLog {
    pub step: usize,
    pub style: f32,
    pub content: f32,
    pub total: f32,
    /// Wall time since the loop started, in seconds.
    pub seconds: f64,
    /// The parameterization's forward and the learned view's gather.
    pub texture_ms: f64,
    pub raster_ms: f64,
    /// The view's lookup table and the content image.
    pub lookup_ms: f64,
    /// Style and content losses with their gradient in the learned view.
    pub network_ms: f64,
    /// The gradient from the view back to θ, and Adam.
    pub optimizer_ms: f64,
}

/// What a run produced.
pub struct Outcome {
    /// One texture per material, unseen texels filled.
    pub textures: Vec<Image>,
    /// Fraction of texels (all materials) that some view saw.
    pub seen_fraction: f64,
    pub log: Vec<StepLog>,
    /// Mean style loss on the held-out views, for the initial and the final texture.
    pub eval_before: f32,
    pub eval_after: f32,
    pub used_content: bool,
}

/// Peak memory of a run, estimated before it starts, in bytes: a fixed part
/// (weights, buffers), the network's activations (growing with the view's
/// samples) and ~100 bytes per texel and material (parameters, Adam's two
/// moments, the sparse step's level buffers, the whole texture at the start
/// and the end). Fitted to peak RSS of 3-step runs at textures 512²–2048² and
/// views 64²–512² on the 2-core CI machine (within ~10 %), refitted for the
/// texture part at 512²/2048²/4096² (966/1452/2679 MB measured, spot, views 256²).
pub fn estimated_peak_bytes(cfg: &Config, materials: usize) -> u64 {
    const FIXED: f64 = 870e6;
    const NETWORK_AT_256: f64 = 150e6;
    const PER_TEXEL: f64 = 100.0;
    // The network sees render_size² whatever the samples; the lookup table
    // holds 36 bytes per sample.
    const PER_SAMPLE: f64 = 36.0;
    let pixels = cfg.render_size as f64;
    let samples = (cfg.render_size * cfg.samples) as f64;
    let texels = (cfg.texture_size as f64).powi(2) * materials.max(1) as f64;
    (FIXED
        + NETWORK_AT_256 * (pixels / 256.0).powi(2)
        + PER_SAMPLE * samples * samples
        + PER_TEXEL * texels) as u64
}

/// The painting, scaled so its longer side is `max_side` pixels (never up).
pub fn prepare_style(img: &Image, max_side: u32) -> Image {
    img.clone().resized_to_fit(max_side)
}

/// The style loss of `texture` seen from each of `cams` (no memory: G_used = G_now).
fn eval_style(
    raster: &mut Raster,
    mesh: &Mesh,
    vgg: &Vgg,
    style: &StyleTargets,
    texture: &Tensor,
    cams: &[glam::Mat4],
    cfg: &Config,
) -> Result<f32> {
    let size = cfg.view_size_at(cfg.steps);
    let (m, _, th, tw) = texture.dims4()?;
    let obj = loss::Objective {
        style: style.terms.clone(),
        content: None,
    };
    let mut sum = 0.0;
    for vp in cams {
        let frame = raster.rasterize(*vp, size)?;
        let table = Arc::new(LookupTable::new(
            &frame,
            &mesh.tri_material,
            m,
            tw as u32,
            th as u32,
        ));
        let img = lookup::lookup(texture, &table, cfg.background)?.to_device(vgg.device())?;
        sum += obj.loss(vgg, &img)?.style;
    }
    Ok(sum / cams.len().max(1) as f32)
}

/// Runs the optimization. `on_step` sees every step's log as it happens and
/// may stop the run early (`ControlFlow::Break`): the outcome then holds the
/// texture as it was after that step, and `log` is shorter than `cfg.steps`.
pub fn optimize(
    mesh: &Mesh,
    raster: &mut Raster,
    vgg: &Vgg,
    painting: &Image,
    cfg: &Config,
    on_step: &mut dyn FnMut(&StepLog) -> ControlFlow<()>,
) -> Result<Outcome> {
    let mut none = Checkpoints::none();
    optimize_resumable(mesh, raster, vgg, painting, cfg, &mut none, on_step)
}

/// When to save the run's state, where, and the state to start from.
pub struct Checkpoints<'a> {
    /// Save every `every` steps (0: never) and whenever `on_step` stops the run.
    pub every: usize,
    /// The options and inputs of this run (see [`Checkpoint::fingerprint`]).
    pub fingerprint: String,
    /// Continue from this state instead of starting afresh; its fingerprint
    /// must be checked by the caller.
    pub resume: Option<Checkpoint>,
    /// Where a checkpoint goes; `None`: nowhere.
    pub save: Option<&'a mut dyn FnMut(&Checkpoint) -> Result<()>>,
}

impl Checkpoints<'_> {
    /// No checkpoints.
    pub fn none() -> Checkpoints<'static> {
        Checkpoints {
            every: 0,
            fingerprint: String::new(),
            resume: None,
            save: None,
        }
    }
}

/// The loop's state that a checkpoint holds; everything else is rebuilt
/// from the options, so a resumed run continues with the same bits.
struct State {
    param: TextureParam,
    adam: Adam,
    memory: GramMemory,
    views: ViewSampler,
    seen: Vec<bool>,
    log: Vec<StepLog>,
    eval_before: f32,
}

/// Columns of the log in a checkpoint, in [`StepLog`] field order.
const LOG_COLUMNS: usize = 10;

impl State {
    fn save(&self, fingerprint: &str) -> Result<Checkpoint> {
        let mut ck = Checkpoint {
            step: self.log.len() as u64,
            fingerprint: fingerprint.to_string(),
            ..Default::default()
        };
        ck.scalars.insert("views_rng".into(), self.views.state());
        ck.scalars
            .insert("adam_step".into(), self.adam.state().step);
        ck.scalars
            .insert("eval_before".into(), self.eval_before.to_bits() as u64);
        for (i, v) in self.param.vars().iter().enumerate() {
            ck.floats.insert(
                format!("param.{i}"),
                (
                    v.dims().to_vec(),
                    v.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                ),
            );
            let st = self.adam.state();
            ck.floats.insert(
                format!("adam_m.{i}"),
                (vec![st.m[i].len()], st.m[i].clone()),
            );
            ck.floats.insert(
                format!("adam_v.{i}"),
                (vec![st.v[i].len()], st.v[i].clone()),
            );
        }
        for (l, (n, shape, values)) in self.memory.state()?.into_iter().enumerate() {
            ck.scalars.insert(format!("gram_count.{l}"), n as u64);
            ck.floats.insert(format!("gram.{l}"), (shape, values));
        }
        ck.bytes
            .insert("seen".into(), self.seen.iter().map(|&b| b as u8).collect());
        let rows: Vec<f32> = self
            .log
            .iter()
            .flat_map(|l| {
                [
                    l.step as f64,
                    l.style as f64,
                    l.content as f64,
                    l.total as f64,
                    l.seconds,
                    l.texture_ms,
                    l.raster_ms,
                    l.lookup_ms,
                    l.network_ms,
                    l.optimizer_ms,
                ]
                .map(|x| x as f32)
            })
            .collect();
        ck.floats
            .insert("log".into(), (vec![self.log.len(), LOG_COLUMNS], rows));
        Ok(ck)
    }

    fn restore(&mut self, ck: &Checkpoint, device: &Device) -> Result<()> {
        let vars = self.param.vars();
        let mut m = Vec::new();
        let mut v = Vec::new();
        for (i, var) in vars.iter().enumerate() {
            let n = var.elem_count();
            var.set(&Tensor::from_slice(
                ck.floats(&format!("param.{i}"), n)?,
                var.shape(),
                var.device(),
            )?)?;
            // Into huge-page buffers, as fresh moments are (see `hugepages`).
            let moments = |name: &str| -> Result<Vec<f32>> {
                let mut b = crate::hugepages::zeroed(n);
                b.copy_from_slice(ck.floats(&format!("{name}.{i}"), n)?);
                Ok(b)
            };
            m.push(moments("adam_m")?);
            v.push(moments("adam_v")?);
        }
        self.adam.set_state(AdamState {
            step: ck.scalar("adam_step")?,
            m,
            v,
        })?;
        let layers = self.memory.state()?.len();
        let grams = (0..layers)
            .map(|l| {
                let (shape, values) = ck
                    .floats
                    .get(&format!("gram.{l}"))
                    .cloned()
                    .unwrap_or_default();
                Ok((ck.scalar(&format!("gram_count.{l}"))? as i32, shape, values))
            })
            .collect::<Result<Vec<_>>>()?;
        self.memory.set_state(grams, device)?;
        self.views.set_state(ck.scalar("views_rng")?);
        self.eval_before = f32::from_bits(ck.scalar("eval_before")? as u32);
        let seen = ck.bytes.get("seen").filter(|s| s.len() == self.seen.len());
        let seen = seen.ok_or_else(|| {
            CheckpointError("checkpoint: the seen-texel flags do not match the texture size".into())
        })?;
        self.seen = seen.iter().map(|&b| b != 0).collect();
        let steps = ck.step as usize;
        let rows = ck.floats("log", steps * LOG_COLUMNS)?;
        self.log = rows
            .chunks_exact(LOG_COLUMNS)
            .map(|r| StepLog {
                step: r[0] as usize,
                style: r[1],
                content: r[2],
                total: r[3],
                seconds: r[4] as f64,
                texture_ms: r[5] as f64,
                raster_ms: r[6] as f64,
                lookup_ms: r[7] as f64,
                network_ms: r[8] as f64,
                optimizer_ms: r[9] as f64,
            })
            .collect();
        Ok(())
    }
}

/// [`optimize`] with checkpoints: saved as [`Checkpoints`] says, and resumed
/// from `ck.resume` when given (the resumed run's result is bit-identical to
/// an uninterrupted one's on the same binary and machine).
pub fn optimize_resumable(
    mesh: &Mesh,
    raster: &mut Raster,
    vgg: &Vgg,
    painting: &Image,
    cfg: &Config,
    ck: &mut Checkpoints<'_>,
    on_step: &mut dyn FnMut(&StepLog) -> ControlFlow<()>,
) -> Result<Outcome> {
    let materials = mesh.materials.len();
    let (tw, th) = (cfg.texture_size, cfg.texture_size);
    let size = cfg.view_size_at(cfg.steps);
    let param = TextureParam::new(cfg.param, materials, th as usize, tw as usize, cfg.seed)?;
    let adam = Adam::new(
        param.vars(),
        AdamParams {
            lr: cfg.lr,
            ..Default::default()
        },
    );
    let painting = image_to_tensor(painting)?.to_device(vgg.device())?;
    let style = StyleTargets::new(vgg, &painting, cfg.style_weight).context("style targets")?;
    let memory = GramMemory::new(style.terms.len(), cfg.gram_decay);

    // The content image is the mesh seen with its own textures; materials
    // without one show their flat colour. No texture at all: style only.
    let used_content =
        mesh.materials.iter().any(|m| m.texture.is_some()) && cfg.content_weight > 0.0;
    let originals: Vec<Option<&Image>> =
        mesh.materials.iter().map(|m| m.texture.as_ref()).collect();
    let flat: Vec<[f32; 3]> = mesh.materials.iter().map(|m| m.diffuse).collect();

    let eval_cams: Vec<glam::Mat4> = {
        let mut s = ViewSampler::new(cfg.seed ^ EVAL_SEED_SALT, cfg.cameras);
        (0..cfg.eval_views)
            .map(|_| s.next_camera().view_proj(size.aspect()))
            .collect()
    };
    // The mip levels a view may read (None: every lookup reads the finest).
    let max_level = if cfg.mip {
        mip_levels(&cfg.param, th, tw)
    } else {
        None
    };
    let rmesh = max_level.map(|_| RasterMesh::from_mesh(mesh));
    let mut st = State {
        param,
        adam,
        memory,
        views: ViewSampler::new(cfg.seed, cfg.cameras),
        seen: vec![false; materials * (tw * th) as usize],
        log: Vec::with_capacity(cfg.steps),
        eval_before: 0.0,
    };
    match ck.resume.take() {
        Some(saved) => st.restore(&saved, vgg.device())?,
        None => {
            st.eval_before = eval_style(
                raster,
                mesh,
                vgg,
                &style,
                &st.param.texture()?,
                &eval_cams,
                cfg,
            )?
        }
    }
    // Wall time continues from where the saved run stopped.
    let offset = st.log.last().map_or(0.0, |l| l.seconds);
    let start = Instant::now();
    for step in st.log.len() + 1..=cfg.steps {
        let mut entry = StepLog {
            step,
            ..Default::default()
        };
        let t = Instant::now();
        let cam = st.views.next_camera();
        let size = cfg.view_size_at(step);
        let vp = cam.view_proj(size.aspect());
        let frame = raster
            .rasterize(vp, size)
            .with_context(|| format!("step {step}"))?;
        entry.raster_ms = ms(t);

        let t = Instant::now();
        let table = Arc::new(match (&rmesh, max_level) {
            (Some(rm), Some(max)) => {
                let lods = lookup::triangle_lods(rm, vp, size, tw, th);
                LookupTable::with_mips(&frame, &mesh.tri_material, materials, tw, th, &lods, max)
            }
            _ => LookupTable::new(&frame, &mesh.tri_material, materials, tw, th),
        });
        table.mark_seen(&mut st.seen);
        let content = if used_content {
            let img = lookup::render(
                &frame,
                &mesh.tri_material,
                &originals,
                &flat,
                cfg.background,
            );
            Some(image_to_tensor(&img)?.to_device(vgg.device())?)
        } else {
            None
        };
        entry.lookup_ms = ms(t);

        let t = Instant::now();
        let learned = st.param.view(&table, cfg.background)?;
        entry.texture_ms = ms(t);

        let t = Instant::now();
        let obj = loss::objective(vgg, &style, content.as_ref(), cfg.content_weight_at(step))?;
        let view = learned.image.to_device(vgg.device())?;
        let (parts, grad_image) =
            obj.loss_and_grad_with(vgg, &view, &mut |l, g| Ok(st.memory.update(l, g)?))?;
        let grad_image = grad_image.to_device(&Device::Cpu)?;
        entry.network_ms = ms(t);

        let t = Instant::now();
        st.adam.params.lr = cfg.lr_at(step);
        st.param.descend(&learned, &grad_image, &mut st.adam)?;
        entry.optimizer_ms = ms(t);

        (entry.style, entry.content, entry.total) = (parts.style, parts.content, parts.total);
        entry.seconds = offset + start.elapsed().as_secs_f64();
        let flow = on_step(&entry);
        st.log.push(entry);
        let due = (ck.every > 0 && step % ck.every == 0 && step < cfg.steps) || flow.is_break();
        if let (true, Some(save)) = (due, ck.save.as_mut()) {
            save(&st.save(&ck.fingerprint)?)
                .with_context(|| format!("saving the checkpoint of step {step}"))?;
        }
        if flow.is_break() {
            break;
        }
    }

    let final_texture = st.param.texture()?;
    let eval_after = eval_style(raster, mesh, vgg, &style, &final_texture, &eval_cams, cfg)?;
    let mut textures = (0..materials)
        .map(|m| tensor_to_image(&final_texture.get(m)?))
        .collect::<candle_core::Result<Vec<_>>>()?;
    fill_unseen_materials(&mut textures, &st.seen);
    let seen_fraction = st.seen.iter().filter(|&&s| s).count() as f64 / st.seen.len().max(1) as f64;
    Ok(Outcome {
        textures,
        seen_fraction,
        log: st.log,
        eval_before: st.eval_before,
        eval_after,
        used_content,
    })
}

/// The coarsest mip level `param` can serve (only the pyramid has levels).
fn mip_levels(param: &ParamKind, height: u32, width: u32) -> Option<u32> {
    (*param == ParamKind::Pyramid).then(|| {
        crate::texture::pyramid::level_sizes(height as usize, width as usize).len() as u32 - 1
    })
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

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
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
            gram_decay: 0.95,
            param: ParamKind::Fft,
            lr: 0.1,
            lr_end: 0.1,
            content_end: 0.2,
            seed: 0,
            background: [0.0; 3],
            cameras: CameraRange::default(),
            eval_views: 1,
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
