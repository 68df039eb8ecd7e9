//! Step 2 of the data path: where each view looks from.
//!
//! Cameras live in the normalized mesh space (bounding-box centre at the
//! origin, mesh inside [-1, 1]³; see [`crate::conventions`]) and look at the
//! origin. [`ViewSampler`] draws the random training views of the reference
//! (direction uniform on the sphere, distance and field of view from ranges);
//! [`turntable`] gives fixed views for previews.
//!
//! Randomness comes from [`crate::rng::SplitMix`], so a seed gives the same
//! views on every machine.

use glam::{Mat4, Vec3};

use crate::rng::SplitMix;

/// A perspective look-at camera.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub eye: Vec3,
    pub target: Vec3,
    /// Always orthogonal enough to `target - eye` to define a frame.
    pub up: Vec3,
    /// Vertical field of view, in degrees.
    pub fov_y_deg: f32,
    pub near: f32,
    pub far: f32,
}

impl Camera {
    /// A camera at `eye` looking at `target` with up = +Y, or ∓Z when the
    /// view direction is within ~2.5° of vertical (where +Y is degenerate).
    pub fn look_at(eye: Vec3, target: Vec3, fov_y_deg: f32, near: f32, far: f32) -> Camera {
        let dir = (target - eye).normalize();
        let up = if dir.y.abs() < 0.999 {
            Vec3::Y
        } else if dir.y < 0.0 {
            // Looking down: the image's top points away from the viewer (−Z),
            // which continues the +Y up of views tilting over the top.
            Vec3::NEG_Z
        } else {
            Vec3::Z
        };
        Camera { eye, target, up, fov_y_deg, near, far }
    }

    pub fn view(&self) -> Mat4 {
        glam::camera::rh::view::look_at_mat4(self.eye, self.target, self.up)
    }

    /// Perspective projection for an image of `aspect` = width / height;
    /// clip-space depth in [0, 1].
    pub fn projection(&self, aspect: f32) -> Mat4 {
        // Y-up NDC with depth in [0, 1] (the "directx" flavour in glam's naming).
        glam::camera::rh::proj::directx::perspective(self.fov_y_deg.to_radians(), aspect, self.near, self.far)
    }

    /// Clip-from-normalized-mesh-space matrix.
    pub fn view_proj(&self, aspect: f32) -> Mat4 {
        self.projection(aspect) * self.view()
    }
}

/// Ranges random views are drawn from. The default is the reference's
/// (lucid's style_transfer_3d): distance 10–12, vertical FOV 10°, near/far
/// 0.01/100 — a mesh of size 2 fills most of the frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraRange {
    pub distance: (f32, f32),
    pub fov_y_deg: (f32, f32),
    pub near: f32,
    pub far: f32,
}

/// The reference's near and far clip planes, for every camera texstyle makes.
pub const NEAR: f32 = 0.01;
pub const FAR: f32 = 100.0;

impl Default for CameraRange {
    fn default() -> Self {
        CameraRange { distance: (10.0, 12.0), fov_y_deg: (10.0, 10.0), near: NEAR, far: FAR }
    }
}

/// A seeded stream of random views around the origin.
#[derive(Clone, Debug)]
pub struct ViewSampler {
    rng: SplitMix,
    pub range: CameraRange,
}

impl ViewSampler {
    pub fn new(seed: u64, range: CameraRange) -> ViewSampler {
        ViewSampler { rng: SplitMix(seed), range }
    }

    /// The RNG's position, for checkpoints; [`ViewSampler::set_state`] returns to it.
    pub fn state(&self) -> u64 {
        self.rng.0
    }

    pub fn set_state(&mut self, state: u64) {
        self.rng.0 = state;
    }

    fn next_f32(&mut self) -> f32 {
        self.rng.uniform()
    }

    fn in_range(&mut self, (lo, hi): (f32, f32)) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// The next view: direction uniform on the sphere (Archimedes: y uniform
    /// in [-1, 1], azimuth uniform), distance and FOV uniform in their ranges.
    pub fn next_camera(&mut self) -> Camera {
        let y = 2.0 * self.next_f32() - 1.0;
        let phi = std::f32::consts::TAU * self.next_f32();
        let r = (1.0 - y * y).max(0.0).sqrt();
        let dir = Vec3::new(r * phi.cos(), y, r * phi.sin());
        let distance = self.in_range(self.range.distance);
        let fov = self.in_range(self.range.fov_y_deg);
        Camera::look_at(dir * distance, Vec3::ZERO, fov, self.range.near, self.range.far)
    }
}

/// `count` views evenly spaced around the Y axis at `elevation_deg` above the
/// horizon, starting in front (+Z) and turning counter-clockwise seen from
/// above.
pub fn turntable(count: usize, elevation_deg: f32, distance: f32, fov_y_deg: f32) -> Vec<Camera> {
    let el = elevation_deg.to_radians();
    (0..count)
        .map(|i| {
            let az = std::f32::consts::TAU * i as f32 / count as f32;
            let dir = Vec3::new(el.cos() * az.sin(), el.sin(), el.cos() * az.cos());
            Camera::look_at(dir * distance, Vec3::ZERO, fov_y_deg, NEAR, FAR)
        })
        .collect()
}

/// A [`turntable`] far enough away that a mesh with bounding sphere
/// `radius` (around the origin) fits every view with a 5 % margin.
pub fn turntable_fitting(count: usize, elevation_deg: f32, radius: f32, fov_y_deg: f32) -> Vec<Camera> {
    let distance = 1.05 * radius / (fov_y_deg.to_radians() / 2.0).sin();
    turntable(count, elevation_deg, distance, fov_y_deg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Vec4;

    #[test]
    fn same_seed_same_views_and_different_seed_different_views() {
        let a: Vec<Camera> = {
            let mut s = ViewSampler::new(7, CameraRange::default());
            (0..5).map(|_| s.next_camera()).collect()
        };
        let mut s = ViewSampler::new(7, CameraRange::default());
        let b: Vec<Camera> = (0..5).map(|_| s.next_camera()).collect();
        assert_eq!(a, b);
        let c = ViewSampler::new(8, CameraRange::default()).next_camera();
        assert_ne!(a[0], c);
    }

    #[test]
    fn random_views_respect_ranges_and_cover_the_sphere() {
        let range = CameraRange { distance: (3.0, 4.0), fov_y_deg: (20.0, 30.0), ..Default::default() };
        let mut s = ViewSampler::new(1, range);
        let mut mean = Vec3::ZERO;
        let mut octants = [0usize; 8];
        let n = 4000;
        for _ in 0..n {
            let c = s.next_camera();
            let d = c.eye.length();
            assert!((3.0..=4.0).contains(&d), "distance {d}");
            assert!((20.0..=30.0).contains(&c.fov_y_deg));
            let dir = c.eye / d;
            mean += dir;
            octants[(dir.x > 0.0) as usize | ((dir.y > 0.0) as usize) << 1 | ((dir.z > 0.0) as usize) << 2] += 1;
        }
        // Uniform on the sphere: mean direction near 0, each octant ~1/8.
        assert!((mean / n as f32).length() < 0.05, "mean direction {mean}");
        for o in octants {
            assert!((400..600).contains(&o), "octant counts {octants:?}");
        }
    }

    #[test]
    fn straight_down_and_up_views_are_well_defined() {
        for eye in [Vec3::new(0.0, 10.0, 0.0), Vec3::new(0.0, -10.0, 0.0)] {
            let cam = Camera::look_at(eye, Vec3::ZERO, 10.0, NEAR, FAR);
            let m = cam.view_proj(1.0);
            assert!(m.is_finite(), "matrix {m}");
            // The target projects to the image centre.
            let c = m * Vec4::new(0.0, 0.0, 0.0, 1.0);
            assert!((c.x / c.w).abs() < 1e-6 && (c.y / c.w).abs() < 1e-6);
            // Screen right stays +X (continuous with the front view).
            let r = m * Vec4::new(0.5, 0.0, 0.0, 1.0);
            assert!(r.x / r.w > 0.0);
        }
    }

    #[test]
    fn front_view_sees_plus_y_as_up_and_plus_x_as_right() {
        let cam = turntable(4, 0.0, 10.0, 10.0)[0];
        assert!((cam.eye - Vec3::new(0.0, 0.0, 10.0)).length() < 1e-5);
        let m = cam.view_proj(1.0);
        let top = m * Vec4::new(0.0, 0.5, 0.0, 1.0);
        let right = m * Vec4::new(0.5, 0.0, 0.0, 1.0);
        assert!(top.y / top.w > 0.0 && right.x / right.w > 0.0);
        // Depth of the target lies inside (0, 1).
        let z = (m * Vec4::W).z / (m * Vec4::W).w;
        assert!(z > 0.0 && z < 1.0);
    }
}
