//! `texstyle bench quality`: how good a recipe's result is against the wall
//! time it took, judged the same way for every recipe.
//!
//! Each recipe (a list of style-transfer options, or a given texture) runs on
//! each pairing (mesh, painting). When the loop's wall time passes each of
//! `--at` seconds, and at the end, the texture so far — as the user would get
//! it: unseen texels filled, 8 bits per channel — is scored by one fixed judge
//! (`judge.rs`: held-out views at 256² and 512², style against the painting,
//! content at a deep and a shallow layer against the mesh's own texture). A
//! texture recipe is scored as it is, through the same lookup, so the two
//! kinds are comparable. `table.rs` writes the scores and their means over
//! seeds; `sheet.rs` draws a contact sheet per pairing: the original on top,
//! then each recipe's final texture, in the order given, as turntables with
//! close-up crops.
//!
//! Wall time is the optimization loop's (the same figure as `loss.csv`'s
//! `seconds`), without setup or judging. Pausing at each `--at` goes through
//! the checkpoint path (save, then resume), which gives the same bits as an
//! uninterrupted run.

mod judge;
mod sheet;
mod table;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;

use super::args::PairSet;
use super::config::{bad, bad_file, StyleConfig};
use super::error::CliError;
use super::recipe::{reference_pairings, Pairing, Recipe, RecipeKind};
use crate::checkpoint::Checkpoint;
use crate::image_io::{write_atomic, Image};
use crate::mesh::Mesh;
use crate::optim::{self, Checkpoints};
use crate::raster::{Raster, RasterMesh};
use crate::vgg::{Precision, Vgg};

pub use judge::{SizeScore, JUDGE_CONTENT_LAYERS, JUDGE_SIZES, JUDGE_STYLE_SIZE, JUDGE_VIEWS};
pub use table::Score;
use sheet::Sheet;

/// The recipe's checked options for `pairing` (parsed as the command line would be).
fn recipe_config(name: &str, options: &[String], pairing: &Pairing) -> Result<StyleConfig, CliError> {
    let mut argv: Vec<String> = vec!["texstyle".into(), pairing.mesh.display().to_string(), "--style".into(), pairing.style.display().to_string()];
    argv.extend(options.iter().cloned());
    let cli = super::args::parse_from(&argv).map_err(|e| bad(format!("recipe {name}: {}", super::one_line_usage_error(&e.render().to_string()))))?;
    StyleConfig::from_args(cli.style)
}

/// The pairings to judge: `--pair`s, then the `--pairs` set's; the defaults when neither is given.
pub fn pairings(pairs: Vec<Pairing>, set: Option<PairSet>) -> Result<Vec<Pairing>, CliError> {
    let mut pairs = pairs;
    match set {
        Some(PairSet::Reference) => pairs.extend(reference_pairings().map_err(|missing| {
            bad_file(format!(
                "--pairs reference: {} is missing (the set reads the shared assets beside the clone; give --pair MESH,IMAGE,REFERENCE_TEXTURE instead)",
                missing.display()
            ))
        })?),
        None if pairs.is_empty() => pairs = super::recipe::default_pairings(),
        None => {}
    }
    Ok(pairs)
}

/// Each option recipe once per seed of `seeds` (none: the recipes as given).
pub fn seeded(recipes: &[Recipe], seeds: &[u64]) -> Result<Vec<Recipe>, CliError> {
    if seeds.is_empty() {
        return Ok(recipes.to_vec());
    }
    let mut out = Vec::new();
    for r in recipes {
        if r.options().is_none() {
            out.push(r.clone());
            continue;
        }
        for &seed in seeds {
            out.push(r.with_seed(seed).map_err(bad)?);
        }
    }
    Ok(out)
}

/// The mesh and the texture a texture recipe scores: the image as the mesh's
/// one material's texture.
fn texture_recipe(recipe: &Recipe, pairing: &Pairing) -> Result<(Mesh, Image), CliError> {
    let path: &PathBuf = match &recipe.kind {
        RecipeKind::Texture(p) => p,
        RecipeKind::Reference => pairing.reference.as_ref().ok_or_else(|| {
            bad(format!("recipe {}: pairing {} has no reference texture (use --pairs reference, --pair MESH,IMAGE,TEXTURE, or NAME=texture:PATH)", recipe.name, pairing.name()))
        })?,
        RecipeKind::Options(_) => unreachable!("an options recipe is optimized, not loaded"),
    };
    let mut mesh = Mesh::load(&pairing.mesh)?;
    if mesh.materials.len() != 1 {
        return Err(bad_file(format!(
            "recipe {}: {} has {} materials and a texture recipe gives one texture (score a mesh with one material)",
            recipe.name,
            pairing.mesh.display(),
            mesh.materials.len()
        )));
    }
    if !mesh.has_uvs() {
        return Err(bad_file(format!("recipe {}: {} has no texture coordinates, so a given texture has nowhere to go", recipe.name, pairing.mesh.display())));
    }
    mesh.prepare_uvs(None, crate::cli::defaults::TEXTURE_SIZE)?;
    let texture = Image::load(path).map_err(|e| bad_file(format!("recipe {}: {}: {e} (give a PNG or JPEG texture)", recipe.name, path.display())))?;
    Ok((mesh, texture))
}

/// Runs every recipe on every pairing; prints one line per judged texture and
/// writes `quality.csv`, `quality_mean.csv` and one `PAIRING.png` contact sheet per pairing into `out`.
pub fn run(recipes: &[Recipe], pairings: &[Pairing], at: &[f64], out: &Path, cpu: bool) -> Result<Vec<Score>, CliError> {
    if recipes.is_empty() || pairings.is_empty() {
        return Err(bad("bench quality: give at least one --recipe and one --pair".into()));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // The judge always scores in f32, whatever the recipes train with.
    let judge_vgg = Vgg::load(None, &Device::Cpu).context("loading the VGG weights")?;
    let mut nets = Nets { f32: &judge_vgg, bf16: None };
    let at = pauses(at);
    let mut scores = Vec::new();
    println!("{}", table::line_header());
    for pairing in pairings {
        let painting = Image::load(&pairing.style).map_err(|e| bad_file(format!("{}: {e}", pairing.style.display())))?;
        let mut judge: Option<judge::Judge> = None;
        let mut sheet: Option<Sheet> = None;
        for recipe in recipes {
            let mut on_judged = |s: Score| {
                println!("{}", table::line(&s));
                scores.push(s);
            };
            let (mesh, mut raster, textures) = run_recipe(recipe, pairing, &painting, &at, cpu, &mut nets, &mut judge, &mut on_judged)?;
            if recipe.options().is_some() {
                save_textures(out, &pairing.name(), &recipe.name, &textures)?;
            }
            let sheet = match &mut sheet {
                Some(s) => s,
                None => sheet.insert(Sheet::new(&mut raster, &mesh)?),
            };
            sheet.add_row(&mut raster, &mesh, &textures)?;
        }
        if let Some(sheet) = sheet {
            sheet.image().save_png(&out.join(format!("{}.png", pairing.name())))?;
        }
    }
    write_atomic(&out.join("quality.csv"), table::scores_csv(&scores).as_bytes())?;
    let means = table::means(&scores);
    write_atomic(&out.join("quality_mean.csv"), table::means_csv(&means).as_bytes())?;
    println!("\nmean over the runs of each recipe (NAME@SEED counts as NAME):\n{}", table::means_markdown(&means));
    let names: Vec<&str> = recipes.iter().map(|r| r.name.as_str()).collect();
    eprintln!("texstyle: contact sheets in {} (rows: original, {}; columns: the turntable, then close-up crops of 512² views)", out.display(), names.join(", "));
    Ok(scores)
}

/// The networks recipes train with: the judge's (f32), and a bf16 one loaded on first use.
struct Nets<'a> {
    f32: &'a Vgg,
    bf16: Option<Vgg>,
}

impl Nets<'_> {
    fn get(&mut self, precision: Precision) -> Result<&Vgg> {
        if precision == Precision::F32 {
            return Ok(self.f32);
        }
        if self.bf16.is_none() {
            self.bf16 = Some(Vgg::load_with(None, &Device::Cpu, Precision::Bf16).context("loading the VGG weights")?);
        }
        Ok(self.bf16.as_ref().expect("loaded above"))
    }
}

/// A recipe's final textures in `out/textures/PAIRING_RECIPE.png` (`…_RECIPE_mK.png` per
/// material K when there are several), so that any can be judged again later as
/// `NAME=texture:PATH` without running the recipe again.
fn save_textures(out: &Path, pairing: &str, recipe: &str, textures: &[Image]) -> Result<()> {
    let dir = out.join("textures");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let safe: String = recipe.chars().map(|c| if c.is_ascii_alphanumeric() || "@_.-".contains(c) { c } else { '_' }).collect();
    for (k, t) in textures.iter().enumerate() {
        let name = match textures.len() {
            1 => format!("{pairing}_{safe}.png"),
            _ => format!("{pairing}_{safe}_m{k}.png"),
        };
        t.save_png(&dir.join(name))?;
    }
    Ok(())
}

/// A texture exactly as the export writes it (8 bits per channel).
fn as_exported(t: &Image) -> Image {
    Image::from_rgb8(&t.to_rgb8())
}

/// Runs (or loads) one recipe on one pairing, judging at each pause and at
/// the end (`judge` is made from the first recipe's mesh); returns the final
/// texture (as exported) with the mesh and rasterizer it was judged on.
#[allow(clippy::too_many_arguments)]
fn run_recipe(
    recipe: &Recipe,
    pairing: &Pairing,
    painting: &Image,
    at: &[f64],
    cpu: bool,
    nets: &mut Nets,
    judge: &mut Option<judge::Judge>,
    on_judged: &mut dyn FnMut(Score),
) -> Result<(Mesh, Raster, Vec<Image>), CliError> {
    let score = |at: String, step: usize, seconds: f64, sizes: Vec<SizeScore>| Score { pairing: pairing.name(), recipe: recipe.name.clone(), at, step, seconds, sizes };
    let Some(options) = recipe.options() else {
        let (mesh, texture) = texture_recipe(recipe, pairing)?;
        let mut raster = super::open_raster(cpu, &RasterMesh::from_mesh(&mesh))?;
        if judge.is_none() {
            *judge = Some(judge::Judge::new(nets.f32, &mut raster, &mesh, painting)?);
        }
        let textures = vec![texture];
        let sizes = judge.as_ref().expect("set above").score(nets.f32, &mut raster, &mesh, &textures)?;
        on_judged(score("end".into(), 0, 0.0, sizes));
        return Ok((mesh, raster, textures));
    };
    let cfg = recipe_config(&recipe.name, options, pairing)?;
    let mut mesh = Mesh::load(&cfg.mesh)?;
    mesh.prepare_uvs(cfg.uv, cfg.optim.texture_size)?;
    let mut raster = super::open_raster(cpu, &RasterMesh::from_mesh(&mesh))?;
    if judge.is_none() {
        *judge = Some(judge::Judge::new(nets.f32, &mut raster, &mesh, painting)?);
    }
    let judge = judge.as_ref().expect("set above");
    let style = optim::prepare_style(painting, cfg.style_size);
    let mut optim_cfg = cfg.optim.clone();
    optim_cfg.eval_views = 1; // the judge scores; the loop's own before/after is not needed
    let judge_vgg = nets.f32;
    let vgg = nets.get(cfg.precision)?;
    let (mut resume, mut next): (Option<Checkpoint>, usize) = (None, 0);
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
        let textures: Vec<Image> = outcome.textures.iter().map(as_exported).collect();
        let sizes = judge.score(judge_vgg, &mut raster, &mesh, &textures)?;
        let done = outcome.log.len() >= optim_cfg.steps;
        let label = if done { "end".to_string() } else { format!("{}s", pause.unwrap_or_default()) };
        on_judged(score(label, last.step, last.seconds, sizes));
        if done {
            return Ok((mesh, raster, textures));
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

/// The `--at` seconds to pause at: positive, in order.
fn pauses(at: &[f64]) -> Vec<f64> {
    let mut at: Vec<f64> = at.iter().copied().filter(|t| *t > 0.0).collect();
    at.sort_by(f64::total_cmp);
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::recipe::parse_recipe;
    use crate::texture::ParamKind;

    #[test]
    fn v1_is_the_old_defaults_whatever_the_defaults_are_now() {
        let pairing = Pairing { mesh: "m.obj".into(), style: "s.jpg".into(), reference: None };
        let v1 = parse_recipe("v1").unwrap();
        let cfg = recipe_config("v1", v1.options().unwrap(), &pairing).unwrap();
        let o = &cfg.optim;
        assert_eq!((o.steps, o.texture_size, o.render_size, o.start_render_size, o.samples, o.param), (300, 512, 256, 256, 1, ParamKind::Fft));
        assert_eq!((o.lr, o.lr_end, o.content_weight, o.content_end, o.gram_decay, cfg.style_size), (0.05, 1.0, 0.5, 1.0, 0.95, 512));
        assert_eq!((o.content_layers.len(), o.style_layer_weights), (1, [1.0; 5]));
        let mine = parse_recipe("fast=--steps 10 --lr 0.1").unwrap();
        assert_eq!((mine.name.as_str(), mine.options().unwrap().len()), ("fast", 4));
        assert!(parse_recipe("nonesuch").is_err());
        assert!(recipe_config("bad", &["--steps".into(), "0".into()], &pairing).is_err());
    }

    /// `--preset fast` is texstyle 0.1's default recipe, value for value, whatever the defaults are now.
    #[test]
    fn fast_is_the_first_release_default_recipe() {
        let pairing = Pairing { mesh: "m.obj".into(), style: "s.jpg".into(), reference: None };
        let fast = parse_recipe("fast=--preset fast").unwrap();
        let cfg = recipe_config("fast", fast.options().unwrap(), &pairing).unwrap();
        let o = &cfg.optim;
        assert_eq!((o.steps, o.texture_size, o.render_size, o.start_render_size, o.samples, o.param, o.mip), (200, 512, 256, 256, 2, ParamKind::Pyramid, true));
        assert_eq!((o.lr, o.lr_end, o.style_weight, o.content_weight, o.content_end, o.gram_decay, cfg.style_size), (0.06, 0.2, 1.0, 0.5, 0.6, 0.95, 512));
        assert_eq!((o.content_layers.len(), o.style_layer_weights), (1, [1.0; 5]));
        let longer = recipe_config("f", &["--preset".into(), "fast".into(), "--steps".into(), "20".into()], &pairing).unwrap();
        assert_eq!(longer.optim.steps, 20, "an explicit flag wins over the preset");
    }
}
