//! The run page's loss curves: style, content and total loss against the
//! step, and the held-out style score before and after, drawn by `plotters`
//! into an SVG string (text is left to the browser: no fonts are compiled in).

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::optim::StepLog;

/// Width and height of the plot, in CSS pixels.
const SIZE: (u32, u32) = (720, 340);

/// The loss curves of `log` on a log scale, with the held-out style loss
/// before the first step and after the last (`eval`) as two points.
pub fn loss_svg(log: &[StepLog], eval: (f32, f32)) -> Result<String> {
    let mut svg = String::new();
    draw(&mut svg, log, eval).map_err(|e| anyhow!("drawing the loss curves: {e}"))?;
    Ok(svg)
}

type Series<'a> = (&'a str, RGBColor, fn(&StepLog) -> f32);

/// The curves drawn, with their colours.
const SERIES: [Series; 3] = [
    ("style", RGBColor(200, 60, 40), |l| l.style),
    ("content", RGBColor(40, 110, 200), |l| l.content),
    ("total", RGBColor(40, 40, 40), |l| l.total),
];

fn draw<'a>(svg: &'a mut String, log: &[StepLog], eval: (f32, f32)) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let last = log.last().map_or(1, |l| l.step).max(1) as f32;
    let values = log.iter().flat_map(|l| SERIES.iter().map(move |s| (s.2)(l))).chain([eval.0, eval.1]);
    let positive: Vec<f32> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = positive.iter().copied().fold(f32::INFINITY, f32::min).min(1.0) * 0.8;
    let hi = positive.iter().copied().fold(0.0f32, f32::max).max(lo * 10.0) * 1.25;
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f32..last, (lo..hi).log_scale())?;
    chart.configure_mesh().x_desc("step").y_desc("loss (log scale)").light_line_style(RGBColor(235, 235, 235)).draw()?;
    for (name, color, get) in SERIES {
        // A style-only run has no content loss: leave its curve out rather than draw zeros.
        let points: Vec<(f32, f32)> = log.iter().map(|l| (l.step as f32, get(l))).filter(|p| p.1 > 0.0 && p.1.is_finite()).collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    let held_out = RGBColor(130, 50, 160);
    chart
        .draw_series([(0.0, eval.0), (last, eval.1)].into_iter().filter(|p| p.1 > 0.0).map(|p| Circle::new(p, 5, held_out.filled())))?
        .label("held-out style (before, after)")
        .legend(move |(x, y)| Circle::new((x + 9, y), 5, held_out.filled()));
    chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Vec<StepLog> {
        (1..=20).map(|s| StepLog { step: s, style: 2.0 / s as f32, content: 0.5, total: 2.0 / s as f32 + 0.25, ..Default::default() }).collect()
    }

    #[test]
    fn draws_one_polyline_per_curve_and_the_held_out_points() {
        let svg = loss_svg(&log(), (1.5, 0.4)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", &svg[..100.min(svg.len())]);
        // Each curve and its legend stroke, in the curve's colour.
        for colour in ["#C83C28", "#286EC8", "#282828"] {
            assert_eq!(svg.matches(&format!("<polyline fill=\"none\" opacity=\"1\" stroke=\"{colour}\"")).count(), 2, "{colour}: {svg}");
        }
        // Two held-out points and the legend's.
        assert_eq!(svg.matches("<circle").count(), 3);
        for label in ["style", "content", "total", "held-out style", "step"] {
            assert!(svg.contains(label), "no {label}");
        }
    }

    #[test]
    fn a_style_only_run_has_no_content_curve() {
        let mut log = log();
        log.iter_mut().for_each(|l| l.content = 0.0);
        let svg = loss_svg(&log, (1.5, 0.4)).unwrap();
        assert!(!svg.contains("#286EC8") && !svg.contains("content"), "{svg}");
        assert!(svg.contains("#C83C28"));
    }
}
