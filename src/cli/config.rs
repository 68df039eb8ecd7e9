//! What the command line means: every option check in one place (ranges
//! that clap cannot express, options that must agree with each other, with
//! the mesh or with the machine), command-specific defaults applied, and the
//! result as plain values with no `Option` left for later code to unwrap.
//! Integer ranges are clap's (`args`, from [`super::defaults`]), checked
//! while parsing and not again here.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::args::{Layout, PrecisionArg, RenderArgs, StyleArgs, UvArg};
use super::defaults as d;
use super::error::{BadInput, CliError};
use crate::camera::CameraRange;
use crate::export;
use crate::optim;
use crate::vgg::Precision;

/// Held-out views the style loss is measured on before and after a run.
pub const EVAL_VIEWS: usize = 4;
pub use crate::preview::{RENDER_BACKGROUND, STYLE_BACKGROUND};

/// A bad option value (exit code 2).
pub fn bad(msg: String) -> CliError {
    BadInput::Option(msg).into()
}

/// A file the command was given that cannot be used as it is (exit code 2).
pub fn bad_file(msg: String) -> CliError {
    BadInput::File(msg).into()
}

/// `texstyle MESH --style IMAGE [options]`, checked.
#[derive(Debug, Clone)]
pub struct StyleConfig {
    pub mesh: PathBuf,
    pub style: PathBuf,
    pub out: PathBuf,
    /// `None`: the cache.
    pub weights: Option<PathBuf>,
    /// Longer side of the painting before its Grams are taken, in pixels.
    pub style_size: u32,
    /// The network's conv products (`--precision`, resolved for this CPU).
    pub precision: crate::vgg::Precision,
    pub cpu: bool,
    pub optim: optim::Config,
    /// The exports asked for (checked against the mesh by `export::Plan`).
    pub export: export::Request,
    /// Steps between checkpoints (0: only when interrupted).
    pub checkpoint_every: usize,
    /// Continue from the checkpoint in `OUT.partial`.
    pub resume: bool,
    /// `--uv`; `None`: keep the file's UVs when every face has them, else unwrap.
    pub uv: Option<crate::mesh::UvChoice>,
    /// Write the run page `OUT/index.html` (off with `--no-report`).
    pub report: bool,
    /// `--strength`, when given (already mapped onto the weights in `optim`).
    pub strength: Option<f32>,
    /// `--protect [MATERIAL=]MASK`; resolved against the mesh by [`protect`].
    pub protect: Option<ProtectArg>,
}

/// `--protect` as typed: the mask file and the material it covers (`None`:
/// the mesh's only material).
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectArg {
    pub material: Option<String>,
    pub mask: PathBuf,
}

impl ProtectArg {
    /// `MASK` or `MATERIAL=MASK`; a path that exists as typed is a path, even with a `=` in it.
    fn parse(typed: PathBuf) -> ProtectArg {
        let split = typed.to_str().filter(|_| !typed.exists()).and_then(|s| s.split_once('='));
        match split {
            Some((m, p)) if !m.is_empty() && !p.is_empty() => ProtectArg { material: Some(m.to_string()), mask: PathBuf::from(p) },
            _ => ProtectArg { material: None, mask: typed },
        }
    }
}

/// `--strength s` as (style weight, content weight, content end). With
/// `s₀` = [`d::STRENGTH`]: style = [`d::STYLE_WEIGHT`]·s/s₀, content =
/// [`d::CONTENT_WEIGHT`]·(1−s)/(1−s₀), so `s₀` gives the defaults exactly
/// (x/x = 1), 0 content only and 1 style only; below `s₀` the content weight
/// also decays less, reaching no decay (`--content-end 1`) at 0, so a weak
/// run keeps the object's features to its end.
pub fn strength_weights(s: f32) -> (f32, f32, f32) {
    let s0 = d::STRENGTH;
    let style = d::STYLE_WEIGHT * (s / s0);
    let content = d::CONTENT_WEIGHT * ((1.0 - s) / (1.0 - s0));
    let end = match s >= s0 {
        true => d::CONTENT_END,
        false => d::CONTENT_END + (1.0 - d::CONTENT_END) * ((s0 - s) / s0),
    };
    (style, content, end)
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "mesh".into())
}

impl StyleConfig {
    pub fn from_args(a: StyleArgs) -> Result<StyleConfig, CliError> {
        // clap requires both; a missing one here is a parser change, still reported as bad input.
        let mesh = a.mesh.ok_or_else(|| bad("MESH is required".into()))?;
        let style = a.style.ok_or_else(|| bad("--style IMAGE is required".into()))?;
        if !(0.0..1.0).contains(&a.gram_decay) {
            return Err(bad(format!("--gram-decay {} is out of range: use 0 (no memory) up to but not including 1, e.g. 0.95", a.gram_decay)));
        }
        if !(a.lr.is_finite() && a.lr > 0.0 && a.lr <= 10.0) {
            return Err(bad(format!("--lr {} is out of range: use a positive rate up to 10, e.g. 0.05", a.lr)));
        }
        for (name, v) in [("--style-weight", a.style_weight), ("--content-weight", a.content_weight)] {
            if !(v.is_finite() && (0.0..=1e6).contains(&v)) {
                return Err(bad(format!("{name} {v} is out of range: use a weight between 0 and 1000000")));
            }
        }
        if let Some(s) = a.strength {
            if !(s.is_finite() && d::STRENGTH_RANGE.contains(&s)) {
                return Err(bad(format!("--strength {s} is out of range: use 0 (barely) to 1 (all painting), e.g. {}", d::STRENGTH)));
            }
        }
        let nnfm_weight = nnfm_weight(a.loss, a.nnfm_weight)?;
        if a.style_weight == 0.0 {
            return Err(bad("--style-weight 0 turns the style off, so the run would only copy the mesh's own texture: use a positive weight, e.g. 1".into()));
        }
        if !(a.lr_end.is_finite() && (0.0..=1.0).contains(&a.lr_end)) {
            return Err(bad(format!("--lr-end {} is out of range: use a fraction of --lr from 0 to 1, e.g. 0.1", a.lr_end)));
        }
        if !(a.content_end.is_finite() && (0.0..=1.0).contains(&a.content_end)) {
            return Err(bad(format!("--content-end {} is out of range: use a fraction of --content-weight from 0 to 1, e.g. 0.2", a.content_end)));
        }
        if let Some(mm) = a.export.print_size {
            if !(mm.is_finite() && mm > 0.0 && mm <= d::MAX_PRINT_SIZE_MM) {
                return Err(bad(format!(
                    "--print-size {mm} is out of range: give the longest side in millimetres, above 0 and up to {}, e.g. 80",
                    d::MAX_PRINT_SIZE_MM
                )));
            }
        }
        let content_layers = content_layers(&a.content_layers)?;
        let style_layer_weights = style_layer_weights(&a.style_layer_weights)?;
        let out = resolve_out(a.out, a.resume.as_deref(), &mesh, &style)?;
        // clap refuses --strength beside the options it sets.
        let (style_weight, content_weight, content_end) = match a.strength {
            Some(s) => strength_weights(s),
            None => (a.style_weight, a.content_weight, a.content_end),
        };
        let optim = optim::Config {
            // A preset's steps arrive as --steps (args::parse_from).
            steps: a.steps.unwrap_or(d::STEPS) as usize,
            texture_size: a.texture_size,
            render_size: a.render_size,
            start_render_size: a.start_render_size.unwrap_or(a.render_size),
            samples: a.samples,
            mip: !a.no_mip,
            style_weight,
            content_weight,
            content_layers,
            style_layer_weights,
            gram_decay: a.gram_decay,
            loss: a.loss,
            nnfm_weight,
            param: a.param,
            lr: a.lr,
            lr_end: a.lr_end,
            content_end,
            seed: a.seed,
            background: a.view.background.unwrap_or(STYLE_BACKGROUND),
            cameras: CameraRange::default(),
            eval_views: EVAL_VIEWS,
            keep_colors: a.keep_colors,
            // Needs the mesh: `protect` fills it in.
            protect: None,
        };
        let mut formats = a.export.export;
        if a.export.zip {
            formats.push(export::Format::ObjZip);
        }
        if a.export.close_holes && !formats.iter().any(|f| matches!(f, export::Format::ThreeMf | export::Format::VertexColors | export::Format::Palette(_))) {
            return Err(bad("--close-holes fills the holes of the print exports, and none is asked for: add --export 3mf, vertex-colors or palette:N".into()));
        }
        let export = export::Request {
            formats,
            print_size_mm: a.export.print_size,
            max_triangles: a.export.max_triangles as usize,
            close_holes: a.export.close_holes,
        };
        let (checkpoint_every, resume) = (a.checkpoint_every as usize, a.resume.is_some());
        let uv = a.uv.map(|u| match u {
            UvArg::Keep => crate::mesh::UvChoice::Keep,
            UvArg::Auto => crate::mesh::UvChoice::Auto,
        });
        let precision = precision(a.precision)?;
        let report = !a.export.no_report;
        let (strength, protect) = (a.strength, a.protect.map(ProtectArg::parse));
        Ok(StyleConfig { mesh, style, out, weights: a.weights, style_size: a.style_size, precision, cpu: a.view.cpu, optim, export, checkpoint_every, resume, uv, report, strength, protect })
    }

    /// What must match for a checkpoint to be resumed: every option that
    /// changes the optimization, and the bytes of the mesh, its textures and
    /// the painting. One `key=value` per line (see [`crate::checkpoint`]).
    pub fn fingerprint(&self, mesh: &crate::mesh::Mesh) -> anyhow::Result<String> {
        use crate::checkpoint::file_hash;
        let c = &self.optim;
        let mut lines = vec![
            format!("mesh={}", file_hash(&self.mesh)?),
            format!("style={}", file_hash(&self.style)?),
            format!("weights={}", self.weights.as_ref().map_or("cache".into(), |w| w.display().to_string())),
            format!("--style-size={}", self.style_size),
            format!("--precision={:?}", self.precision),
            format!("--steps={}", c.steps),
            format!("--texture-size={}", c.texture_size),
            format!("--render-size={}", c.render_size),
            format!("--start-render-size={}", c.start_render_size),
            format!("--lr-end={}", c.lr_end),
            format!("--content-end={}", c.content_end),
            format!("--samples={}", c.samples),
            format!("--mip={}", c.mip),
            format!("--style-weight={}", c.style_weight),
            format!("--content-weight={}", c.content_weight),
            format!("--content-layers={}", c.content_layers.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",")),
            format!("--style-layer-weights={:?}", c.style_layer_weights),
            format!("--gram-decay={}", c.gram_decay),
            format!("--loss={:?}", c.loss),
            format!("--nnfm-weight={}", c.nnfm_weight),
            format!("--param={:?}", c.param),
            format!("--lr={}", c.lr),
            format!("--seed={}", c.seed),
            format!("--background={:?}", c.background),
            // The two rasterizers differ in the last bits: a run continues on the one it began with.
            format!("--cpu={}", if self.cpu { "on" } else { "off" }),
            format!("--strength={}", self.strength.map_or("unset".into(), |s| s.to_string())),
            format!("--keep-colors={}", if c.keep_colors { "on" } else { "off" }),
            match &self.protect {
                Some(p) => format!("--protect={}:{}", p.material.as_deref().unwrap_or(""), file_hash(&p.mask)?),
                None => "--protect=none".into(),
            },
        ];
        for (i, m) in mesh.materials.iter().enumerate() {
            if let Some(p) = &m.texture_path {
                lines.push(format!("texture.{i}={}", file_hash(p)?));
            }
        }
        Ok(lines.join("\n"))
    }

    /// The output files' base name: the mesh's.
    pub fn name(&self) -> String {
        stem(&self.mesh)
    }
}

/// `--nnfm-weight`, checked against `--loss` (the weight of a term that is off is refused, not
/// ignored).
fn nnfm_weight(loss: crate::loss::LossKind, weight: Option<f32>) -> Result<f32, CliError> {
    use crate::loss::LossKind;
    match (loss, weight) {
        (LossKind::Gram, Some(w)) => Err(bad(format!("--nnfm-weight {w} weighs the NNFM term, which --loss gram leaves out: add --loss gram+nnfm, or drop --nnfm-weight"))),
        (LossKind::Gram, None) => Ok(d::NNFM_WEIGHT),
        (LossKind::GramNnfm, w) => {
            let w = w.unwrap_or(d::NNFM_WEIGHT);
            if !(w.is_finite() && w > 0.0 && w <= 1e6) {
                return Err(bad(format!("--nnfm-weight {w} is out of range: use a positive weight up to 1000000, e.g. {}", d::NNFM_WEIGHT)));
            }
            Ok(w)
        }
    }
}

/// `--out`, or the folder a `--resume OUT.partial` belongs to (the two must agree).
/// `--content-layers`: VGG16 layer names (relu or conv, block 1–5), at most one of each.
/// `--style-layer-weights`: five finite weights, none negative, some positive, scaled to mean 1.
fn style_layer_weights(list: &str) -> Result<[f32; 5], CliError> {
    let n = crate::loss::STYLE_LAYERS.len();
    let usage = "give five weights for relu1_1,relu2_1,relu3_1,relu4_1,relu5_1, e.g. 1,1,1,1,1 (equal) or 3,3,1,1,1 (crisper strokes)";
    let values = list
        .split(',')
        .map(|w| w.trim().parse::<f32>().ok().filter(|w| w.is_finite() && *w >= 0.0))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| bad(format!("--style-layer-weights {list}: each weight must be a number of 0 or more: {usage}")))?;
    if values.len() != n {
        return Err(bad(format!("--style-layer-weights {list}: {} weights given: {usage}", values.len())));
    }
    let sum: f32 = values.iter().sum();
    if !(sum > 0.0 && sum.is_finite()) {
        return Err(bad(format!("--style-layer-weights {list}: all zero turns the style off: {usage}")));
    }
    let mut w = [0.0; 5];
    for (w, v) in w.iter_mut().zip(values) {
        *w = v * n as f32 / sum;
    }
    Ok(w)
}

fn content_layers(list: &str) -> Result<Vec<crate::vgg::Layer>, CliError> {
    let mut layers: Vec<crate::vgg::Layer> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let layer: crate::vgg::Layer = name
            .parse()
            .ok()
            // VGG16: two convs in blocks 1–2, three in blocks 3–5.
            .filter(|l: &crate::vgg::Layer| (1..=5).contains(&l.block) && (1..=if l.block <= 2 { 2 } else { 3 }).contains(&l.index))
            .ok_or_else(|| bad(format!("--content-layers: {name} is not a VGG16 layer: name layers such as relu2_2,relu4_2")))?;
        if layers.contains(&layer) {
            return Err(bad(format!("--content-layers names {name} twice: name each layer once")));
        }
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err(bad("--content-layers is empty: name at least one layer (e.g. relu4_2), or use --content-weight 0 for no content loss".into()));
    }
    Ok(layers)
}

fn resolve_out(out: Option<PathBuf>, resume: Option<&Path>, mesh: &Path, style: &Path) -> Result<PathBuf, CliError> {
    let Some(work) = resume else {
        return Ok(out.unwrap_or_else(|| PathBuf::from("texstyle-out").join(format!("{}_{}", stem(mesh), stem(style)))));
    };
    let name = work.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some(base) = name.strip_suffix(".partial").filter(|b| !b.is_empty()) else {
        return Err(bad(format!(
            "--resume {}: not a run's work folder (it is named OUT.partial, beside the output folder OUT; the run prints it when it starts)",
            work.display()
        )));
    };
    let derived = work.with_file_name(base);
    match out {
        Some(o) if std::path::absolute(&o).ok() != std::path::absolute(&derived).ok() => Err(bad(format!(
            "--resume {} belongs to --out {}, not --out {} (leave --out out, or make them agree)",
            work.display(),
            derived.display(),
            o.display()
        ))),
        _ => Ok(derived),
    }
}

/// The controls that depend on the mesh, checked against it: `--keep-colors`
/// and `--strength 0` need the mesh's own colours, `--protect` a textured
/// material (named, when there are several) and a readable mask, resampled
/// to `--texture-size` (said on stderr) when its size differs.
pub fn check_controls(cfg: &mut StyleConfig, mesh: &crate::mesh::Mesh) -> Result<(), CliError> {
    let shown = crate::input::shown(&cfg.mesh);
    let textured = mesh.materials.iter().any(|m| m.texture.is_some());
    if cfg.optim.keep_colors && !textured {
        return Err(bad_file(format!(
            "{shown}: --keep-colors keeps the object's own colours, and the mesh has no texture or vertex colours              (give a textured mesh, or leave --keep-colors out)"
        )));
    }
    if cfg.strength == Some(0.0) && !textured {
        return Err(bad_file(format!(
            "{shown}: --strength 0 keeps only the object's own texture, and the mesh has no texture or vertex colours              (give a textured mesh, or a higher --strength)"
        )));
    }
    if let Some(arg) = cfg.protect.clone() {
        cfg.optim.protect = Some(protect(&arg, mesh, cfg.optim.texture_size, &shown)?);
    }
    Ok(())
}

/// `--protect` resolved: the material, the mask at the texture's size.
fn protect(arg: &ProtectArg, mesh: &crate::mesh::Mesh, size: u32, shown: &str) -> Result<optim::Protect, CliError> {
    let names = || mesh.materials.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
    let material = match (&arg.material, mesh.materials.len()) {
        (None, 1) => 0,
        (None, n) => {
            return Err(bad(format!(
                "--protect {}: {shown} has {n} materials ({}): say which one the mask covers, --protect MATERIAL={}",
                arg.mask.display(),
                names(),
                arg.mask.display()
            )))
        }
        (Some(name), _) => mesh.materials.iter().position(|m| &m.name == name).ok_or_else(|| {
            bad(format!("--protect {name}={}: {shown} has no material {name} (its materials: {})", arg.mask.display(), names()))
        })?,
    };
    let Some(original) = &mesh.materials[material].texture else {
        return Err(bad_file(format!(
            "{shown}: --protect keeps texels of the mesh's own texture, and material {} has none (give a textured mesh, or leave --protect out)",
            mesh.materials[material].name
        )));
    };
    let mask = crate::image_io::Image::load(&arg.mask).with_context(|| format!("reading the --protect mask {}", crate::input::shown(&arg.mask)))?;
    if (mask.width, mask.height) != (size, size) {
        eprintln!(
            "texstyle: --protect: the mask is {}×{}, resampled (bilinear) to the texture's {size}×{size}",
            mask.width, mask.height
        );
    }
    Ok(optim::Protect::new(material, &mask, original, size))
}

/// `texstyle render`, checked.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    pub mesh: PathBuf,
    pub texture: Option<PathBuf>,
    pub views: usize,
    pub size: u32,
    pub samples: u32,
    pub layout: Layout,
    pub seed: u64,
    pub elevation: f32,
    pub background: [f32; 3],
    pub cpu: bool,
    pub out: PathBuf,
}

impl RenderConfig {
    pub fn from_args(a: RenderArgs) -> Result<RenderConfig, CliError> {
        if !d::ELEVATION_RANGE.contains(&a.elevation) {
            return Err(bad(format!(
                "--elevation {} is out of range: use a value between {} and {} degrees",
                a.elevation,
                d::ELEVATION_RANGE.start(),
                d::ELEVATION_RANGE.end()
            )));
        }
        Ok(RenderConfig {
            mesh: a.mesh,
            texture: a.texture,
            views: a.views as usize,
            size: a.size,
            samples: a.samples,
            layout: a.layout,
            seed: a.seed,
            elevation: a.elevation,
            background: a.view.background.unwrap_or(RENDER_BACKGROUND),
            cpu: a.view.cpu,
            out: a.out,
        })
    }
}

/// The export options against the mesh, before the export is planned: every
/// exported file keeps at least the mesh's own triangles.
pub fn check_export(request: &export::Request, mesh: &crate::mesh::Mesh) -> Result<(), CliError> {
    if mesh.triangles.len() > request.max_triangles {
        return Err(bad(format!(
            "{}: the mesh has {} triangles, more than --max-triangles {} allows in an exported file (raise --max-triangles to at least {}, or decimate the mesh)",
            mesh.path.display(),
            mesh.triangles.len(),
            request.max_triangles,
            mesh.triangles.len()
        )));
    }
    Ok(())
}

/// Refuses a run whose estimated peak memory exceeds what the machine has
/// free (Linux: `MemAvailable`), before anything is allocated.
pub fn check_memory(cfg: &optim::Config, materials: usize) -> Result<(), CliError> {
    let need = optim::estimated_peak_bytes(cfg, materials);
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    });
    match available {
        Some(have) if need > have => Err(bad(format!(
            "--texture-size {} with {} material(s) and views of {}² needs about {:.1} GB of memory, and {:.1} GB are free: \
             use a smaller --texture-size or --render-size",
            cfg.texture_size,
            materials,
            cfg.render_size,
            need as f64 / 1e9,
            have as f64 / 1e9
        ))),
        _ => Ok(()),
    }
}

/// `--precision`, resolved for this CPU.
pub fn precision(p: PrecisionArg) -> Result<Precision, CliError> {
    Ok(match p {
        PrecisionArg::Auto => Precision::best(),
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::Bf16 if Precision::best() == Precision::Bf16 => Precision::Bf16,
        PrecisionArg::Bf16 => return Err(bad("--precision bf16 needs a CPU with AVX512-BF16 (AMD Zen 4, Intel Sapphire Rapids or later), which this one lacks: use --precision f32 or auto".into())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn style(args: &[&str]) -> Result<StyleConfig, CliError> {
        let cli = super::super::Cli::try_parse_from(["texstyle", "m.obj", "--style", "s.jpg"].iter().chain(args)).unwrap();
        StyleConfig::from_args(cli.style)
    }

    #[test]
    fn style_defaults_and_checked_values() {
        let c = style(&[]).unwrap();
        assert_eq!(c.out, PathBuf::from("texstyle-out/m_s"));
        assert_eq!((c.optim.background, c.optim.eval_views, c.cpu), (STYLE_BACKGROUND, EVAL_VIEWS, false));
        assert_eq!(c.optim.loss, d::LOSS);
        let c = style(&["--loss", "gram+nnfm", "--nnfm-weight", "3"]).unwrap();
        assert_eq!((c.optim.loss, c.optim.nnfm_weight), (crate::loss::LossKind::GramNnfm, 3.0));
        assert_eq!(style(&["--loss", "gram+nnfm"]).unwrap().optim.nnfm_weight, d::NNFM_WEIGHT);
        let layers = |c: &StyleConfig| c.optim.content_layers.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(layers(&c).join(","), d::CONTENT_LAYERS);
        assert_eq!(layers(&style(&["--content-layers", " relu1_2, conv2_2,relu5_3"]).unwrap()), ["relu1_2", "conv2_2", "relu5_3"]);
        let weights = d::STYLE_LAYER_WEIGHTS.split(',').map(|w| w.parse::<f32>().unwrap());
        let sum: f32 = weights.clone().sum();
        let expect: Vec<f32> = weights.map(|w| w * 5.0 / sum).collect();
        assert_eq!(style(&[]).unwrap().optim.style_layer_weights.to_vec(), expect);
        // Relative weights, scaled to mean 1: the style weight stays the whole style's.
        let w = style(&["--style-layer-weights", " 3, 3,1,1,1"]).unwrap().optim.style_layer_weights;
        assert_eq!(w, [15.0 / 9.0, 15.0 / 9.0, 5.0 / 9.0, 5.0 / 9.0, 5.0 / 9.0]);
        assert_eq!(style(&["--style-layer-weights", "0,0,2,0,0"]).unwrap().optim.style_layer_weights, [0.0, 0.0, 5.0, 0.0, 0.0]);
        let c = style(&["--background", "ff0000", "--cpu", "--out", "o"]).unwrap();
        assert_eq!((c.optim.background, c.cpu, c.out), ([1.0, 0.0, 0.0], true, PathBuf::from("o")));
        for (bad, mention) in [
            (&["--gram-decay", "1"][..], "--gram-decay"),
            (&["--gram-decay", "-0.1"], "--gram-decay"),
            (&["--lr", "nan"], "--lr"),
            (&["--lr", "0"], "--lr"),
            (&["--style-weight", "0"], "--style-weight 0"),
            (&["--content-weight", "inf"], "--content-weight"),
            (&["--print-size", "0"], "--print-size"),
            (&["--print-size", "-5"], "--print-size"),
            (&["--print-size", "nan"], "--print-size"),
            (&["--print-size", "inf"], "--print-size"),
            (&["--print-size", "1000000"], "--print-size"),
            (&["--close-holes"], "--close-holes"),
            (&["--nnfm-weight", "2"], "--loss gram+nnfm"),
            (&["--loss", "gram+nnfm", "--nnfm-weight", "0"], "--nnfm-weight 0"),
            (&["--loss", "gram+nnfm", "--nnfm-weight", "nan"], "--nnfm-weight NaN"),
            (&["--content-layers", "relu9_1"], "relu9_1"),
            (&["--content-layers", "relu1_3"], "relu1_3"),
            (&["--content-layers", "relu4_2,relu4_2"], "twice"),
            (&["--content-layers", ","], "--content-layers is empty"),
            (&["--style-layer-weights", "1,1,1,1"], "4 weights given"),
            (&["--style-layer-weights", "1,1,1,1,1,1"], "6 weights given"),
            (&["--style-layer-weights", "1,1,-1,1,1"], "0 or more"),
            (&["--style-layer-weights", "1,1,nan,1,1"], "0 or more"),
            (&["--style-layer-weights", "1,1,x,1,1"], "0 or more"),
            (&["--style-layer-weights", "0,0,0,0,0"], "all zero"),
        ] {
            let e = style(bad).unwrap_err();
            assert_eq!(e.exit, super::super::Exit::BadInput, "{bad:?}");
            assert!(e.error.to_string().contains(mention), "{bad:?}: {}", e.error);
        }
    }

    #[test]
    fn strength_maps_onto_the_weights_and_its_default_is_the_defaults_exactly() {
        assert_eq!(strength_weights(d::STRENGTH), (d::STYLE_WEIGHT, d::CONTENT_WEIGHT, d::CONTENT_END));
        assert_eq!(strength_weights(0.0), (0.0, 2.0 * d::CONTENT_WEIGHT, 1.0));
        assert_eq!(strength_weights(1.0), (2.0 * d::STYLE_WEIGHT, 0.0, d::CONTENT_END));
        // More strength: more style against content, never less.
        let ratio = |s: f32| strength_weights(s).0 / strength_weights(s).1;
        assert!((1..10).all(|i| ratio(i as f32 / 10.0) < ratio((i + 1) as f32 / 10.0)));
        let c = style(&["--strength", "0.5"]).unwrap();
        assert_eq!((c.optim.style_weight, c.optim.content_weight, c.optim.content_end), (d::STYLE_WEIGHT, d::CONTENT_WEIGHT, d::CONTENT_END));
        let c = style(&["--strength", "0.3"]).unwrap();
        assert_eq!((c.optim.style_weight, c.optim.content_weight, c.optim.content_end), strength_weights(0.3));
        for bad in ["-0.1", "1.01", "nan"] {
            assert!(style(&["--strength", bad]).unwrap_err().error.to_string().contains("--strength"), "{bad}");
        }
        // The options it sets are refused beside it (by the parser).
        for other in ["--style-weight", "--content-weight", "--content-end"] {
            assert!(super::super::Cli::try_parse_from(["texstyle", "m.obj", "--style", "s.jpg", "--strength", "0.3", other, "0.5"]).is_err(), "{other}");
        }
    }

    #[test]
    fn protect_reads_an_optional_material_name() {
        let p = ProtectArg::parse(PathBuf::from("face.png"));
        assert_eq!(p, ProtectArg { material: None, mask: PathBuf::from("face.png") });
        let p = ProtectArg::parse(PathBuf::from("skin=masks/face.png"));
        assert_eq!(p, ProtectArg { material: Some("skin".into()), mask: PathBuf::from("masks/face.png") });
    }

    #[test]
    fn a_triangle_budget_below_the_mesh_is_refused_naming_the_flag() {
        let mesh = crate::export::test_mesh::triangles(&["a", "b", "c"]);
        let req = |max_triangles| export::Request { formats: vec![export::Format::Obj], print_size_mm: None, max_triangles, close_holes: false };
        let e = check_export(&req(2), &mesh).unwrap_err();
        assert!(e.error.to_string().contains("3 triangles, more than --max-triangles 2"), "{}", e.error);
        assert!(check_export(&req(3), &mesh).is_ok());
    }

    #[test]
    fn render_background_default_differs_from_the_style_transfer() {
        let cli = super::super::Cli::try_parse_from(["texstyle", "render", "m.obj", "--out", "o"]).unwrap();
        let Some(super::super::Command::Render(a)) = cli.command else { panic!("render") };
        assert_eq!(RenderConfig::from_args(a).unwrap().background, RENDER_BACKGROUND);
    }
}
