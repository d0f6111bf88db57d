//! The task's PNG, two panels over the same episode axis (step `t` sits at episode
//! `1 + t / horizon`): on top one stream's reward per step with its region boundaries; below,
//! every region's mean episode return over all streams with a ± 1 std band, and the task's
//! optimal return dashed. Drawn with evaluate's plot style (font, colours, PNG encoding).

use evaluate::plot_style::{COLOURS, draw_legend, encode_png, episode_chart};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::summary::{RegionReturn, TaskSummary};

pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 880;

/// The optimum and zero rewards.
const GUIDE: RGBColor = RGBColor(90, 90, 90);
/// Region boundaries (a region's first step), apart from the grid's grey.
const BOUNDARY: RGBColor = COLOURS[3];

/// What the plot names in its captions.
pub struct Labels<'a> {
    pub env: &'a str,
    pub horizon: usize,
}

/// PNG bytes: stream `stream`'s `rewards` (its `T` steps) on top, all streams' regions below.
/// `text`: captions, axis labels and legend (needs a system font).
pub fn task_png(
    s: &TaskSummary,
    stream: usize,
    rewards: &[f32],
    labels: &Labels,
    text: bool,
) -> Result<Vec<u8>, String> {
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(&mut rgb, s, stream, rewards, labels, text).map_err(|e| e.to_string())?;
    encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| e.to_string())
}

fn draw(
    rgb: &mut [u8],
    s: &TaskSummary,
    stream: usize,
    rewards: &[f32],
    labels: &Labels,
    text: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let h = labels.horizon as f64;
    let x_of = |step: f64| 1.0 + step / h;
    // At least one episode wide, so a tiny file still has an x range.
    let x_max = x_of(s.steps as f64).max(2.0);
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    let (top, bottom) = root.split_vertically(HEIGHT / 2);

    // Top: the stream's rewards, zeros in grey, the rest in colour; region starts dashed.
    let (lo, hi) = rewards.iter().fold((0.0f64, 1.0f64), |(lo, hi), &r| {
        (lo.min(r as f64), hi.max(r as f64))
    });
    let pad = 0.08 * (hi - lo);
    let params = format!("{} {:?}", s.param_name, s.params);
    let caption = format!(
        "{} task {} ({params}), stream {stream}: reward per step",
        labels.env, s.task
    );
    let mut chart = episode_chart(
        &top,
        (&caption, "reward"),
        x_max,
        (lo - pad)..(hi + pad),
        text,
    )?;
    // Dashed from `y.0` to `y.1` at every region start but the first.
    let boundaries = |starts: Vec<f64>, y: (f64, f64)| {
        starts
            .into_iter()
            .filter(|&t| t > 0.0)
            .map(|t| {
                DashedPathElement::new(
                    [(x_of(t), y.0), (x_of(t), y.1)],
                    5,
                    4,
                    BOUNDARY.mix(0.7).stroke_width(1),
                )
            })
            .collect::<Vec<_>>()
    };
    let own: &[RegionReturn] = &s.streams[stream];
    chart.draw_series(boundaries(
        own.iter().map(|r| r.start as f64).collect(),
        (lo - pad, hi + pad),
    ))?;
    chart.draw_series(rewards.iter().enumerate().map(|(t, &r)| {
        let colour = if r == 0.0 {
            GUIDE.mix(0.35)
        } else {
            COLOURS[0].to_rgba()
        };
        Circle::new((x_of(t as f64 + 0.5), r as f64), 2, colour.filled())
    }))?;

    // Bottom: per region, mean ± 1 std of the episode return over all streams, at the
    // region's middle; the optimum dashed.
    let mids: Vec<f64> = s
        .regions
        .iter()
        .map(|r| x_of(0.5 * (r.start + r.end)))
        .collect();
    let edge = |sign: f64| -> Vec<f64> {
        s.regions
            .iter()
            .map(|r| r.episode_return.mean + sign * r.episode_return.std)
            .collect()
    };
    let (upper, lower) = (edge(1.0), edge(-1.0));
    let (lo, hi) = upper
        .iter()
        .chain(&lower)
        .filter(|v| v.is_finite())
        .fold((0.0f64, s.optimal.max(1.0)), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let pad = 0.08 * (hi - lo);
    let caption = format!(
        "Return per episode of each region, all {} streams (mean ± 1 std)",
        s.n_stream
    );
    let mut chart = episode_chart(
        &bottom,
        (&caption, "episode return"),
        x_max,
        (lo - pad)..(hi + pad),
        text,
    )?;
    let bounds = chart.draw_series(boundaries(
        s.regions.iter().map(|r| r.start).collect(),
        (lo - pad, hi + pad),
    ))?;
    if text {
        bounds.label("region boundary").legend(|(x, y)| {
            DashedPathElement::new([(x, y), (x + 24, y)], 5, 4, BOUNDARY.stroke_width(1))
        });
    }
    let optimum = chart.draw_series(std::iter::once(DashedPathElement::new(
        [(1.0, s.optimal), (x_max, s.optimal)],
        8,
        5,
        GUIDE.stroke_width(2),
    )))?;
    if text {
        optimum.label("optimal return").legend(|(x, y)| {
            DashedPathElement::new([(x, y), (x + 24, y)], 6, 4, GUIDE.stroke_width(2))
        });
    }
    let colour = COLOURS[0];
    let mut outline: Vec<(f64, f64)> = mids.iter().copied().zip(upper).collect();
    outline.extend(mids.iter().copied().zip(lower).rev());
    chart.draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.2))))?;
    let means: Vec<(f64, f64)> = mids
        .iter()
        .zip(&s.regions)
        .map(|(&x, r)| (x, r.episode_return.mean))
        .collect();
    let line = chart.draw_series(LineSeries::new(means.clone(), colour.stroke_width(2)))?;
    if text {
        line.label(format!("mean ± 1 std over {} streams", s.n_stream))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    }
    chart.draw_series(
        means
            .into_iter()
            .map(|p| Circle::new(p, 3, colour.filled())),
    )?;
    if text {
        draw_legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}
