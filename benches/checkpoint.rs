//! What a checkpoint costs: time to save (serialize, write, fsync, rename)
//! and its size, for the state of a default run (one material, FFT texture
//! 512², Adam's two moments, the five style Grams) and of a 2048² texture.
//! Reads nothing outside the repository. `cargo bench --bench checkpoint`.

use std::time::Instant;

use texstyle::checkpoint::Checkpoint;

/// The state sizes of an FFT texture of `n²` texels (half spectrum, 3
/// channels, real and imaginary), as `optim` saves them.
fn state(n: usize) -> Checkpoint {
    let spectrum = 3 * n * (n / 2 + 1) * 2;
    let mut ck = Checkpoint { step: 150, fingerprint: "steps=300".into(), ..Default::default() };
    let values = |len: usize| (0..len).map(|i| (i as f32 * 1e-3).sin()).collect::<Vec<f32>>();
    for name in ["param.0", "adam_m.0", "adam_v.0"] {
        ck.floats.insert(name.into(), (vec![spectrum], values(spectrum)));
    }
    for (l, c) in [64usize, 128, 256, 512, 512].iter().enumerate() {
        ck.floats.insert(format!("gram.{l}"), (vec![*c, *c], values(c * c)));
    }
    ck.bytes.insert("seen".into(), vec![1; n * n]);
    ck.floats.insert("log".into(), (vec![150, 10], values(1500)));
    ck
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    println!("| texture | checkpoint size | save (median of 7) | load |");
    println!("|---|---|---|---|");
    for n in [512usize, 2048] {
        let ck = state(n);
        let mut times = Vec::new();
        let mut path = dir.path().to_path_buf();
        for _ in 0..7 {
            let t = Instant::now();
            path = ck.save(dir.path()).expect("saved");
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let t = Instant::now();
        let back = Checkpoint::load(dir.path()).expect("loaded");
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(back.step, ck.step);
        let size = std::fs::metadata(&path).expect("written").len();
        println!("| {n}² | {:.1} MB | {:.0} ms | {load_ms:.0} ms |", size as f64 / 1e6, times[3]);
    }
}
