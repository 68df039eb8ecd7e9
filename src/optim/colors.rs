//! `--keep-colors`: the painting's colours moved onto the object's before
//! the style Grams are taken, so the style loss asks for the painting's
//! brushwork in the object's palette.
//!
//! Gatys et al. 2017 ("Controlling Perceptual Factors in Neural Style
//! Transfer", §5) give two ways: colour-statistics matching of the painting
//! (a linear map taking its mean and covariance to the content's) and
//! luminance-only transfer. Matching is used here: it changes only the
//! painting, so the loss, its gradient and the texture's parameterization
//! stay as they are, and the network still sees colour images. Luminance-only
//! transfer would need the optimized texture's chroma replaced by the
//! original's at export (the views and the exported texture would then
//! differ) and was not implemented; matching's preview (README, Controls)
//! keeps spot's pink-and-white palette and its pink muzzle.
//! The map is the Image Analogies one the paper uses,
//! `A = Σ_c^{1/2} Σ_s^{−1/2}`: `p' = A(p − μ_s) + μ_c`, clamped to [0, 1].
//! The object's statistics are taken over the mesh as the views see it
//! (covered samples of a few random views, its textures and flat colours),
//! so colours weigh by how much of the visible surface they cover.

use anyhow::Result;

use super::Config;
use crate::camera::ViewSampler;
use crate::image_io::Image;
use crate::lookup::sample_bilinear;
use crate::mesh::Mesh;
use crate::raster::Raster;

/// Views the object's colours are gathered from.
const VIEWS: usize = 8;
/// Mixed into the seed so these views are neither training nor held-out ones.
const SEED_SALT: u64 = 0xC0_10_5EED;

type Mat3 = [[f64; 3]; 3];

/// Mean and covariance of a set of RGB colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorStats {
    pub mean: [f64; 3],
    pub cov: Mat3,
}

impl ColorStats {
    /// The statistics of `colors` (`None`: there are none).
    pub fn of(colors: impl Iterator<Item = [f32; 3]>) -> Option<ColorStats> {
        let (mut n, mut s, mut ss) = (0f64, [0f64; 3], [[0f64; 3]; 3]);
        for c in colors {
            n += 1.0;
            for i in 0..3 {
                s[i] += c[i] as f64;
                for j in 0..3 {
                    ss[i][j] += c[i] as f64 * c[j] as f64;
                }
            }
        }
        if n == 0.0 {
            return None;
        }
        let mean = s.map(|v| v / n);
        let cov = std::array::from_fn(|i| std::array::from_fn(|j| ss[i][j] / n - mean[i] * mean[j]));
        Some(ColorStats { mean, cov })
    }
}

/// The colours of `mesh` (its textures, and flat colours for materials
/// without one) over the covered samples of [`VIEWS`] random views.
pub(super) fn object_colors(raster: &mut Raster, mesh: &Mesh, cfg: &Config) -> Result<Option<ColorStats>> {
    let size = cfg.view_size_at(cfg.steps);
    let mut views = ViewSampler::new(cfg.seed ^ SEED_SALT, cfg.cameras);
    let mut colors = Vec::new();
    for _ in 0..VIEWS {
        let frame = raster.rasterize(views.next_camera().view_proj(size.aspect()), size)?;
        colors.extend(frame.pixels.iter().filter(|s| s.covered()).map(|s| {
            let m = &mesh.materials[mesh.tri_material[s.tri as usize - 1] as usize];
            match &m.texture {
                Some(tex) => sample_bilinear(tex, s.uv()),
                None => m.diffuse,
            }
        }));
    }
    Ok(ColorStats::of(colors.into_iter()))
}

/// `painting` with its colours' mean and covariance mapped onto `target`'s.
pub fn match_colors(painting: &Image, target: &ColorStats) -> Image {
    let src = ColorStats::of(painting.data.chunks(3).map(|p| [p[0], p[1], p[2]])).expect("a painting has pixels");
    let a = mul(&sym_pow(&target.cov, 0.5), &sym_pow(&src.cov, -0.5));
    let mut out = painting.clone();
    for px in out.data.chunks_mut(3) {
        let d: [f64; 3] = std::array::from_fn(|i| px[i] as f64 - src.mean[i]);
        for i in 0..3 {
            let v = target.mean[i] + a[i][0] * d[0] + a[i][1] * d[1] + a[i][2] * d[2];
            px[i] = v.clamp(0.0, 1.0) as f32;
        }
    }
    out
}

fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

/// `c^e` of a symmetric positive semi-definite 3×3 matrix, through its
/// eigenvalues; those below a small floor (a flat colour has none along
/// some axes) are raised to it so `e < 0` stays finite.
fn sym_pow(c: &Mat3, e: f64) -> Mat3 {
    let (values, v) = eigen_sym(*c);
    let floor = 1e-6 * (c[0][0] + c[1][1] + c[2][2]).max(1e-6);
    let d = values.map(|l| l.max(floor).powf(e));
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| v[i][k] * d[k] * v[j][k]).sum()))
}

/// Eigenvalues and eigenvectors (columns) of a symmetric 3×3 matrix, by
/// cyclic Jacobi rotations.
fn eigen_sym(mut a: Mat3) -> ([f64; 3], Mat3) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..64 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        if off < 1e-30 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A ← Pᵀ A P and V ← V P, with P the rotation in the (p, q) plane.
            for k in 0..3 {
                let (kp, kq) = (a[k][p], a[k][q]);
                a[k][p] = c * kp - s * kq;
                a[k][q] = s * kp + c * kq;
            }
            for k in 0..3 {
                let (pk, qk) = (a[p][k], a[q][k]);
                a[p][k] = c * pk - s * qk;
                a[q][k] = s * pk + c * qk;
            }
            for row in v.iter_mut() {
                let (kp, kq) = (row[p], row[q]);
                row[p] = c * kp - s * kq;
                row[q] = s * kp + c * kq;
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_root_squares_back_and_inverts() {
        let c = [[0.04, 0.01, -0.005], [0.01, 0.03, 0.002], [-0.005, 0.002, 0.02]];
        let (r, ri) = (sym_pow(&c, 0.5), sym_pow(&c, -0.5));
        let (rr, rri) = (mul(&r, &r), mul(&r, &ri));
        for i in 0..3 {
            for j in 0..3 {
                assert!((rr[i][j] - c[i][j]).abs() < 1e-12, "{rr:?}");
                assert!((rri[i][j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9, "{rri:?}");
            }
        }
    }

    #[test]
    fn matched_painting_takes_the_targets_mean_and_covariance() {
        // A painting of varied colours, away from the clamp at 0 and 1 once mapped.
        let data = (0..64 * 64).flat_map(|i| {
            let (x, y) = ((i % 64) as f32 / 63.0, (i / 64) as f32 / 63.0);
            // A third, independent variation: the covariance has full rank.
            let z = ((i * 7919) % 13) as f32 / 13.0;
            [0.2 + 0.5 * x, 0.3 + 0.2 * x + 0.3 * y, 0.5 - 0.3 * y + 0.2 * z]
        });
        let painting = Image { width: 64, height: 64, data: data.collect() };
        let target = ColorStats { mean: [0.6, 0.45, 0.3], cov: [[0.004, 0.001, 0.0], [0.001, 0.003, 0.0005], [0.0, 0.0005, 0.002]] };
        let got = ColorStats::of(match_colors(&painting, &target).data.chunks(3).map(|p| [p[0], p[1], p[2]])).unwrap();
        for i in 0..3 {
            assert!((got.mean[i] - target.mean[i]).abs() < 1e-4, "{got:?}");
            for j in 0..3 {
                assert!((got.cov[i][j] - target.cov[i][j]).abs() < 1e-5, "{got:?}");
            }
        }
    }
}
