//! `texstyle bench quality`: how good a recipe's result is against the wall
//! time it took, judged the same way for every recipe.
//!
//! Each recipe (a list of style-transfer options) runs on each pairing (mesh,
//! painting). When the loop's wall time passes each of `--at` seconds, and at
//! the end, the texture so far — as the user would get it, unseen texels
//! filled — is scored by one fixed judge: the style loss against the painting
//! (Grams at 512 px) and the content loss against the mesh's own texture, on
//! held-out views that no recipe trains on (their own seed), rendered
//! anti-aliased (2×2 samples) at 256², black background. The numbers are
//! relative errors (1 = as far from the target as zero features are).
//! A contact sheet per pairing shows those views: the original on top, then
//! each recipe's final texture, in the order given.
//!
//! Wall time is the optimization loop's (the same figure as `loss.csv`'s
//! `seconds`), without setup or judging. Pausing at each `--at` goes through
//! the checkpoint path (save, then resume), which gives the same bits as an
//! uninterrupted run.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Parser;

use super::args::Cli;
use super::config::{bad, StyleConfig};
use super::error::CliError;
use super::recipe::{Pairing, Recipe};
use crate::camera::{Camera, CameraRange, ViewSampler};
use crate::checkpoint::Checkpoint;
use crate::image_io::{image_to_tensor, write_atomic, Image};
use crate::loss::{self, StyleTargets};
use crate::mesh::Mesh;
use crate::optim::{self, Checkpoints};
use crate::preview::{contact_sheet, render_views, SHEET_GAP};
use crate::raster::{Raster, RasterMesh, ViewSize};
use crate::vgg::{Precision, Vgg};

/// The judge's views: this many, this size, anti-aliased, from this seed
/// (not any recipe's training or held-out seed).
pub const JUDGE_VIEWS: usize = 6;
pub const JUDGE_SIZE: ViewSize = ViewSize { width: 256, height: 256, samples: 2 };
const JUDGE_SEED: u64 = 0x9D6E_0F1E;
/// The judge's painting size (longer side) and content weight (1: the relative error as is).
pub const JUDGE_STYLE_SIZE: u32 = 512;
const JUDGE_BACKGROUND: [f32; 3] = crate::preview::STYLE_BACKGROUND;

/// One judged texture.
#[derive(Clone, Debug)]
pub struct Score {
    pub pairing: String,
    pub recipe: String,
    pub step: usize,
    pub seconds: f64,
    pub style: f32,
    pub content: f32,
}

/// The fixed judge of one pairing.
struct Judge {
    cams: Vec<Camera>,
    targets: StyleTargets,
    /// The original views (also the sheet's top row) and their tensors.
    originals: Vec<Image>,
    has_content: bool,
}

impl Judge {
    fn new(vgg: &Vgg, raster: &mut Raster, mesh: &Mesh, painting: &Image) -> Result<Judge> {
        let mut s = ViewSampler::new(JUDGE_SEED, CameraRange::default());
        let cams: Vec<Camera> = (0..JUDGE_VIEWS).map(|_| s.next_camera()).collect();
        let painting = image_to_tensor(&optim::prepare_style(painting, JUDGE_STYLE_SIZE))?.to_device(vgg.device())?;
        let targets = StyleTargets::new(vgg, &painting, 1.0)?;
        let originals = render_views(raster, mesh, &[], &cams, JUDGE_SIZE, JUDGE_BACKGROUND)?;
        let has_content = mesh.materials.iter().any(|m| m.texture.is_some());
        Ok(Judge { cams, targets, originals, has_content })
    }

    /// Mean style and content loss of `textures` over the judge's views, and the views.
    fn score(&self, vgg: &Vgg, raster: &mut Raster, mesh: &Mesh, textures: &[Image]) -> Result<(f32, f32, Vec<Image>)> {
        let learned: Vec<Option<&Image>> = textures.iter().map(Some).collect();
        let views = render_views(raster, mesh, &learned, &self.cams, JUDGE_SIZE, JUDGE_BACKGROUND)?;
        let (mut style, mut content) = (0.0, 0.0);
        for (view, original) in views.iter().zip(&self.originals) {
            let content_img = image_to_tensor(original)?.to_device(vgg.device())?;
            let obj = loss::objective(vgg, &self.targets, self.has_content.then_some(&content_img), 1.0)?;
            let parts = obj.loss(vgg, &image_to_tensor(view)?.to_device(vgg.device())?)?;
            style += parts.style;
            content += parts.content;
        }
        let n = self.cams.len().max(1) as f32;
        Ok((style / n, content / n, views))
    }
}

/// The recipe's checked options for `pairing` (parsed as the command line would be).
fn recipe_config(recipe: &Recipe, pairing: &Pairing) -> Result<StyleConfig, CliError> {
    let mut argv: Vec<String> = vec!["texstyle".into(), pairing.mesh.display().to_string(), "--style".into(), pairing.style.display().to_string()];
    argv.extend(recipe.options.iter().cloned());
    let cli = Cli::try_parse_from(&argv).map_err(|e| bad(format!("recipe {}: {}", recipe.name, super::one_line_usage_error(&e.render().to_string()))))?;
    StyleConfig::from_args(cli.style)
}

/// Runs every recipe on every pairing; prints one line per judged texture and
/// writes `quality.csv` and one `PAIRING.png` contact sheet per pairing into `out`.
pub fn run(recipes: &[Recipe], pairings: &[Pairing], at: &[f64], out: &Path, cpu: bool) -> Result<Vec<Score>, CliError> {
    if recipes.is_empty() || pairings.is_empty() {
        return Err(bad("bench quality: give at least one --recipe and one --pair".into()));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // The judge always scores in f32, whatever the recipes train with.
    let judge_vgg = Vgg::load(None, &Device::Cpu).context("loading the VGG weights")?;
    let mut bf16_vgg: Option<Vgg> = None;
    let at = pauses(at);
    let mut scores = Vec::new();
    println!("pairing recipe step seconds style content");
    for pairing in pairings {
        let painting = Image::load(&pairing.style).with_context(|| format!("reading {}", pairing.style.display()))?;
        let mut judge: Option<Judge> = None;
        let mut sheet: Vec<Image> = Vec::new();
        for recipe in recipes {
            let cfg = recipe_config(recipe, pairing)?;
            let vgg = network(cfg.precision, &judge_vgg, &mut bf16_vgg)?;
            let mut mesh = Mesh::load(&cfg.mesh)?;
            mesh.prepare_uvs(cfg.uv, cfg.optim.texture_size)?;
            let mut raster = super::open_raster(cpu, &RasterMesh::from_mesh(&mesh))?;
            if judge.is_none() {
                let j = Judge::new(&judge_vgg, &mut raster, &mesh, &painting)?;
                sheet.extend(j.originals.iter().cloned());
                judge = Some(j);
            }
            let judge = judge.as_ref().expect("set above");
            let style = optim::prepare_style(&painting, cfg.style_size);
            let mut optim_cfg = cfg.optim.clone();
            optim_cfg.eval_views = 1; // the judge scores; the loop's own before/after is not needed
            let mut resume: Option<Checkpoint> = None;
            let mut next = 0;
            loop {
                let mut saved: Option<Checkpoint> = None;
                let mut save = |c: &Checkpoint| {
                    saved = Some(c.clone());
                    Ok(())
                };
                let ck = Checkpoints { every: 0, fingerprint: String::new(), resume: resume.take(), save: Some(&mut save) };
                let pause = at.get(next).copied();
                let outcome = optim::Run::new(&mesh, &mut raster, vgg, &style, &optim_cfg, ck)
                    .and_then(|run| run.until(|s| pause.is_some_and(|t| s.seconds >= t && s.step < optim_cfg.steps)))
                    .with_context(|| format!("recipe {} on {}", recipe.name, pairing.name()))?;
                let last = outcome.log.last().cloned().unwrap_or_default();
                let (s, c, views) = judge.score(&judge_vgg, &mut raster, &mesh, &outcome.textures)?;
                let score = Score { pairing: pairing.name(), recipe: recipe.name.clone(), step: last.step, seconds: last.seconds, style: s, content: c };
                println!("{} {} {} {:.1} {:.4} {:.4}", score.pairing, score.recipe, score.step, score.seconds, score.style, score.content);
                scores.push(score);
                let done = outcome.log.len() >= optim_cfg.steps;
                if done {
                    sheet.extend(views);
                    break;
                }
                while at.get(next).is_some_and(|&t| t <= last.seconds) {
                    next += 1;
                }
                resume = saved;
                if resume.is_none() {
                    return Err(anyhow::anyhow!("recipe {}: the loop stopped at step {} without a checkpoint", recipe.name, last.step).into());
                }
            }
        }
        let img = contact_sheet(&sheet, JUDGE_VIEWS as u32, SHEET_GAP, crate::preview::SHEET_BACKGROUND);
        img.save_png(&out.join(format!("{}.png", pairing.name())))?;
    }
    write_atomic(&out.join("quality.csv"), scores_csv(&scores).as_bytes())?;
    let names: Vec<&str> = recipes.iter().map(|r| r.name.as_str()).collect();
    eprintln!("texstyle: contact sheets in {} (rows: original, {})", out.display(), names.join(", "));
    Ok(scores)
}

/// The `--at` seconds to pause at: positive, in order.
fn pauses(at: &[f64]) -> Vec<f64> {
    let mut at: Vec<f64> = at.iter().copied().filter(|t| *t > 0.0).collect();
    at.sort_by(f64::total_cmp);
    at
}

/// The network a recipe trains with: the judge's (f32), or a bf16 one loaded on first use.
fn network<'a>(precision: Precision, f32_vgg: &'a Vgg, bf16_vgg: &'a mut Option<Vgg>) -> Result<&'a Vgg> {
    if precision == Precision::F32 {
        return Ok(f32_vgg);
    }
    if bf16_vgg.is_none() {
        *bf16_vgg = Some(Vgg::load_with(None, &Device::Cpu, Precision::Bf16).context("loading the VGG weights")?);
    }
    Ok(bf16_vgg.as_ref().expect("loaded above"))
}

/// `quality.csv`: one row per judged texture.
fn scores_csv(scores: &[Score]) -> String {
    let mut csv = String::from("pairing,recipe,step,seconds,style,content\n");
    for s in scores {
        csv += &format!("{},{},{},{:.2},{:.5},{:.5}\n", s.pairing, s.recipe, s.step, s.seconds, s.style, s.content);
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::recipe::parse_recipe;
    use crate::texture::ParamKind;

    #[test]
    fn v1_is_the_old_defaults_whatever_the_defaults_are_now() {
        let pairing = Pairing { mesh: "m.obj".into(), style: "s.jpg".into() };
        let cfg = recipe_config(&parse_recipe("v1").unwrap(), &pairing).unwrap();
        let o = &cfg.optim;
        assert_eq!((o.steps, o.texture_size, o.render_size, o.start_render_size, o.samples, o.param), (300, 512, 256, 256, 1, ParamKind::Fft));
        assert_eq!((o.lr, o.lr_end, o.content_weight, o.content_end, o.gram_decay, cfg.style_size), (0.05, 1.0, 0.5, 1.0, 0.95, 512));
        let mine = parse_recipe("fast=--steps 10 --lr 0.1").unwrap();
        assert_eq!((mine.name.as_str(), mine.options.len()), ("fast", 4));
        assert!(parse_recipe("nonesuch").is_err());
        assert!(recipe_config(&parse_recipe("bad=--steps 0").unwrap(), &pairing).is_err());
    }
}
