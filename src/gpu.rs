//! The wgpu device every GPU step shares: one adapter, chosen once.
//!
//! Headless: no window, no surface. On machines without a GPU driver, Mesa's
//! software Vulkan (lavapipe, "llvmpipe") is a normal adapter of type Cpu;
//! `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` and friends are honoured
//! (`InstanceDescriptor::new_without_display_handle_from_env`).

use std::fmt;

/// What the rasterizer needs from an adapter: 64-bit integers with atomic
/// min/max in storage buffers, for the race-free depth test.
pub const REQUIRED_FEATURES: wgpu::Features =
    wgpu::Features::SHADER_INT64.union(wgpu::Features::SHADER_INT64_ATOMIC_MIN_MAX);

/// Why no usable GPU device could be made, or a GPU operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    #[error("no wgpu adapter found{tried} (install a GPU driver, or Mesa's software Vulkan: apt-get install mesa-vulkan-drivers libvulkan1)")]
    NoAdapter { tried: String },
    #[error("no wgpu adapter supports 64-bit atomic min/max, which the rasterizer needs (found: {found})")]
    MissingFeatures { found: String },
    #[error("cannot open the wgpu device on {adapter}: {source}")]
    RequestDevice { adapter: String, source: wgpu::RequestDeviceError },
    #[error("wgpu validation error in {what}: {message}")]
    Validation { what: &'static str, message: String },
    #[error("{what} needs {needed} bytes in one buffer but the adapter allows {limit}; use a smaller view size or fewer samples")]
    TooLarge { what: &'static str, needed: u64, limit: u64 },
    #[error("reading back {what} failed: {message}")]
    Readback { what: &'static str, message: String },
}

/// An open device and its queue.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}

impl Gpu {
    /// Opens the best adapter with [`REQUIRED_FEATURES`]: discrete, then
    /// integrated, virtual and finally CPU (software) adapters.
    pub fn new() -> Result<Gpu, GpuError> {
        // GL lacks 64-bit atomics: look at Vulkan/Metal/DX12 unless WGPU_BACKEND says otherwise.
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter { tried: format!(" for backends {backends:?}") });
        }
        let rank = |t: wgpu::DeviceType| match t {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        };
        let found = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?})", i.name, i.backend)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let adapter = adapters
            .into_iter()
            .filter(|a| a.features().contains(REQUIRED_FEATURES))
            .min_by_key(|a| rank(a.get_info().device_type))
            .ok_or(GpuError::MissingFeatures { found })?;
        let info = adapter.get_info();
        // Ask for what the adapter offers: frames of 1024² with supersampling
        // need storage bindings beyond the 128 MiB default.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("texstyle"),
            required_features: REQUIRED_FEATURES,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|source| GpuError::RequestDevice { adapter: info.name.clone(), source })?;
        Ok(Gpu { device, queue, info, limits })
    }

    /// "llvmpipe (LLVM 15.0.6, 256 bits) / Vulkan / Cpu".
    pub fn describe(&self) -> String {
        format!("{} / {:?} / {:?}", self.info.name, self.info.backend, self.info.device_type)
    }

    /// Compiles a WGSL compute shader into a pipeline with an automatic
    /// layout, turning validation errors into a [`GpuError`] instead of
    /// wgpu's default panic.
    pub fn compute_pipeline(&self, label: &'static str, wgsl: &str) -> Result<wgpu::ComputePipeline, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(wgsl.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(GpuError::Validation { what: label, message: e.to_string() }),
            None => Ok(pipeline),
        }
    }
}
