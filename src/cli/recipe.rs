//! The typed arguments of `texstyle bench quality`: recipes (named lists of
//! style-transfer options) and pairings (a mesh and a painting), parsed where
//! clap parses the other arguments. A leaf: `args` uses it.

use std::path::{Path, PathBuf};

/// A named list of style-transfer options, e.g. `fast=--steps 150 --lr 0.1`.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub name: String,
    pub options: Vec<String>,
}

/// Recipes by name: `default` is today's defaults (no options); `v1` spells
/// out texstyle's first defaults (300 steps at 256², texture 512², FFT,
/// lr 0.05, content 0.5, Gram decay 0.95, 1 sample, painting 512).
pub fn builtin_recipe(name: &str) -> Option<Recipe> {
    let options: &[&str] = match name {
        "default" => &[],
        "v1" => V1_DEFAULTS,
        _ => return None,
    };
    Some(Recipe { name: name.into(), options: options.iter().map(|s| s.to_string()).collect() })
}

/// texstyle's first defaults, as options (kept so the bench can always compare against them).
pub const V1_DEFAULTS: &[&str] = &[
    "--steps", "300", "--render-size", "256", "--texture-size", "512", "--param", "fft", "--lr", "0.05",
    "--content-weight", "0.5", "--gram-decay", "0.95", "--samples", "1", "--style-size", "512", "--lr-end", "1",
    "--content-end", "1", "--precision", "f32",
];

/// `NAME` (built in) or `NAME=OPTIONS` (whitespace-separated style-transfer options).
pub fn parse_recipe(s: &str) -> Result<Recipe, String> {
    match s.split_once('=') {
        Some((name, opts)) if !name.is_empty() => {
            Ok(Recipe { name: name.to_string(), options: opts.split_whitespace().map(str::to_string).collect() })
        }
        _ => builtin_recipe(s).ok_or_else(|| format!("unknown recipe {s:?}: use `default`, `v1`, or NAME=OPTIONS such as 'fast=--steps 150'")),
    }
}

/// One mesh and one painting.
#[derive(Clone, Debug)]
pub struct Pairing {
    pub mesh: PathBuf,
    pub style: PathBuf,
}

impl Pairing {
    pub fn name(&self) -> String {
        let stem = |p: &Path| p.file_stem().map_or("x".into(), |s| s.to_string_lossy().into_owned());
        format!("{}_x_{}", stem(&self.mesh), stem(&self.style))
    }
}

/// `MESH,IMAGE`.
pub fn parse_pairing(s: &str) -> Result<Pairing, String> {
    let (m, i) = s.split_once(',').ok_or_else(|| format!("{s:?}: write a pairing as MESH,IMAGE"))?;
    Ok(Pairing { mesh: m.into(), style: i.into() })
}

/// The recipes `bench quality` compares when none is given: the first defaults and today's.
pub fn default_recipes() -> Vec<Recipe> {
    ["v1", "default"].iter().filter_map(|n| builtin_recipe(n)).collect()
}

/// The default pairings: the textured bunny (where a local copy sits beside
/// the clone; else the repository's plain bunny, which has no content
/// texture) × Starry Night, and spot × The Great Wave.
pub fn default_pairings() -> Vec<Pairing> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let textured = root.join("../shared/assets/meshes/bunny_textured/bunny_textured.obj");
    let bunny = if textured.exists() { textured } else { root.join("meshes/bunny.obj") };
    vec![
        Pairing { mesh: bunny, style: root.join("styles/starry_night.jpg") },
        Pairing { mesh: root.join("meshes/spot/spot.obj"), style: root.join("styles/great_wave.jpg") },
    ]
}
