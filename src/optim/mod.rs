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
//!
//! This file holds the loop, [`Run`]; beside it: `config.rs` (the options and
//! their per-step schedules), `log.rs` (a step's log and its columns),
//! `memory.rs` (the peak-memory estimate), `style.rs` (the painting and the
//! held-out score). What of a run a checkpoint holds is [`crate::checkpoint`]'s.

mod colors;
mod config;
mod log;
mod memory;
mod protect;
mod style;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

use crate::adam::{Adam, AdamParams};
use crate::camera::ViewSampler;
use crate::checkpoint::{Checkpoint, State};
use crate::image_io::{image_to_tensor, Image};
use crate::lookup::{self, LookupTable};
use crate::loss::{self, GramMemory, LossKind, LossParts, NnfmTargets, StyleTargets};
use crate::mesh::Mesh;
use crate::raster::{Raster, RasterFrame, RasterMesh, ViewSize};
use crate::fill::fill_unseen_materials;
use crate::texture::{tensor_to_image, LearnedView, TextureParam};
use protect::ProtectedView;
use crate::vgg::Vgg;

pub use config::Config;
pub use log::{Column, StepLog};
pub use colors::{match_colors, ColorStats};
pub use memory::estimated_peak_bytes;
pub use protect::Protect;
pub use style::{prepare_style, HELD_OUT_CONTENT_LAYERS};

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
    /// Mean content loss of the final texture on the same views (relative
    /// error at [`HELD_OUT_CONTENT_LAYERS`]); `None` when the mesh has no texture.
    pub eval_content_after: Option<f32>,
    pub used_content: bool,
}

/// When to save the run's state, where, and the state to start from.
pub struct Checkpoints<'a> {
    /// Save every `every` steps (0: never) and whenever the caller stops the run ([`Run::stop`]).
    pub every: usize,
    /// The options and inputs of this run (see [`Checkpoint::fingerprint`]).
    pub fingerprint: String,
    /// Continue from this state instead of starting afresh; its fingerprint
    /// must be checked by the caller.
    pub resume: Option<Checkpoint>,
    /// Where a checkpoint goes; `None`: nowhere.
    pub save: Option<&'a mut SaveFn<'a>>,
}

/// Writes a checkpoint somewhere (a folder, memory).
pub type SaveFn<'a> = dyn FnMut(&Checkpoint) -> Result<()> + 'a;

impl<'a> Checkpoints<'a> {
    /// No checkpoints.
    pub fn none() -> Checkpoints<'a> {
        Checkpoints {
            every: 0,
            fingerprint: String::new(),
            resume: None,
            save: None,
        }
    }

    /// Whether the cadence saves after `step` of `steps` (the last step never:
    /// the run's outputs follow at once).
    fn due(&self, step: usize, steps: usize) -> bool {
        self.every > 0 && step.is_multiple_of(self.every) && step < steps
    }
}

/// Where the content image comes from: the mesh seen with its own textures,
/// materials without one in their flat colour.
struct Content<'a> {
    originals: Vec<Option<&'a Image>>,
    flat: Vec<[f32; 3]>,
}

/// Mip-mapped lookups: the mesh for each triangle's level of detail, and the
/// coarsest level a view may read.
struct Mips {
    mesh: RasterMesh,
    max_level: u32,
}

/// The loss became NaN or infinite at `step`: the run stops before saving
/// or publishing it (a failure of the run, exit 1: its inputs were checked).
#[derive(Debug, thiserror::Error)]
#[error("the loss or the texture became {what} at step {step}; nothing was saved from this step (try a lower --lr, or report it)", what = "NaN or infinite")]
pub struct NotFinite {
    pub step: usize,
}

/// One optimization run: [`Run::new`] sets it up (or resumes it from a
/// checkpoint), each [`Run::step`] makes one step, [`Run::finish`] (or
/// [`Run::stop`], which saves a checkpoint first) gives the [`Outcome`].
/// A resumed run's result is bit-identical to an uninterrupted one's on the
/// same binary and machine.
pub struct Run<'a> {
    mesh: &'a Mesh,
    raster: &'a mut Raster,
    vgg: &'a Vgg,
    cfg: &'a Config,
    checkpoints: Checkpoints<'a>,
    style: StyleTargets,
    /// The held-out judge's style targets, at style weight 1 (`None`: `style`'s are).
    eval_targets: Option<StyleTargets>,
    /// The painting's NNFM features (no terms without `--loss gram+nnfm`).
    nnfm: NnfmTargets,
    /// `None`: no material has a texture (or the content weight is 0), style only.
    content: Option<Content<'a>>,
    /// The held-out views' view-projections.
    eval_cams: Vec<glam::Mat4>,
    /// `None`: every lookup reads the finest level.
    mips: Option<Mips>,
    state: State,
    /// The steps done when the last checkpoint was saved.
    saved_at: Option<usize>,
    /// Wall time continues from where a resumed run stopped.
    seconds_before: f64,
    start: Instant,
}

impl<'a> Run<'a> {
    /// Sets up a run of `cfg` on `mesh` in the style of `painting`, or resumes
    /// it from `checkpoints.resume` (whose fingerprint the caller has checked).
    pub fn new(
        mesh: &'a Mesh,
        raster: &'a mut Raster,
        vgg: &'a Vgg,
        painting: &Image,
        cfg: &'a Config,
        mut checkpoints: Checkpoints<'a>,
    ) -> Result<Run<'a>> {
        let matched;
        let painting = match cfg.keep_colors {
            true => {
                let object = colors::object_colors(raster, mesh, cfg)?.context("--keep-colors: no view sees the mesh")?;
                matched = colors::match_colors(painting, &object);
                &matched
            }
            false => painting,
        };
        let painting = image_to_tensor(painting)?.to_device(vgg.device())?;
        let style = StyleTargets::new(vgg, &painting, cfg.style_weight).context("style targets")?.with_layer_weights(&cfg.style_layer_weights);
        // The held-out score stays comparable across style weights (--strength, --style-layer-weights).
        let eval_targets = match cfg.style_weight == 1.0 && cfg.style_layer_weights == [1.0; 5] {
            true => None,
            false => Some(StyleTargets::new(vgg, &painting, 1.0).context("style targets")?),
        };
        let nnfm = match cfg.loss {
            LossKind::Gram => NnfmTargets::default(),
            LossKind::GramNnfm => {
                let layers = crate::vgg::layers(&loss::NNFM_LAYERS)?;
                NnfmTargets::new(vgg, &painting, cfg.nnfm_weight, &layers, loss::MAX_PAINTING_POSITIONS).context("NNFM targets")?
            }
        };
        // The painting's forwards are done: their buffers fit no view.
        vgg.release_buffers();
        let state = fresh_state(cfg, mesh.materials.len(), style.terms.len())?;
        let with_content = mesh.materials.iter().any(|m| m.texture.is_some()) && cfg.content_weight > 0.0;
        let content = with_content.then(|| Content {
            originals: mesh.materials.iter().map(|m| m.texture.as_ref()).collect(),
            flat: mesh.materials.iter().map(|m| m.diffuse).collect(),
        });
        let max_level = match cfg.mip {
            true => cfg.param.max_mip_level(cfg.texture_size, cfg.texture_size),
            false => None,
        };
        let mips = max_level.map(|max_level| Mips { mesh: RasterMesh::from_mesh(mesh), max_level });
        let resume = checkpoints.resume.take();
        let mut run = Run {
            mesh,
            raster,
            vgg,
            cfg,
            checkpoints,
            style,
            eval_targets,
            nnfm,
            content,
            eval_cams: style::eval_cameras(cfg),
            mips,
            state,
            saved_at: None,
            seconds_before: 0.0,
            start: Instant::now(),
        };
        match resume {
            Some(saved) => run.state.restore(&saved, vgg.device())?,
            None => {
                let initial = run.state.param.texture()?;
                run.state.eval_before = run.eval_held_out(&initial, false)?.style;
            }
        }
        run.seconds_before = run.state.log.last().map_or(0.0, |l| l.seconds);
        run.start = Instant::now();
        Ok(run)
    }

    /// Whether every step of the run is done.
    pub fn is_done(&self) -> bool {
        self.state.log.len() >= self.cfg.steps
    }

    /// The steps done so far, one entry each.
    pub fn log(&self) -> &[StepLog] {
        &self.state.log
    }

    /// Makes the next step (the run must not be done) and saves a checkpoint
    /// when [`Checkpoints::every`] says; the step's log entry.
    pub fn step(&mut self) -> Result<&StepLog> {
        let step = self.state.log.len() + 1;
        anyhow::ensure!(step <= self.cfg.steps, "optim: step {step} of a run of {} steps", self.cfg.steps);
        let mut entry = StepLog { step, ..Default::default() };
        let size = self.cfg.view_size_at(step);
        let (vp, frame) = timed(&mut entry.raster_ms, || self.raster(step, size))?;
        let (table, content, protected) = timed(&mut entry.lookup_ms, || self.lookup(&frame, vp, size))?;
        let learned = timed(&mut entry.texture_ms, || self.state.param.view(&table, self.cfg.background))?;
        let shown = match &protected {
            Some(p) => p.composite(&learned.image)?,
            None => learned.image.clone(),
        };
        let (parts, grad) = timed(&mut entry.network_ms, || self.network(step, &shown, content.as_ref()))?;
        let grad = match &protected {
            Some(p) => p.pull_back(&grad)?,
            None => grad,
        };
        timed(&mut entry.optimizer_ms, || self.optimizer(step, &learned, &grad))?;
        (entry.style, entry.content, entry.nnfm, entry.total) = (parts.style, parts.content, parts.nnfm, parts.total);
        // Stop before a NaN reaches the log, a checkpoint or a published texture.
        if !entry.total.is_finite() {
            return Err(NotFinite { step }.into());
        }
        entry.seconds = self.seconds_before + self.start.elapsed().as_secs_f64();
        self.state.log.push(entry);
        if self.checkpoints.due(step, self.cfg.steps) {
            self.save_checkpoint()?;
        }
        Ok(self.state.log.last().expect("pushed above"))
    }

    /// Saves a checkpoint (unless the last step's is saved already) and
    /// finishes the run early: the outcome holds the texture as it is now.
    pub fn stop(mut self) -> Result<Outcome> {
        if self.saved_at != Some(self.state.log.len()) {
            self.save_checkpoint()?;
        }
        self.finish()
    }

    /// Steps to the end of the run, then [`Run::finish`].
    pub fn complete(self) -> Result<Outcome> {
        self.until(|_| false)
    }

    /// Steps until the run is done ([`Run::finish`]) or `stop` says so after
    /// seeing a step's log ([`Run::stop`]: the log is then shorter than `steps`).
    pub fn until(mut self, mut stop: impl FnMut(&StepLog) -> bool) -> Result<Outcome> {
        while !self.is_done() {
            if stop(self.step()?) {
                return self.stop();
            }
        }
        self.finish()
    }

    /// The held-out score of the texture as it is, its images (unseen texels
    /// filled) and the log.
    pub fn finish(mut self) -> Result<Outcome> {
        let final_texture = self.state.param.texture()?;
        // NaN and ∞ survive a sum: one pass says whether the texture is publishable.
        if !final_texture.sum_all()?.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?.is_finite() {
            return Err(NotFinite { step: self.state.log.len() }.into());
        }
        let eval_after = self.eval_held_out(&final_texture, true)?;
        let mut textures = (0..self.mesh.materials.len())
            .map(|m| tensor_to_image(&final_texture.get(m)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let seen = &self.state.seen;
        fill_unseen_materials(&mut textures, seen);
        // After the fill, so a protected texel is the original's whatever the views saw.
        if let Some(p) = &self.cfg.protect {
            p.compose_image(&mut textures[p.material]);
        }
        let seen_fraction = seen.iter().filter(|&&s| s).count() as f64 / seen.len().max(1) as f64;
        Ok(Outcome {
            textures,
            seen_fraction,
            log: self.state.log,
            eval_before: self.state.eval_before,
            eval_after: eval_after.style,
            eval_content_after: eval_after.content,
            used_content: self.content.is_some(),
        })
    }

    /// Raster phase: the step's random view and its frame.
    fn raster(&mut self, step: usize, size: ViewSize) -> Result<(glam::Mat4, RasterFrame)> {
        let vp = self.state.views.next_camera().view_proj(size.aspect());
        let frame = self.raster.rasterize(vp, size).with_context(|| format!("step {step}"))?;
        Ok((vp, frame))
    }

    /// Lookup phase: the view's lookup table (marking the texels it sees),
    /// the content image and, with `--protect`, the mask and original seen.
    fn lookup(&mut self, frame: &RasterFrame, vp: glam::Mat4, size: ViewSize) -> Result<(Arc<LookupTable>, Option<Tensor>, Option<ProtectedView>)> {
        let (tris, materials, t) = (&self.mesh.tri_material, self.mesh.materials.len(), self.cfg.texture_size);
        let table = Arc::new(match &self.mips {
            Some(mips) => {
                let lods = lookup::triangle_lods(&mips.mesh, vp, size, t, t);
                LookupTable::with_mips(frame, tris, materials, t, t, &lods, mips.max_level)
            }
            None => LookupTable::new(frame, tris, materials, t, t),
        });
        table.mark_seen(&mut self.state.seen);
        let content = match &self.content {
            Some(c) => {
                let img = lookup::render(frame, tris, &c.originals, &c.flat, self.cfg.background);
                Some(image_to_tensor(&img)?.to_device(self.vgg.device())?)
            }
            None => None,
        };
        let protected = match &self.cfg.protect {
            Some(p) => Some(self.protected_view(frame, p, content.as_ref())?),
            None => None,
        };
        Ok((table, content, protected))
    }

    /// The mask and the original through `frame` (the original is the
    /// content image when there is one: the same render).
    fn protected_view(&self, frame: &RasterFrame, p: &Protect, content: Option<&Tensor>) -> Result<ProtectedView> {
        let (tris, bg) = (&self.mesh.tri_material, self.cfg.background);
        let original = match content {
            Some(c) => c.to_device(&Device::Cpu)?,
            None => {
                let originals: Vec<Option<&Image>> = self.mesh.materials.iter().map(|m| m.texture.as_ref()).collect();
                let flat: Vec<[f32; 3]> = self.mesh.materials.iter().map(|m| m.diffuse).collect();
                image_to_tensor(&lookup::render(frame, tris, &originals, &flat, bg))?
            }
        };
        // White (restyle) on the other materials and the background.
        let masks: Vec<Option<&Image>> = (0..self.mesh.materials.len()).map(|m| (m == p.material).then(|| p.mask())).collect();
        let flat = vec![[1.0f32; 3]; masks.len()];
        let mask = image_to_tensor(&lookup::render(frame, tris, &masks, &flat, [1.0; 3]))?;
        Ok(ProtectedView { mask, original })
    }

    /// Network phase: the losses and their gradient in the learned view (on the CPU).
    fn network(&mut self, step: usize, shown: &Tensor, content: Option<&Tensor>) -> Result<(LossParts, Tensor)> {
        let mut obj = loss::objective(self.vgg, &self.style, content, self.cfg.content_weight_at(step), &self.cfg.content_layers)?;
        obj.nnfm = self.nnfm.terms.clone();
        let view = shown.to_device(self.vgg.device())?;
        let memory = &mut self.state.memory;
        let (parts, grad_image) = obj.loss_and_grad_with(self.vgg, &view, &mut |l, g| Ok(memory.update(l, g)?))?;
        Ok((parts, grad_image.to_device(&Device::Cpu)?))
    }

    /// Optimizer phase: the gradient back to θ and one Adam step at the step's rate.
    fn optimizer(&mut self, step: usize, learned: &LearnedView, grad_image: &Tensor) -> Result<()> {
        self.state.adam.params.lr = self.cfg.lr_at(step);
        Ok(self.state.param.descend(learned, grad_image, &mut self.state.adam)?)
    }

    fn save_checkpoint(&mut self) -> Result<()> {
        let step = self.state.log.len();
        if let Some(save) = self.checkpoints.save.as_mut() {
            let ck = self.state.save(&self.checkpoints.fingerprint)?;
            // A NaN in θ or Adam's moments (a non-finite gradient) is never saved.
            if ck.floats.values().any(|(_, v)| v.iter().any(|x| !x.is_finite())) {
                return Err(NotFinite { step }.into());
            }
            save(&ck).with_context(|| format!("saving the checkpoint of step {step}"))?;
        }
        self.saved_at = Some(step);
        Ok(())
    }

    /// The mean style loss of `texture` on the held-out views and, with
    /// `content`, its content loss there (see [`style::eval_held_out`]).
    /// (With `--protect`, of the texture as exported: protected texels put back.)
    fn eval_held_out(&mut self, texture: &Tensor, content: bool) -> Result<style::HeldOut> {
        let composed;
        let texture = match &self.cfg.protect {
            Some(p) => {
                composed = p.compose_tensor(texture)?;
                &composed
            }
            None => texture,
        };
        let targets = self.eval_targets.as_ref().unwrap_or(&self.style);
        style::eval_held_out(self.raster, self.mesh, self.vgg, targets, texture, &self.eval_cams, self.cfg, content)
    }
}

/// A run's state before its first step: fresh parameters and moments, no memory.
fn fresh_state(cfg: &Config, materials: usize, style_layers: usize) -> Result<State> {
    let t = cfg.texture_size as usize;
    let param = TextureParam::new(cfg.param, materials, t, t, cfg.seed)?;
    let adam = Adam::new(param.vars(), AdamParams { lr: cfg.lr, ..Default::default() });
    Ok(State {
        param,
        adam,
        memory: GramMemory::new(style_layers, cfg.gram_decay),
        views: ViewSampler::new(cfg.seed, cfg.cameras),
        seen: vec![false; materials * t * t],
        log: Vec::with_capacity(cfg.steps),
        eval_before: 0.0,
    })
}

/// `f()`, its wall time in milliseconds written to `ms`.
fn timed<T>(ms: &mut f64, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    *ms = t.elapsed().as_secs_f64() * 1e3;
    r
}
