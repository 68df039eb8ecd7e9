//! The run page's pieces, without a browser (`.ci/browser.sh` opens a real
//! run's page in Chromium).

use super::*;

fn page_with(options: Vec<OptionRow>, exports: Vec<ExportRow>) -> String {
    let img = Image::filled(8, 8, [0.2, 0.4, 0.6]);
    let log: Vec<StepLog> = (1..=4).map(|s| StepLog { step: s, style: 1.0 / s as f32, content: 0.3, total: 1.3, network_ms: 30.0, raster_ms: 10.0, ..Default::default() }).collect();
    run_page(&RunPage {
        title: "bunny × <scream>".into(),
        glb: b"glTF-bytes",
        painting: &img,
        preview: &img,
        log: &log,
        eval: (0.9, 0.45),
        eval_views: 4,
        eval_content: Some(0.3125),
        seen_fraction: 0.84,
        total_s: 12.0,
        time_split: vec![("raster", 10.0), ("network", 30.0)],
        command: shell_line(&["texstyle".into(), "my mesh.obj".into(), "--style".into(), "it's.jpg".into()]),
        options,
        exports,
    })
    .unwrap()
}

#[test]
fn the_page_embeds_the_model_viewer_the_glb_and_the_pictures() {
    let html = page_with(Vec::new(), Vec::new());
    assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
    assert!(html.contains(model_viewer_script()));
    assert!(html.contains("customElements.define(\"model-viewer\""));
    assert!(!html.contains("sourceMappingURL"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"glTF-bytes");
    assert!(html.contains(&format!("src=\"data:model/gltf-binary;base64,{b64}\"")));
    assert_eq!(html.matches("src=\"data:image/jpeg;base64,").count(), 2);
    // Nothing is loaded from anywhere: no http(s) URL outside the vendored script.
    let ours = html.replace(model_viewer_script(), "").replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!ours.contains("http://") && !ours.contains("https://") && !ours.contains("type=\"module\""));
    assert!(html.contains("<h1>bunny × &lt;scream&gt;</h1>"));
    assert!(html.contains("<pre id=\"command\">texstyle &#39;my mesh.obj&#39; --style &#39;it&#39;\\&#39;&#39;s.jpg&#39;</pre>"), "{}", &ours[..2000.min(ours.len())]);
    assert!(html.contains("4 held-out views") && html.contains("0.9000 before, 0.4500 after") && html.contains("Content loss on the same views: 0.3125") && html.contains("84 %"));
    assert!(html.contains("<td>network</td><td>30.0 ms</td><td>75 %</td>"));
}

#[test]
fn the_inlined_script_cannot_close_its_script_element_early() {
    let s = model_viewer_script().to_ascii_lowercase();
    assert!(!s.contains("</script") && !s.contains("<script"));
    assert!(s.len() > 500_000, "the vendored build is the whole viewer");
}

#[test]
fn shell_line_quotes_only_what_the_shell_would_split() {
    let args: Vec<String> = ["texstyle", "a b.obj", "--export", "obj,palette:4", "--background", "$HOME", ""].map(String::from).to_vec();
    assert_eq!(shell_line(&args), "texstyle 'a b.obj' --export obj,palette:4 --background '$HOME' ''");
}

#[test]
fn palette_rows_show_swatches_and_the_slicer_advice() {
    let files = vec![("bunny_palette4.obj".to_string(), 2_500_000), ("bunny_palette4.mtl".to_string(), 400)];
    let swatches = vec![([255, 0, 16], 0.5), ([0, 0, 0], 0.3), ([1, 2, 3], 0.2)];
    let advice = exports::advice(crate::export::Format::Palette(4), &files, &swatches);
    assert_eq!(advice, "Bambu Studio / OrcaSlicer (multi-colour, AMS): import bunny_palette4.obj, map these 3 colours to 4 filaments: #ff0010, #000000, #010203.");
    let row = ExportRow { what: "palette:4".into(), files, advice, swatches, preview: Some(png_uri(b"png")) };
    let html = page_with(Vec::new(), vec![row]);
    assert!(html.contains("<code>bunny_palette4.obj</code> 2.5 MB<br><code>bunny_palette4.mtl</code> 400 B"));
    assert!(html.contains("<span class=\"swatch\" style=\"background:#ff0010\"></span><code>#ff0010</code> 50 % of the surface"));
    assert_eq!(html.matches("class=\"swatch\"").count(), 3);
    assert!(html.contains("src=\"data:image/png;base64,cG5n\""));
}

#[test]
fn options_say_where_each_value_came_from() {
    use clap::CommandFactory;
    let cmd = crate::cli::Cli::command();
    let argv = ["texstyle", "m.obj", "--style", "s.jpg", "--lr", "0.1", "--cpu"];
    let m = cmd.clone().try_get_matches_from(argv).unwrap();
    let rows = options::rows(&cmd, &m);
    let row = |o: &str| rows.iter().find(|r| r.option == o).unwrap_or_else(|| panic!("no row {o}"));
    assert_eq!((row("--lr").value.as_str(), row("--lr").source.as_str()), ("0.1", "your command line"));
    assert_eq!((row("--cpu").value.as_str(), row("--cpu").source.as_str()), ("on", "your command line"));
    assert_eq!((row("--seed").value.as_str(), row("--seed").source.as_str()), ("0", "default (src/cli/defaults.rs)"));
    assert_eq!(row("--texture-size").value, crate::cli::defaults::TEXTURE_SIZE.to_string());
    assert_eq!((row("--no-report").value.as_str(), row("--no-report").source.as_str()), ("off", "off unless given"));
    assert_eq!(row("--steps").source, format!("not given: the preset's, {}", crate::cli::defaults::STEPS));
    assert_eq!(row("MESH").value, "m.obj");
    let html = page_with(rows, Vec::new());
    assert!(html.contains("<tr><td><code>--lr</code></td><td><code>0.1</code></td><td>your command line</td></tr>"));
}
