//! How much memory a run will need, estimated from its options before it
//! starts (so a run that cannot fit is refused up front).

use super::Config;

/// Peak memory of a run, estimated before it starts, in bytes: a fixed part
/// (weights, buffers), the network's activations (growing with the view's
/// samples) and ~100 bytes per texel and material (parameters, Adam's two
/// moments, the sparse step's level buffers, the whole texture at the start
/// and the end). Fitted to peak RSS of 3-step runs at textures 512²–2048² and
/// views 64²–512² on the 2-core CI machine (within ~10 %), refitted for the
/// texture part at 512²/2048²/4096² (966/1452/2679 MB measured, spot, views 256²).
pub fn estimated_peak_bytes(cfg: &Config, materials: usize) -> u64 {
    const FIXED: f64 = 870e6;
    const NETWORK_AT_256: f64 = 150e6;
    const PER_TEXEL: f64 = 100.0;
    // The network sees render_size² whatever the samples; the lookup table
    // holds 36 bytes per sample.
    const PER_SAMPLE: f64 = 36.0;
    let pixels = cfg.render_size as f64;
    let samples = (cfg.render_size * cfg.samples) as f64;
    let texels = (cfg.texture_size as f64).powi(2) * materials.max(1) as f64;
    (FIXED
        + NETWORK_AT_256 * (pixels / 256.0).powi(2)
        + PER_SAMPLE * samples * samples
        + PER_TEXEL * texels) as u64
}
