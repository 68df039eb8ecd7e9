//! Step 3 of the data path: mesh + camera → UV frame.
//!
//! For every pixel (every sample, with supersampling) the nearest triangle,
//! its perspective-correct UV and its depth — the [`RasterFrame`] that the
//! texture lookup reads. Two implementations with the same conventions
//! ([`crate::conventions`]):
//! - [`gpu::Rasterizer`]: WGSL compute shaders through wgpu (`shaders/raster_tri.wgsl`,
//!   `shaders/raster_resolve.wgsl`), on any Vulkan/Metal/DX12 adapter
//!   including Mesa's software lavapipe.
//! - [`cpu::rasterize`]: a plain-Rust reference with a different algorithm
//!   (near-plane clipping, screen-space edge functions in f64). Tests use it as
//!   the oracle; the binary falls back to it when no adapter exists.
//!
//! [`Raster`] picks one of the two at start-up.

pub mod cpu;
pub mod gpu;

use bytemuck::{Pod, Zeroable};
use glam::{Mat4, Vec2};

use crate::mesh::Mesh;

/// One sample of a [`RasterFrame`], laid out as the GPU writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct FramePixel {
    /// Interpolated texture coordinate (OBJ convention, v up).
    pub u: f32,
    pub v: f32,
    /// Clip-space z/w in [0, 1] (0 = near plane).
    pub depth: f32,
    /// Triangle index + 1; 0 = background (then u, v, depth are 0 too).
    pub tri: u32,
}

impl FramePixel {
    pub fn covered(&self) -> bool {
        self.tri != 0
    }
    pub fn uv(&self) -> Vec2 {
        Vec2::new(self.u, self.v)
    }
}

/// The UV frame of one view: `[height · samples, width · samples]` samples,
/// rows top-down. With `samples = k > 1` each output pixel owns a k×k block
/// of samples, which the lookup box-filters into an anti-aliased pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct RasterFrame {
    /// Output image size, in pixels.
    pub width: u32,
    pub height: u32,
    /// Samples per pixel along each axis (1 = no supersampling).
    pub samples: u32,
    /// `width · samples × height · samples` samples, row-major.
    pub pixels: Vec<FramePixel>,
}

impl RasterFrame {
    /// Width of the sample grid.
    pub fn grid_width(&self) -> u32 {
        self.width * self.samples
    }
    pub fn grid_height(&self) -> u32 {
        self.height * self.samples
    }
    /// The sample at grid column `x`, row `y`.
    pub fn at(&self, x: u32, y: u32) -> &FramePixel {
        &self.pixels[(y * self.grid_width() + x) as usize]
    }
    /// The coverage mask, one bool per sample.
    pub fn coverage(&self) -> Vec<bool> {
        self.pixels.iter().map(FramePixel::covered).collect()
    }
    /// The material id of each sample (`None` for background), given the
    /// mesh's per-triangle materials.
    pub fn material(&self, i: usize, tri_material: &[u32]) -> Option<u32> {
        let t = self.pixels[i].tri;
        (t != 0).then(|| tri_material[t as usize - 1])
    }
}

/// Geometry as both rasterizers consume it: normalized positions and
/// per-corner UVs, built once per mesh.
#[derive(Clone, Debug)]
pub struct RasterMesh {
    /// Positions in normalized mesh space (see [`Mesh::normalization`]), w = 1.
    pub positions: Vec<[f32; 4]>,
    /// `(i0, i1, i2, material)` per triangle.
    pub triangles: Vec<[u32; 4]>,
    /// Three UVs per triangle, in triangle order (zeros without UVs).
    pub uvs: Vec<[f32; 2]>,
}

impl RasterMesh {
    pub fn from_mesh(mesh: &Mesh) -> RasterMesh {
        let norm = mesh.normalization();
        let positions = mesh.positions.iter().map(|&p| norm.transform_point3(p).extend(1.0).to_array()).collect();
        let triangles = mesh
            .triangles
            .iter()
            .zip(&mesh.tri_material)
            .map(|(t, &m)| [t[0], t[1], t[2], m])
            .collect();
        let uvs = (0..mesh.triangles.len()).flat_map(|t| mesh.triangle_uvs(t)).map(|uv| uv.to_array()).collect();
        RasterMesh { positions, triangles, uvs }
    }
}

impl RasterMesh {
    /// Radius of the bounding sphere around the origin (≤ √3 after normalization).
    pub fn radius(&self) -> f32 {
        self.positions.iter().map(|p| glam::Vec3::new(p[0], p[1], p[2]).length()).fold(0.0, f32::max)
    }
}

/// Size of the view to rasterize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewSize {
    pub width: u32,
    pub height: u32,
    /// Supersampling factor per axis (1 = none).
    pub samples: u32,
}

impl ViewSize {
    pub fn square(size: u32) -> ViewSize {
        ViewSize { width: size, height: size, samples: 1 }
    }
    pub fn aspect(&self) -> f32 {
        self.width as f32 / self.height as f32
    }
}

/// The rasterizer in use: wgpu when an adapter exists, else the CPU reference.
pub enum Raster {
    Gpu(gpu::Rasterizer),
    Cpu(RasterMesh),
}

impl Raster {
    /// Uploads the mesh to `gpu` when given one, else keeps it for the CPU path.
    pub fn new(gpu: Option<&crate::gpu::Gpu>, mesh: &RasterMesh) -> Result<Raster, crate::gpu::GpuError> {
        Ok(match gpu {
            Some(gpu) => Raster::Gpu(gpu::Rasterizer::new(gpu, mesh)?),
            None => Raster::Cpu(mesh.clone()),
        })
    }

    /// Rasterizes one view; `view_proj` maps normalized mesh space to clip space.
    pub fn rasterize(&mut self, view_proj: Mat4, size: ViewSize) -> Result<RasterFrame, crate::gpu::GpuError> {
        match self {
            Raster::Gpu(r) => r.rasterize(view_proj, size),
            Raster::Cpu(m) => Ok(cpu::rasterize(m, view_proj, size)),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Raster::Gpu(r) => format!("wgpu ({})", r.adapter_name()),
            Raster::Cpu(_) => "CPU reference".into(),
        }
    }
}
