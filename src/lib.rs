//! texstyle: restyle the texture of a 3D mesh after a painting.
//!
//! The data path, one module per step:
//! [`mesh`] → [`camera`] → [`raster`] (UV frame) → [`lookup`] (texture
//! through the frame) → [`vgg`] (features, gradient to the image) and
//! [`loss`] (what is compared, and how) → [`texture`] → [`export`].
//! [`conventions`] states the coordinate systems once; [`simd`] is the vector-instruction
//! plumbing (levels, per-level compilation, shared kernels) that several steps use.

pub mod adam;
pub mod camera;
pub mod checkpoint;
pub mod cli;
pub mod conventions;
mod disjoint;
pub mod error;
pub mod export;
pub mod fill;
pub mod gpu;
mod hugepages;
pub mod image_io;
pub mod input;
pub mod lookup;
pub mod loss;
pub mod mesh;
pub mod optim;
pub mod page;
pub mod preview;
pub mod publish;
pub mod raster;
pub mod rng;
pub mod simd;
pub mod texture;
pub mod vgg;

/// For binaries' `main`: see its docs.
pub use hugepages::reuse_freed_large_blocks;
