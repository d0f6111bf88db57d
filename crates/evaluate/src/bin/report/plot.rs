//! The learning-curve PNG: every run's mean normalised return per episode with a ± one standard
//! error band, and a dashed line at the 80% target.
//!
//! Text is drawn by plotters' pure-Rust `ab_glyph` renderer from a TrueType font found on the
//! system (Debian: `fonts-dejavu-core`); ccad ships no font. Without one the plot is drawn
//! without text (the markdown names the runs).

use evaluate::plot_style::{COLOURS, draw_legend, encode_png, episode_chart};
use plotters::prelude::*;

use crate::curves::{Curve, TARGET};

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 560;

/// PNG bytes of the curves, `(label, curve)` per run. `text`: draw caption, axis labels and
/// legend (needs [`system_font`]).
pub fn learning_curves_png(runs: &[(&str, &Curve)], text: bool) -> Result<Vec<u8>, String> {
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut rgb, runs, text).map_err(|e| e.to_string())?;
    encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| e.to_string())
}

fn draw(
    rgb: &mut [u8],
    runs: &[(&str, &Curve)],
    text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let episodes = runs.iter().map(|(_, c)| c.mean.len()).max().unwrap_or(1);
    let band = |c: &Curve, sign: f64| -> Vec<f64> {
        c.mean
            .iter()
            .zip(&c.se)
            .map(|(m, s)| m + sign * s)
            .collect()
    };
    let all = runs
        .iter()
        .flat_map(|(_, c)| band(c, 1.0).into_iter().chain(band(c, -1.0)));
    let (lo, hi) = all.fold((0.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = 0.05 * (hi - lo);
    // A one-episode run still needs an x range of positive width.
    let x_max = (episodes as f64).max(2.0);

    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    let captions = (
        "In-context learning on evaluated tasks (mean ± s.e. over tasks × seeds)",
        "return / optimal return",
    );
    let mut chart = episode_chart(&root, captions, x_max, (lo - pad)..(hi + pad), text)?;

    chart.draw_series(DashedLineSeries::new(
        [(1.0, TARGET), (x_max, TARGET)],
        6,
        4,
        BLACK.mix(0.45).stroke_width(1),
    ))?;
    for (i, (label, c)) in runs.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let xs: Vec<f64> = (1..=c.mean.len()).map(|e| e as f64).collect();
        // The band's outline: along the upper edge, back along the lower one.
        let mut outline: Vec<(f64, f64)> = xs.iter().copied().zip(band(c, 1.0)).collect();
        outline.extend(xs.iter().copied().zip(band(c, -1.0)).rev());
        chart.draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.18))))?;
        let line = chart.draw_series(LineSeries::new(
            xs.iter().copied().zip(c.mean.iter().copied()),
            colour.stroke_width(2),
        ))?;
        if text {
            line.label(*label).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3))
            });
        }
    }
    if text {
        draw_legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Decode a PNG: (width, height, RGB bytes). Panics on anything but 8-bit RGB.
    pub fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
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
    fn png_round_trips() {
        // 2 × 1: a red pixel and a white one.
        let bytes = encode_png(&[255, 0, 0, 255, 255, 255], 2, 1).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(decode(&bytes), (2, 1, vec![255, 0, 0, 255, 255, 255]));
    }

    #[test]
    fn textless_plot_draws_each_run_in_its_colour() {
        let a = Curve {
            mean: vec![0.2, 0.5, 0.9],
            se: vec![0.1, 0.1, 0.05],
            n_envs: 4,
        };
        let b = Curve {
            mean: vec![0.1, 0.3],
            se: vec![0.0, 0.0],
            n_envs: 1,
        };
        let bytes = learning_curves_png(&[("a", &a), ("b", &b)], false).unwrap();
        let (w, h, rgb) = decode(&bytes);
        assert_eq!((w, h), (WIDTH, HEIGHT));
        assert!(has_colour(&rgb, COLOURS[0]) && has_colour(&rgb, COLOURS[1]));
        assert!(!has_colour(&rgb, COLOURS[2]));
    }
}
