//! What every ccad plot shares: the font, the line colours and PNG encoding. Plots are drawn
//! by plotters on an RGB buffer; text through plotters' pure-Rust `ab_glyph` renderer from a
//! TrueType font found on the system (Debian: `fonts-dejavu-core`); ccad ships no font, and
//! without one a plot is drawn without text.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, RGBColor};

/// Where common systems keep a sans-serif TrueType font.
const FONT_PATHS: [&str; 7] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The family name text styles use once [`system_font`] registered it.
pub const FONT: &str = "sans-serif";

/// Register the first font of [`FONT_PATHS`] that parses, once per process; its path, or
/// `None` when there is none (then plots carry no text).
pub fn system_font() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<&'static Path>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        FONT_PATHS.iter().map(Path::new).find(|p| {
            let Ok(bytes) = std::fs::read(p) else {
                return false;
            };
            // plotters keeps fonts for the process's lifetime; leak the bytes once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok()
        })
    })
}

/// Line colours, one per run or arm (cycled past the sixth).
pub const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A learning-curve chart on a bitmap: episodes on x, values on y.
pub type EpisodeChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Fill `root` white and build a chart over episodes `1..x_max` and `y`; with `text`, also the
/// caption, the axis descriptions (`episode`, `y_desc`) and at most one label per whole episode.
pub fn episode_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    (caption, y_desc): (&str, &str),
    x_max: f64,
    y: Range<f64>,
    text: bool,
) -> Result<EpisodeChart<'a, 'b>, Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(root);
    builder.margin(16);
    if text {
        builder
            .caption(caption, (FONT, 20))
            .x_label_area_size(44)
            .y_label_area_size(56);
    }
    let mut chart = builder.build_cartesian_2d(1.0..x_max, y)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("episode")
            .y_desc(y_desc)
            .x_labels((x_max as usize).clamp(2, 11))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()?;
    }
    Ok(chart)
}

/// The legend of the labelled series, lower right.
pub fn draw_legend<'a, 'b: 'a>(
    chart: &mut EpisodeChart<'a, 'b>,
) -> Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    Ok(())
}

/// 8-bit RGB PNG of a row-major `width × height × 3` buffer.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(rgb)?;
    w.finish()?;
    Ok(out)
}
