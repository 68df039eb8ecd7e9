//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use texstyle::gpu::Gpu;
use texstyle::mesh::Mesh;

/// `../shared/assets/meshes/NAME/NAME.obj`, relative to the repository.
pub fn asset_mesh(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../shared/assets/meshes/{name}/{name}.obj"))
}

pub fn load(name: &str) -> Mesh {
    Mesh::load(asset_mesh(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// The wgpu device. Tests that need it FAIL without an adapter: CI installs
/// lavapipe, so a missing adapter is a broken setup, not a reason to skip.
pub fn gpu() -> Gpu {
    Gpu::new().unwrap_or_else(|e| panic!("these tests need a wgpu adapter (lavapipe is enough): {e}"))
}
