//! The typed arguments of `texstyle bench quality`: recipes (named lists of
//! style-transfer options, or a given texture to score as it is) and pairings
//! (a mesh and a painting, with the reference's texture for that pairing
//! where one exists), parsed where clap parses the other arguments. A leaf:
//! `args` uses it.

use std::path::{Path, PathBuf};

/// What a recipe is.
#[derive(Clone, Debug, PartialEq)]
pub enum RecipeKind {
    /// Style-transfer options, e.g. `--steps 150 --lr 0.1` (none: today's defaults).
    Options(Vec<String>),
    /// This image as the mesh's texture, scored without any optimization.
    Texture(PathBuf),
    /// The pairing's reference texture (see [`Pairing::reference`]), scored as it is.
    Reference,
}

/// A named recipe, e.g. `fast=--steps 150 --lr 0.1` or `ref=texture:tex.jpg`.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub name: String,
    pub kind: RecipeKind,
}

impl Recipe {
    /// The recipe's style-transfer options; `None` for a texture recipe.
    pub fn options(&self) -> Option<&[String]> {
        match &self.kind {
            RecipeKind::Options(o) => Some(o),
            _ => None,
        }
    }

    /// This recipe run with `--seed seed`, named `NAME@SEED` (texture recipes stay as they are).
    pub fn with_seed(&self, seed: u64) -> Result<Recipe, String> {
        let RecipeKind::Options(o) = &self.kind else { return Ok(self.clone()) };
        if o.iter().any(|t| t == "--seed" || t.starts_with("--seed=")) {
            return Err(format!("recipe {}: sets --seed itself, and --seeds gives every recipe its seeds: drop one of the two", self.name));
        }
        let options = o.iter().cloned().chain(["--seed".to_string(), seed.to_string()]).collect();
        Ok(Recipe { name: format!("{}@{seed}", self.name), kind: RecipeKind::Options(options) })
    }

    /// The name without its `@SEED`: recipes that share it are one recipe at several seeds.
    pub fn group(&self) -> &str {
        group_of(&self.name)
    }
}

/// A recipe name without its `@SEED` suffix.
pub fn group_of(name: &str) -> &str {
    name.split_once('@').map_or(name, |(g, _)| g)
}

/// Recipes by name: `default` is today's defaults (no options); `v1` spells
/// out texstyle's first defaults (300 steps at 256², texture 512², FFT,
/// lr 0.05, content 0.5, Gram decay 0.95, 1 sample, painting 512); `ref` is
/// each pairing's reference texture.
pub fn builtin_recipe(name: &str) -> Option<Recipe> {
    let options: &[&str] = match name {
        "default" => &[],
        "v1" => V1_DEFAULTS,
        "ref" => return Some(Recipe { name: name.into(), kind: RecipeKind::Reference }),
        _ => return None,
    };
    Some(Recipe { name: name.into(), kind: RecipeKind::Options(options.iter().map(|s| s.to_string()).collect()) })
}

/// texstyle's first defaults, as options (kept so the bench can always compare against them).
pub const V1_DEFAULTS: &[&str] = &[
    "--steps", "300", "--render-size", "256", "--texture-size", "512", "--param", "fft", "--lr", "0.05",
    "--content-weight", "0.5", "--gram-decay", "0.95", "--samples", "1", "--style-size", "512", "--lr-end", "1",
    "--content-end", "1", "--precision", "f32", "--content-layers", "relu4_2", "--loss", "gram", "--style-layer-weights", "1,1,1,1,1",
];

/// `NAME` (built in), `NAME=texture:PATH` (an image scored as the mesh's
/// texture) or `NAME=OPTIONS` (whitespace-separated style-transfer options).
pub fn parse_recipe(s: &str) -> Result<Recipe, String> {
    match s.split_once('=') {
        Some((name, rest)) if !name.is_empty() => {
            let kind = match rest.trim().strip_prefix("texture:") {
                Some("") => return Err(format!("recipe {name}: texture: needs a path, e.g. '{name}=texture:tex.png'")),
                Some(path) => RecipeKind::Texture(path.into()),
                None => RecipeKind::Options(rest.split_whitespace().map(str::to_string).collect()),
            };
            Ok(Recipe { name: name.to_string(), kind })
        }
        _ => builtin_recipe(s).ok_or_else(|| {
            format!("unknown recipe {s:?}: use `default`, `v1`, `ref`, NAME=OPTIONS such as 'fast=--steps 150', or NAME=texture:PATH")
        }),
    }
}

/// One mesh and one painting, and optionally the texture another method
/// made for them (what the `ref` recipe scores).
#[derive(Clone, Debug)]
pub struct Pairing {
    pub mesh: PathBuf,
    pub style: PathBuf,
    pub reference: Option<PathBuf>,
}

impl Pairing {
    pub fn name(&self) -> String {
        let stem = |p: &Path| p.file_stem().map_or("x".into(), |s| s.to_string_lossy().into_owned());
        format!("{}_x_{}", stem(&self.mesh), stem(&self.style))
    }
}

/// `MESH,IMAGE` or `MESH,IMAGE,REFERENCE_TEXTURE`.
pub fn parse_pairing(s: &str) -> Result<Pairing, String> {
    let parts: Vec<&str> = s.split(',').collect();
    match parts[..] {
        [m, i] if !m.is_empty() && !i.is_empty() => Ok(Pairing { mesh: m.into(), style: i.into(), reference: None }),
        [m, i, r] if !m.is_empty() && !i.is_empty() && !r.is_empty() => Ok(Pairing { mesh: m.into(), style: i.into(), reference: Some(r.into()) }),
        _ => Err(format!("{s:?}: write a pairing as MESH,IMAGE or MESH,IMAGE,REFERENCE_TEXTURE")),
    }
}

/// The recipes `bench quality` compares when none is given: the first defaults and today's.
pub fn default_recipes() -> Vec<Recipe> {
    ["v1", "default"].iter().filter_map(|n| builtin_recipe(n)).collect()
}

/// The folder beside the clone that holds shared assets (not part of a user's clone).
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The default pairings: the textured bunny (where a local copy sits beside
/// the clone; else the repository's plain bunny, which has no content
/// texture) × Starry Night, and spot × The Great Wave.
pub fn default_pairings() -> Vec<Pairing> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let textured = shared().join("assets/meshes/bunny_textured/bunny_textured.obj");
    let bunny = if textured.exists() { textured } else { root.join("meshes/bunny.obj") };
    vec![
        Pairing { mesh: bunny, style: root.join("styles/starry_night.jpg"), reference: None },
        Pairing { mesh: root.join("meshes/spot/spot.obj"), style: root.join("styles/great_wave.jpg"), reference: None },
    ]
}

/// The reference's ground (`--pairs reference`): the textured bunny × each of
/// the three paintings of the Distill article's published results, each with
/// the article's texture for it. These files live beside the clone, not in
/// it; `None` names the first one missing.
pub fn reference_pairings() -> Result<Vec<Pairing>, PathBuf> {
    let s = shared();
    let mesh = s.join("assets/meshes/bunny_textured/bunny_textured.obj");
    let set = [("vangogh_starry_night.jpg", "tex_starry.jpg"), ("munch_the_scream.jpg", "tex_scream.jpg"), ("mosaic_ktisis_met.jpg", "tex_mosaic.jpg")];
    let pairs: Vec<Pairing> = set
        .iter()
        .map(|(style, tex)| Pairing { mesh: mesh.clone(), style: s.join("assets/styles").join(style), reference: Some(s.join("reference/lucid_bunny").join(tex)) })
        .collect();
    for p in &pairs {
        for f in [&p.mesh, &p.style].into_iter().chain(&p.reference) {
            if !f.is_file() {
                return Err(f.clone());
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texture_recipes_and_seeds_parse() {
        let r = parse_recipe("ref=texture:a b/tex.jpg").unwrap();
        assert_eq!((r.name.as_str(), &r.kind), ("ref", &RecipeKind::Texture("a b/tex.jpg".into())));
        assert!(parse_recipe("x=texture:").is_err());
        assert_eq!(parse_recipe("ref").unwrap().kind, RecipeKind::Reference);
        assert_eq!(parse_recipe("fast=--steps 10").unwrap().options().unwrap(), ["--steps", "10"]);
        let s = parse_recipe("fast=--steps 10").unwrap().with_seed(3).unwrap();
        assert_eq!((s.name.as_str(), s.group(), s.options().unwrap().join(" ")), ("fast@3", "fast", "--steps 10 --seed 3".into()));
        assert!(parse_recipe("s=--seed 1").unwrap().with_seed(2).is_err(), "a recipe's own seed and --seeds");
        assert_eq!(r.with_seed(1).unwrap().name, "ref", "a texture has no seed");
        assert!(parse_pairing("m.obj,s.jpg,t.png").unwrap().reference.is_some());
        assert!(parse_pairing("m.obj").is_err() && parse_pairing("m.obj,").is_err() && parse_pairing("a,b,c,d").is_err());
    }
}
