//! Every default and value range of the command line, written once: the
//! parser (`args`: clap's defaults, ranges and help text), the presets, the
//! checks (`config`) and the tests read them here, and a test holds the
//! README's options table to the `--help` they produce. A leaf.

use std::ops::RangeInclusive;

// The style transfer.

/// Optimization steps when neither `--steps` nor a preset says.
pub const STEPS: u32 = 130;
/// `--preset long`: the default recipe over this many steps (every schedule stretched over them).
pub const LONG_STEPS: u32 = 260;
/// `--preset fast`: the default recipe of texstyle 0.1 (about 50 s for the
/// textured bunny on 2 cores) spelled out, so it keeps its result and its
/// time whatever the defaults become. When a default changes, or an option
/// is added whose default changes the result, its old value goes here.
/// (Mip-mapped lookups are on: `--no-mip` is a switch with no "on" form.)
pub const PRESET_FAST: &[&str] = &[
    "--steps", "200", "--texture-size", "512", "--render-size", "256", "--start-render-size", "256", "--samples", "2",
    "--style-weight", "1", "--content-weight", "0.5", "--gram-decay", "0.95", "--param", "pyramid", "--lr", "0.06",
    "--lr-end", "0.2", "--content-end", "0.6", "--style-size", "512", "--content-layers", "relu4_2", "--loss", "gram",
    "--style-layer-weights", "1,1,1,1,1",
];
pub const STEPS_RANGE: RangeInclusive<i64> = 1..=100_000;
pub const TEXTURE_SIZE: u32 = 1024;
pub const TEXTURE_SIZE_RANGE: RangeInclusive<i64> = 16..=4096;
pub const RENDER_SIZE: u32 = 384;
/// `--render-size` and `--start-render-size`.
pub const RENDER_SIZE_RANGE: RangeInclusive<i64> = 32..=2048;
/// Supersampling per axis, of the style transfer and of `render`.
pub const SAMPLES: u32 = 2;
pub const SAMPLES_RANGE: RangeInclusive<i64> = 1..=4;
pub const STYLE_WEIGHT: f32 = 1.0;
pub const CONTENT_WEIGHT: f32 = 0.7;
/// `--style-layer-weights`: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, scaled to mean 1.
pub const STYLE_LAYER_WEIGHTS: &str = "8,8,3,3,3";
/// `--content-layers`.
pub const CONTENT_LAYERS: &str = "relu1_2,relu2_2,relu4_2";
pub const GRAM_DECAY: f32 = 0.95;
/// `--loss`.
pub const LOSS: crate::loss::LossKind = crate::loss::LossKind::Gram;
/// `--nnfm-weight` (with `--loss gram+nnfm`).
pub const NNFM_WEIGHT: f32 = 1.0;
pub const LR: f64 = 0.06;
pub const LR_END: f64 = 0.2;
pub const CONTENT_END: f32 = 0.72;
/// `--strength`: the balance [`STYLE_WEIGHT`], [`CONTENT_WEIGHT`] and
/// [`CONTENT_END`] stand for (`config::strength_weights` maps it onto them).
pub const STRENGTH: f32 = 0.5;
pub const STRENGTH_RANGE: RangeInclusive<f32> = 0.0..=1.0;
pub const SEED: u64 = 0;
pub const CHECKPOINT_EVERY: u32 = 50;
pub const CHECKPOINT_EVERY_RANGE: RangeInclusive<i64> = 0..=100_000;
pub const STYLE_SIZE: u32 = 512;
pub const STYLE_SIZE_RANGE: RangeInclusive<i64> = 64..=4096;
/// `--export`.
pub const EXPORT: &str = "obj";
pub const MAX_TRIANGLES: u64 = crate::export::DEFAULT_MAX_TRIANGLES as u64;
pub const MAX_TRIANGLES_RANGE: RangeInclusive<u64> = 1..=100_000_000;
/// The run page every style run writes (unless `--no-report`).
pub const REPORT_PAGE: &str = "index.html";
/// `--print-size`, in millimetres: above 0 and up to this.
pub const MAX_PRINT_SIZE_MM: f32 = 10_000.0;

// `texstyle render`.

pub const VIEWS: u32 = 8;
pub const VIEWS_RANGE: RangeInclusive<i64> = 1..=256;
pub const VIEW_SIZE: u32 = 512;
pub const VIEW_SIZE_RANGE: RangeInclusive<i64> = 16..=4096;
/// Degrees above the horizon.
pub const ELEVATION: f32 = 20.0;
pub const ELEVATION_RANGE: RangeInclusive<f32> = -89.0..=89.0;

// `texstyle batch`.

/// Jobs at once on one machine: one, as each run uses every core.
pub const BATCH_JOBS: u32 = 1;
pub const BATCH_JOBS_RANGE: RangeInclusive<i64> = 1..=256;
/// Seconds before a Slurm task's kill that it is sent SIGTERM (`--signal`): a
/// step, a checkpoint and the exports of the result so far fit in it.
pub const SLURM_SIGNAL_LEAD_S: u32 = 120;

// `texstyle bench`.

pub const BENCH_SIZES: [u32; 2] = [256, 512];
/// relu5_1 pools 16×, so 16 pixels is the smallest image.
pub const BENCH_SIZE_RANGE: RangeInclusive<i64> = 16..=4096;
pub const BENCH_WARMUP: u32 = 2;
pub const BENCH_WARMUP_RANGE: RangeInclusive<i64> = 0..=1000;
pub const BENCH_ITERS: u32 = 5;
pub const BENCH_ITERS_RANGE: RangeInclusive<i64> = 1..=1000;
pub const QUALITY_AT: &str = "30,60,90,180";
pub const QUALITY_OUT: &str = "texstyle-out/bench-quality";

/// A range as the help text writes it: `16–4096` (`−89–89` with a minus sign).
pub fn span<T: std::fmt::Display>(r: &RangeInclusive<T>) -> String {
    format!("{}–{}", r.start(), r.end()).replacen('-', "−", 1)
}
