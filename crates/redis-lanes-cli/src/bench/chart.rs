//! The SVG chart: one panel of horizontal bars per measured quantity, stacked.
//!
//! Drawn with plotters' SVG backend only: labels become SVG `<text>` elements that the
//! viewer renders, so neither font files nor system libraries are needed. Every bar is
//! labelled with the number the tables show; the bar only makes it easy to compare.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::BoxError;

/// A quantity compared across clients.
pub(crate) struct Panel {
    /// What is measured, with its unit and which way is better.
    pub(crate) title: String,
    pub(crate) bars: Vec<Bar>,
}

/// One client's value in a panel.
pub(crate) struct Bar {
    pub(crate) label: String,
    /// The bar's length, relative to the panel's largest value.
    pub(crate) value: f64,
    /// What is written at the end of the bar (the table's number).
    pub(crate) text: String,
    /// redis-lanes' bar, drawn in its own colour.
    pub(crate) ours: bool,
}

const WIDTH: u32 = 1160;
const LABEL_RIGHT: i32 = 250;
const BAR_LEFT: i32 = 260;
const BAR_MAX: i32 = 500;
const ROW: i32 = 20;
const TITLE: i32 = 30;
const GAP: i32 = 18;

const OURS: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
const THEIRS: RGBColor = RGBColor(0xa6, 0xa6, 0xa6);

/// The chart as an SVG document.
pub(crate) fn svg(panels: &[&Panel]) -> Result<String, BoxError> {
    let rows: usize = panels.iter().map(|p| p.bars.len()).sum();
    let height = panels.len() as i32 * (TITLE + GAP) + rows as i32 * ROW + GAP;
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (WIDTH, height.max(1) as u32)).into_drawing_area();
        let failed = |e: DrawingAreaErrorKind<_>| format!("drawing the chart: {e:?}");
        root.fill(&WHITE).map_err(failed)?;
        let mut y = GAP;
        for panel in panels {
            y = draw_panel(&root, panel, y).map_err(failed)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(out)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draws `panel` from `top` down; returns where the next panel starts.
fn draw_panel(
    root: &Area<'_>,
    panel: &Panel,
    top: i32,
) -> Result<i32, DrawingAreaErrorKind<std::io::Error>> {
    let title = ("sans-serif", 20)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK);
    root.draw(&Text::new(panel.title.clone(), (10, top), title))?;
    let label = ("sans-serif", 16).into_font().color(&BLACK);
    let right_aligned = label.pos(Pos::new(HPos::Right, VPos::Top));
    let max = panel.bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let mut y = top + TITLE;
    for bar in &panel.bars {
        root.draw(&Text::new(
            bar.label.clone(),
            (LABEL_RIGHT, y + 3),
            right_aligned.clone(),
        ))?;
        let length = if max > 0.0 && bar.value > 0.0 {
            // At least one pixel, so a tiny nonzero value is still seen to be there.
            ((bar.value / max) * f64::from(BAR_MAX)).round().max(1.0) as i32
        } else {
            0
        };
        let colour = if bar.ours { OURS } else { THEIRS };
        if length > 0 {
            root.draw(&Rectangle::new(
                [(BAR_LEFT, y + 2), (BAR_LEFT + length, y + ROW - 2)],
                colour.filled(),
            ))?;
        }
        root.draw(&Text::new(
            bar.text.clone(),
            (BAR_LEFT + length + 6, y + 3),
            label.clone(),
        ))?;
        y += ROW;
    }
    Ok(y + GAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_labels_as_svg_text() {
        let panel = Panel {
            title: "Lost elements (fewer is better)".into(),
            bars: vec![
                Bar {
                    label: "redis-lanes".into(),
                    value: 0.0,
                    text: "0".into(),
                    ours: true,
                },
                Bar {
                    label: "other".into(),
                    value: 12.0,
                    text: "12".into(),
                    ours: false,
                },
            ],
        };
        let svg = svg(&[&panel]).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Lost elements (fewer is better)"));
        assert!(svg.contains("<text") && svg.contains("redis-lanes"));
        assert!(svg.contains("<rect"));
    }
}
