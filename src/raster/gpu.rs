//! The wgpu rasterizer: `shaders/raster_tri.wgsl` (depth test, one
//! invocation per triangle) then `shaders/raster_resolve.wgsl` (one per
//! sample: barycentrics → UV), and one copy of the frame back to the CPU.
//!
//! Pipelines and mesh buffers are built once in [`Rasterizer::new`]; the
//! per-size buffers (depth, frame, staging) are made on the first view of a
//! size and reused, so a step only writes the camera, dispatches, copies and
//! maps.

use glam::Mat4;

use super::{FramePixel, RasterFrame, RasterMesh, ViewSize};
use crate::gpu::{Gpu, GpuError};

/// Invocations per workgroup in both shaders (`@workgroup_size(64)`).
const WORKGROUP: u32 = 64;
/// Most workgroups along x in one dispatch; more spill into y.
const MAX_GROUPS_X: u32 = 32768;

/// The uniform both shaders read (`struct Params` in their WGSL).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RasterParams {
    /// Clip-from-normalized-mesh-space matrix, column-major.
    pub mvp: [f32; 16],
    /// Sample grid width, in samples.
    pub width: u32,
    /// Sample grid height, in samples.
    pub height: u32,
    pub num_tris: u32,
    /// Invocations per row of a 2-D dispatch (`groups_x · 64`).
    pub row_stride: u32,
}

/// Buffers for one sample-grid size.
struct Targets {
    size: (u32, u32),
    depth: wgpu::Buffer,
    frame: wgpu::Buffer,
    staging: wgpu::Buffer,
    tri_bind: wgpu::BindGroup,
    resolve_bind: wgpu::BindGroup,
}

/// Rasterizes one mesh from any number of views on one device.
pub struct Rasterizer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: String,
    max_binding: u64,
    tri_pipeline: wgpu::ComputePipeline,
    resolve_pipeline: wgpu::ComputePipeline,
    tri_params: wgpu::Buffer,
    resolve_params: wgpu::Buffer,
    positions: wgpu::Buffer,
    triangles: wgpu::Buffer,
    uvs: wgpu::Buffer,
    num_tris: u32,
    targets: Option<Targets>,
}

/// 2-D dispatch size covering `n` invocations, and its row stride.
fn dispatch_size(n: u32) -> (u32, u32, u32) {
    let groups = n.div_ceil(WORKGROUP).max(1);
    let x = groups.min(MAX_GROUPS_X);
    (x, groups.div_ceil(x), x * WORKGROUP)
}

impl Rasterizer {
    /// Compiles the shaders and uploads the mesh.
    pub fn new(gpu: &Gpu, mesh: &RasterMesh) -> Result<Rasterizer, GpuError> {
        use wgpu::util::DeviceExt;
        let tri_pipeline = gpu.compute_pipeline("raster.tri", include_str!("../../shaders/raster_tri.wgsl"))?;
        let resolve_pipeline =
            gpu.compute_pipeline("raster.resolve", include_str!("../../shaders/raster_resolve.wgsl"))?;
        let max_binding = gpu.limits.max_storage_buffer_binding_size;
        let upload = |label: &'static str, bytes: &[u8]| -> Result<wgpu::Buffer, GpuError> {
            if bytes.len() as u64 > max_binding {
                return Err(GpuError::TooLarge { what: label, needed: bytes.len() as u64, limit: max_binding });
            }
            // Empty bindings are invalid; a 16-byte stub keeps the layout valid.
            let stub = [0u8; 16];
            let contents = if bytes.is_empty() { &stub[..] } else { bytes };
            Ok(gpu.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            }))
        };
        let params = |label| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: std::mem::size_of::<RasterParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        Ok(Rasterizer {
            device: gpu.device.clone(),
            queue: gpu.queue.clone(),
            adapter: gpu.describe(),
            max_binding,
            tri_pipeline,
            resolve_pipeline,
            tri_params: params("raster.tri.params"),
            resolve_params: params("raster.resolve.params"),
            positions: upload("raster.positions", bytemuck::cast_slice(&mesh.positions))?,
            triangles: upload("raster.triangles", bytemuck::cast_slice(&mesh.triangles))?,
            uvs: upload("raster.uvs", bytemuck::cast_slice(&mesh.uvs))?,
            num_tris: mesh.triangles.len() as u32,
            targets: None,
        })
    }

    pub fn adapter_name(&self) -> &str {
        &self.adapter
    }

    fn targets(&mut self, w: u32, h: u32) -> Result<&Targets, GpuError> {
        if self.targets.as_ref().is_some_and(|t| t.size == (w, h)) {
            return Ok(self.targets.as_ref().unwrap());
        }
        let n = w as u64 * h as u64;
        let frame_bytes = n * std::mem::size_of::<FramePixel>() as u64;
        if frame_bytes > self.max_binding {
            return Err(GpuError::TooLarge { what: "the UV frame", needed: frame_bytes, limit: self.max_binding });
        }
        let buffer = |label, size, usage| {
            self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false })
        };
        use wgpu::BufferUsages as U;
        let depth = buffer("raster.depth", n * 8, U::STORAGE | U::COPY_DST);
        let frame = buffer("raster.frame", frame_bytes, U::STORAGE | U::COPY_SRC);
        let staging = buffer("raster.staging", frame_bytes, U::MAP_READ | U::COPY_DST);
        let bind = |label, pipeline: &wgpu::ComputePipeline, buffers: &[&wgpu::Buffer]| {
            let entries: Vec<_> = buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
                .collect();
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        };
        let tri_bind = bind(
            "raster.tri.bind",
            &self.tri_pipeline,
            &[&self.tri_params, &self.positions, &self.triangles, &depth],
        );
        let resolve_bind = bind(
            "raster.resolve.bind",
            &self.resolve_pipeline,
            &[&self.resolve_params, &self.positions, &self.triangles, &depth, &self.uvs, &frame],
        );
        self.targets = Some(Targets { size: (w, h), depth, frame, staging, tri_bind, resolve_bind });
        Ok(self.targets.as_ref().unwrap())
    }

    /// Rasterizes one view and copies the frame back (one copy, one map).
    pub fn rasterize(&mut self, view_proj: Mat4, size: ViewSize) -> Result<RasterFrame, GpuError> {
        let (w, h) = (size.width * size.samples, size.height * size.samples);
        let (tri_x, tri_y, tri_stride) = dispatch_size(self.num_tris);
        let (pix_x, pix_y, pix_stride) = dispatch_size(w * h);
        let params = |row_stride| RasterParams {
            mvp: view_proj.to_cols_array(),
            width: w,
            height: h,
            num_tris: self.num_tris,
            row_stride,
        };
        self.queue.write_buffer(&self.tri_params, 0, bytemuck::bytes_of(&params(tri_stride)));
        self.queue.write_buffer(&self.resolve_params, 0, bytemuck::bytes_of(&params(pix_stride)));
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let (tri_pipeline, resolve_pipeline) = (self.tri_pipeline.clone(), self.resolve_pipeline.clone());
        let device = self.device.clone();
        let queue = self.queue.clone();
        let t = self.targets(w, h)?;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("raster") });
        enc.clear_buffer(&t.depth, 0, None);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("raster.tri"), timestamp_writes: None });
            pass.set_pipeline(&tri_pipeline);
            pass.set_bind_group(0, &t.tri_bind, &[]);
            pass.dispatch_workgroups(tri_x, tri_y, 1);
        }
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("raster.resolve"), timestamp_writes: None });
            pass.set_pipeline(&resolve_pipeline);
            pass.set_bind_group(0, &t.resolve_bind, &[]);
            pass.dispatch_workgroups(pix_x, pix_y, 1);
        }
        enc.copy_buffer_to_buffer(&t.frame, 0, &t.staging, 0, None);
        queue.submit([enc.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation { what: "raster", message: e.to_string() });
        }

        let (tx, rx) = std::sync::mpsc::channel();
        t.staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback { what: "the UV frame", message: e.to_string() })?;
        rx.recv()
            .map_err(|e| GpuError::Readback { what: "the UV frame", message: e.to_string() })?
            .map_err(|e| GpuError::Readback { what: "the UV frame", message: e.to_string() })?;
        let pixels = {
            let view = t
                .staging
                .get_mapped_range(..)
                .map_err(|e| GpuError::Readback { what: "the UV frame", message: e.to_string() })?;
            bytemuck::cast_slice::<u8, FramePixel>(&view).to_vec()
        };
        t.staging.unmap();
        Ok(RasterFrame { width: size.width, height: size.height, samples: size.samples, pixels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RasterParams` must match `struct Params` byte for byte in both shaders: the same fields,
    /// in the same order, at the offsets the Rust struct has (as naga lays out the WGSL).
    #[test]
    fn params_layout_matches_the_wgsl_struct() {
        use std::mem::offset_of;
        let rust = [
            ("mvp", offset_of!(RasterParams, mvp)),
            ("width", offset_of!(RasterParams, width)),
            ("height", offset_of!(RasterParams, height)),
            ("num_tris", offset_of!(RasterParams, num_tris)),
            ("row_stride", offset_of!(RasterParams, row_stride)),
        ];
        for src in [include_str!("../../shaders/raster_tri.wgsl"), include_str!("../../shaders/raster_resolve.wgsl")] {
            let module = naga::front::wgsl::parse_str(src).expect("shader parses");
            let mut layouter = naga::proc::Layouter::default();
            layouter.update(module.to_ctx()).unwrap();
            let (handle, ty) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some("Params")).unwrap();
            assert_eq!(layouter[handle].size as usize, std::mem::size_of::<RasterParams>());
            let naga::TypeInner::Struct { members, .. } = &ty.inner else { panic!("Params is a struct") };
            let wgsl: Vec<(&str, usize)> = members.iter().map(|m| (m.name.as_deref().unwrap_or("?"), m.offset as usize)).collect();
            assert_eq!(wgsl, rust);
        }
    }

    #[test]
    fn dispatch_covers_every_invocation() {
        for n in [0, 1, 64, 65, 32768 * 64, 32768 * 64 + 1, 5_000_000] {
            let (x, y, stride) = dispatch_size(n);
            assert!(x <= MAX_GROUPS_X && (x * y * WORKGROUP) as u64 >= n as u64);
            assert_eq!(stride, x * WORKGROUP);
        }
    }
}
