//! What was typed: clap definitions only, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Restyle the texture of a 3D mesh after a painting.
#[derive(Debug, Parser)]
#[command(name = "texstyle", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a mesh with its texture from several views, plus a contact sheet.
    Render(RenderArgs),
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
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub views: u32,

    /// Width and height of each view, in pixels (16–4096).
    #[arg(long, value_name = "PIXELS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub size: u32,

    /// Supersampling per axis: each pixel averages SAMPLES² samples (1–4).
    #[arg(long, value_name = "SAMPLES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=4))]
    pub samples: u32,

    /// How the views are placed.
    #[arg(long, value_enum, default_value_t = Layout::Turntable)]
    pub layout: Layout,

    /// Seed of the random views (--layout random).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,

    /// Elevation of turntable views above the horizon, in degrees (−89–89).
    #[arg(long, value_name = "DEGREES", default_value_t = 20.0, allow_negative_numbers = true)]
    pub elevation: f32,

    /// Background colour as hex RGB.
    #[arg(long, value_name = "RRGGBB", default_value = "808080", value_parser = parse_hex_rgb)]
    pub background: [f32; 3],

    /// Rasterize on the CPU even when a GPU adapter exists.
    #[arg(long)]
    pub cpu: bool,

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

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("texstyle").chain(args.iter().copied()))
    }

    #[test]
    fn render_defaults() {
        let Command::Render(a) = parse(&["render", "m.obj", "--out", "o"]).unwrap().command;
        assert_eq!((a.views, a.size, a.samples, a.seed, a.layout), (8, 512, 2, 0, Layout::Turntable));
        assert_eq!(a.background, [128.0 / 255.0; 3]);
        assert!(!a.cpu && a.texture.is_none());
    }

    #[test]
    fn render_options_parse_and_absurd_values_are_refused() {
        let Command::Render(a) = parse(&[
            "render", "m.obj", "--out", "o", "--views", "3", "--size", "64", "--samples", "1", "--layout", "random",
            "--seed", "9", "--elevation", "-30", "--background", "#ff0000", "--cpu", "--texture", "t.png",
        ])
        .unwrap()
        .command;
        assert_eq!((a.views, a.size, a.samples, a.seed, a.layout, a.elevation), (3, 64, 1, 9, Layout::Random, -30.0));
        assert_eq!(a.background, [1.0, 0.0, 0.0]);
        assert!(a.cpu && a.texture.is_some());
        for bad in [["--size", "0"], ["--size", "100000"], ["--views", "0"], ["--samples", "9"], ["--background", "red"]] {
            assert!(parse(&["render", "m.obj", "--out", "o", bad[0], bad[1]]).is_err(), "{bad:?} accepted");
        }
        assert!(parse(&["render", "m.obj"]).is_err(), "--out is required");
    }
}
