//! `curves.png`: each arm's mean return per episode with a ± 1 SEM band over training seeds;
//! `milestones.png`: each arm's share of episodes reaching each milestone, the same way. Drawn
//! as the report binary draws its plot (plotters on an RGB buffer, text through the
//! pure-Rust `ab_glyph` renderer from a system TrueType font, PNG encoding by `png`).

use std::path::Path;

use ccad_core::atomic::write_atomic;
use ccad_core::{Error, Result};
use evaluate::plot_style::{COLOURS, draw_legend, encode_png, episode_chart, system_font};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::experiment::metrics::ArmCurve;

/// `curves.png`'s size in pixels.
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 560;

/// The source learners' dashed curve.
const SOURCE_COLOUR: RGBColor = RGBColor(90, 90, 90);

/// What a plot shows besides the curves, and its caption and y-axis label.
struct Extras<'a> {
    source: Option<&'a [f64]>,
    optimal: Option<f64>,
    captions: (&'a str, &'a str),
}

const CURVES_CAPTIONS: (&str, &str) = (
    "In-context learning per arm (mean ± s.e.m. over training seeds)",
    "return (mean over held-out tasks × evaluation seeds)",
);

/// `curves.png`: per arm its mean return per episode with a ± 1 SEM band (none where the SEM
/// is undefined, e.g. one seed), the source learners' curve (dashed) and the optimal return
/// (dotted) when given, and a legend. Text needs a system font ([`system_font`]); without one
/// the plot is drawn without it.
pub fn write_curves_png(
    curves: &[ArmCurve],
    source: Option<&[f64]>,
    optimal: Option<f64>,
    dest: &Path,
) -> Result<()> {
    let extras = Extras {
        source,
        optimal,
        captions: CURVES_CAPTIONS,
    };
    write_png(curves, &extras, dest)
}

/// `milestones.png`: one curve per (arm, milestone), named `curves[i].arm` (e.g. "window: door"),
/// the share of episodes reaching it with a ± 1 SEM band.
pub fn write_milestones_png(curves: &[ArmCurve], dest: &Path) -> Result<()> {
    let extras = Extras {
        source: None,
        optimal: None,
        captions: (
            "Episodes reaching each milestone (mean ± s.e.m. over training seeds)",
            "share of episodes (held-out tasks × evaluation seeds)",
        ),
    };
    write_png(curves, &extras, dest)
}

fn write_png(curves: &[ArmCurve], extras: &Extras, dest: &Path) -> Result<()> {
    let text = system_font().is_some();
    let png = curves_png(curves, extras, text).map_err(|e| Error::file(dest, "plot", e))?;
    write_atomic(dest, &png)
}

/// PNG bytes of the plot; `text`: draw caption, axis labels and legend.
fn curves_png(curves: &[ArmCurve], extras: &Extras, text: bool) -> Result<Vec<u8>, String> {
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut rgb, curves, extras, text).map_err(|e| e.to_string())?;
    encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| e.to_string())
}

/// The ± 1 SEM band's edges, or `None` when any SEM is undefined.
fn band(c: &ArmCurve) -> Option<(Vec<f64>, Vec<f64>)> {
    if c.sem.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let edge = |sign: f64| {
        c.mean
            .iter()
            .zip(&c.sem)
            .map(|(m, s)| m + sign * s)
            .collect()
    };
    Some((edge(1.0), edge(-1.0)))
}

/// `(episode, value)` points of a curve, undefined values left out.
fn points(values: &[f64]) -> Vec<(f64, f64)> {
    (1..)
        .zip(values)
        .filter(|(_, v)| v.is_finite())
        .map(|(e, &v)| (e as f64, v))
        .collect()
}

fn draw(
    rgb: &mut [u8],
    curves: &[ArmCurve],
    extras: &Extras,
    text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let source = extras.source.unwrap_or(&[]);
    let episodes = curves
        .iter()
        .map(|c| c.mean.len())
        .chain([source.len()])
        .max()
        .unwrap_or(0);
    // A one-episode curve still needs an x range of positive width.
    let x_max = (episodes as f64).max(2.0);
    let bands: Vec<Option<(Vec<f64>, Vec<f64>)>> = curves.iter().map(band).collect();
    let shown = curves
        .iter()
        .flat_map(|c| c.mean.iter())
        .chain(
            bands
                .iter()
                .flatten()
                .flat_map(|(hi, lo)| hi.iter().chain(lo)),
        )
        .chain(source)
        .chain(&extras.optimal)
        .filter(|v| v.is_finite());
    // The y range always holds 0, so a flat curve still has a range.
    let (lo, hi) = shown.fold((0.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let pad = 0.05 * (hi - lo);

    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    let mut chart = episode_chart(&root, extras.captions, x_max, (lo - pad)..(hi + pad), text)?;

    for (i, (c, band)) in curves.iter().zip(&bands).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        if let Some((upper, lower)) = band {
            // The band's outline: along the upper edge, back along the lower one.
            let mut outline = points(upper);
            outline.extend(points(lower).into_iter().rev());
            chart.draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.18))))?;
        }
        let line = chart.draw_series(LineSeries::new(points(&c.mean), colour.stroke_width(2)))?;
        if text {
            line.label(c.arm.as_str()).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3))
            });
        }
    }
    if !source.is_empty() {
        let style = SOURCE_COLOUR.stroke_width(2);
        let line = chart.draw_series(DashedLineSeries::new(points(source), 8, 5, style))?;
        if text {
            line.label("source PPO learners")
                .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 24, y)], 8, 5, style));
        }
    }
    if let Some(optimal) = extras.optimal.filter(|o| o.is_finite()) {
        let style = BLACK.stroke_width(1);
        let line = chart.draw_series(DashedLineSeries::new(
            [(1.0, optimal), (x_max, optimal)],
            2,
            4,
            style,
        ))?;
        if text {
            line.label("optimal return")
                .legend(move |(x, y)| DashedPathElement::new([(x, y), (x + 24, y)], 2, 4, style));
        }
    }
    if text {
        draw_legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::metrics::arm_curves;
    use crate::experiment::metrics::tests::two_arms;

    /// Decode a PNG: (width, height, RGB bytes).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Rgb, png::BitDepth::Eight)
        );
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn has_colour(rgb: &[u8], c: RGBColor) -> bool {
        rgb.chunks_exact(3).any(|p| p == [c.0, c.1, c.2])
    }

    #[test]
    fn curves_png_is_written_at_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let source: Vec<f64> = (0..12).map(|j| j as f64).collect();
        write_curves_png(&arm_curves(&two_arms()), Some(&source), Some(12.0), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h, rgb) = decode(&bytes);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        assert!(has_colour(&rgb, COLOURS[0]) && has_colour(&rgb, COLOURS[1]));
        // Only the file: no temporary left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn plot_draws_what_it_is_given() {
        let curves = arm_curves(&two_arms());
        let source = [1.0, 2.0, 3.0];
        let plain = Extras {
            source: None,
            optimal: None,
            captions: CURVES_CAPTIONS,
        };
        let (_, _, rgb) = decode(&curves_png(&curves[..1], &plain, false).unwrap());
        assert!(has_colour(&rgb, COLOURS[0]));
        assert!(!has_colour(&rgb, COLOURS[1]) && !has_colour(&rgb, SOURCE_COLOUR));
        assert!(
            !has_colour(&rgb, BLACK),
            "no text, no optimum: nothing black"
        );
        let full = Extras {
            source: Some(&source),
            optimal: Some(15.0),
            captions: CURVES_CAPTIONS,
        };
        let (_, _, rgb) = decode(&curves_png(&curves, &full, false).unwrap());
        assert!(has_colour(&rgb, COLOURS[1]) && has_colour(&rgb, SOURCE_COLOUR));
        assert!(has_colour(&rgb, BLACK));
        // One seed (no SEM band) and no curves at all still draw, with text where a font is.
        let text = system_font().is_some();
        let one = ArmCurve {
            arm: "one".into(),
            mean: vec![1.0],
            sem: vec![f64::NAN],
        };
        assert!(curves_png(&[one], &plain, text).is_ok());
        assert!(curves_png(&[], &plain, text).is_ok());
    }
}
