//! What every ccad plot shares: the font, the line colours and PNG encoding. Plots are drawn
//! by plotters on an RGB buffer; text through plotters' pure-Rust `ab_glyph` renderer from a
//! TrueType font found on the system (Debian: `fonts-dejavu-core`); ccad ships no font, and
//! without one a plot is drawn without text.

use std::path::Path;
use std::sync::OnceLock;

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
