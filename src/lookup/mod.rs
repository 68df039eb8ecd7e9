//! Step 4 of the data path: an image seen through a UV frame.
//!
//! Bilinear, wrapping (repeat), v flipped and half-texel centred, exactly as
//! [`crate::conventions`] states. With a supersampled frame each output pixel
//! is the box-filtered mean of its k×k samples.
//!
//! The data flow, one file per step:
//! - `sample.rs`: where one UV reads a texture ([`bilinear_taps`],
//!   [`sample_bilinear`]).
//! - `lod.rs`: per triangle, how many texels a sample spans
//!   ([`triangle_lods`]), for mip-mapped tables.
//! - `table.rs`: a [`RasterFrame`](crate::raster::RasterFrame) (and, with
//!   mips, those levels of detail) → a per-view [`LookupTable`]: each
//!   covered sample's pixel, taps, weights and level.
//! - `gather.rs`: the table applied: [`LookupTable::gather`] (texture →
//!   image) and its adjoint [`LookupTable::scatter`] (image gradient →
//!   texture gradient).
//! - `op.rs`: [`lookup`], the differentiable candle op of the optimization
//!   (forward gather, backward scatter) on a level-0 texture tensor; the
//!   pyramid's sparse path calls gather and scatter itself, with mips.
//! - `render.rs`: previews, no gradients: [`render`] draws `Image`s, through
//!   [`resolve`], the one supersample box filter of every preview.

mod gather;
mod lod;
mod op;
mod render;
mod sample;
mod table;

#[cfg(test)]
mod fixtures;

pub use lod::triangle_lods;
pub use op::lookup;
pub use render::{render, resolve};
pub use sample::{bilinear_taps, sample_bilinear};
pub use table::LookupTable;
