//! The controls of the style transfer on small runs of spot (64² texture and
//! views): `--strength` at its ends, `--keep-colors` against a plain run,
//! `--protect` through the loop. The command-line side (errors, the exported
//! PNG) is in `tests/cli.rs`.

mod common;

use common::{config, run};
use texstyle::cli::config::strength_weights;
use texstyle::image_io::Image;
use texstyle::optim::{Config, Protect};
use texstyle::texture::ParamKind;

const STEPS: usize = 30;

/// The small run of `common::config` with the default parameterization, which
/// moves the mean colour within a few steps (the FFT's barely does).
fn small(seed: u64) -> Config {
    Config { param: ParamKind::Pyramid, lr: 0.06, ..config(STEPS, seed) }
}

/// `cfg` with the weights `--strength s` sets.
fn at_strength(s: f32) -> Config {
    let (style_weight, content_weight, content_end) = strength_weights(s);
    Config { style_weight, content_weight, content_end, ..small(1) }
}

fn mean_color(img: &Image) -> [f32; 3] {
    let n = (img.width * img.height) as f32;
    let mut m = [0.0f32; 3];
    for px in img.data.chunks(3) {
        for c in 0..3 {
            m[c] += px[c] / n;
        }
    }
    m
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f32>().sqrt()
}

/// Spot's own texture at the runs' 64².
fn spot_texture(mesh: &texstyle::mesh::Mesh) -> Image {
    mesh.materials[0].texture.clone().unwrap().resized_to_fit(64)
}

/// Strength 0 keeps the object (its texture closer to the original), strength
/// 1 paints (lower held-out style loss, which is taken at style weight 1 whatever the weights).
#[test]
fn strength_zero_keeps_the_object_and_one_paints() {
    let mesh = common::load("spot");
    let original = spot_texture(&mesh);
    let (weak, strong) = (run(&mesh, &at_strength(0.0)), run(&mesh, &at_strength(1.0)));
    assert!(weak.log.iter().all(|l| l.style == 0.0) && strong.log.iter().all(|l| l.content == 0.0));
    let far = |img: &Image| img.data.iter().zip(&original.data).map(|(a, b)| (a - b).abs()).sum::<f32>() / img.data.len() as f32;
    let (far_weak, far_strong) = (far(&weak.textures[0]), far(&strong.textures[0]));
    eprintln!("texel distance to spot's texture: {far_weak} (strength 0), {far_strong} (1); held-out style {} / {}", weak.eval_after, strong.eval_after);
    assert!(far_weak < 0.8 * far_strong, "strength 0: {far_weak}, 1: {far_strong}");
    assert!(strong.eval_after < 0.8 * weak.eval_after, "held-out style: strength 1 {}, 0 {}", strong.eval_after, weak.eval_after);
}

/// The painting (The Starry Night) is blue; spot is a pinkish white cow (red above blue): with
/// --keep-colors the result's mean colour leans red like spot's, where a plain run's leans blue
/// like the painting's. (These short 128² runs darken both textures alike, from their grey start,
/// so the colour balance is what is compared; the README's preview shows the full run's palette.)
#[test]
fn keep_colors_moves_the_mean_colour_to_the_objects() {
    let mesh = common::load("spot");
    let object = mean_color(&spot_texture(&mesh));
    let painting = mean_color(&common::style_image());
    let longer = Config { steps: 40, render_size: 128, start_render_size: 128, ..small(1) };
    let plain = mean_color(&run(&mesh, &longer).textures[0]);
    let kept = mean_color(&run(&mesh, &Config { keep_colors: true, ..longer.clone() }).textures[0]);
    eprintln!("object {object:?}, painting {painting:?}: plain {plain:?}, --keep-colors {kept:?}");
    let red_over_blue = |c: [f32; 3]| c[0] - c[2];
    assert!(red_over_blue(object) > 0.05 && red_over_blue(painting) < -0.05);
    assert!(red_over_blue(kept) > 0.0 && red_over_blue(plain) < 0.0, "kept {kept:?}, plain {plain:?}");
    assert!(red_over_blue(kept) > red_over_blue(plain) + 0.03, "kept {kept:?}, plain {plain:?}");
}

/// A mask black on the left half of the UV square, white on the right: the
/// left half comes out as spot's texture exactly, the right half restyled.
#[test]
fn protect_keeps_black_texels_and_restyles_white_ones() {
    let mesh = common::load("spot");
    let original = spot_texture(&mesh);
    let mut mask = Image::filled(64, 64, [1.0; 3]);
    for y in 0..64 {
        for x in 0..32 {
            mask.set_pixel(x, y, [0.0; 3]);
        }
    }
    let protect = Protect::new(0, &mask, mesh.materials[0].texture.as_ref().unwrap(), 64);
    let out = run(&mesh, &Config { protect: Some(protect), ..small(1) });
    let t = &out.textures[0];
    let mut changed = 0;
    for y in 0..64 {
        for x in 0..64 {
            let (a, b) = (t.pixel(x, y), original.pixel(x, y));
            if x < 32 {
                assert_eq!(a, b, "protected texel ({x}, {y})");
            } else if distance(a, b) > 0.1 {
                changed += 1;
            }
        }
    }
    assert!(changed > 64 * 32 / 2, "only {changed} of the white half's texels restyled");
}
