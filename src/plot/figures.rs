//! The five figures. Each public function checks its input, then renders through
//! [`super::render`].

use std::collections::BTreeMap;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{render, Describe, Figure, FrontierPoint, Trace, TrajectoryPoint};
use crate::error::{Error, Result};
use crate::sim::Row;

/// Qualitative palette (Tableau 10): distinguishable, and readable in grey scale print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const TITLE: u32 = 26;
const LABEL: u32 = 20;
const TICK: u32 = 16;

/// Draws the legend box at `position`, in one style for every figure.
fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", TICK))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .d()
}

/// A legend sample for a line series: a short stroke in `style`.
fn legend_line(style: ShapeStyle) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style)
}

/// Viridis, by linear interpolation between five of its anchor colours; `t` in `[0, 1]`.
fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } * 4.0;
    let k = (t.floor() as usize).min(3);
    let f = t - k as f64;
    let (a, b) = (ANCHORS[k], ANCHORS[k + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Tick label: whole numbers without a decimal point, others with up to three decimals.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').to_owned()
    }
}

fn invalid(out: &Path, reason: impl Into<String>) -> Error {
    Error::Plot {
        path: out.into(),
        reason: reason.into(),
    }
}

/// Sorted distinct values (exact equality: the values come from the same parsed strings).
fn distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|a, b| a.to_bits() == b.to_bits());
    v
}

/// Cell edges around sorted centres: midpoints inside, half a step beyond each end.
fn edges(centres: &[f64]) -> Vec<f64> {
    if centres.len() == 1 {
        let half = (centres[0].abs() * 0.5).max(0.5);
        return vec![centres[0] - half, centres[0] + half];
    }
    let n = centres.len();
    let mut e = Vec::with_capacity(n + 1);
    e.push(centres[0] - (centres[1] - centres[0]) / 2.0);
    for w in centres.windows(2) {
        e.push((w[0] + w[1]) / 2.0);
    }
    e.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2.0);
    e
}

struct Phase {
    gammas: Vec<f64>,
    betas: Vec<f64>,
    /// Mean pruned fraction and game count per (γ index, β index).
    cells: BTreeMap<(usize, usize), (f64, usize)>,
    note: String,
}

/// Heatmap of the mean pruned fraction at equilibrium over (γ, β), averaged over every
/// other parameter of the sweep, with a colour bar on the fixed range [0, 1].
pub fn phase_diagram(rows: &[Row], out: &Path) -> Result<()> {
    if rows.is_empty() {
        return Err(invalid(out, "no sweep rows to plot"));
    }
    let gammas = distinct(rows.iter().map(|r| r.params.gamma));
    let betas = distinct(rows.iter().map(|r| r.params.beta));
    let index = |v: &[f64], x: f64| v.iter().position(|y| y.to_bits() == x.to_bits());
    let mut sums: BTreeMap<(usize, usize), (f64, usize)> = BTreeMap::new();
    for r in rows {
        if let (Some(g), Some(b)) = (index(&gammas, r.params.gamma), index(&betas, r.params.beta)) {
            let e = sums.entry((g, b)).or_insert((0.0, 0));
            e.0 += r.pruned_fraction;
            e.1 += 1;
        }
    }
    let cells = sums
        .into_iter()
        .map(|(k, (s, n))| (k, (s / n as f64, n)))
        .collect();
    let per_cell = rows.len() as f64 / (gammas.len() * betas.len()) as f64;
    let players = distinct(rows.iter().map(|r| r.params.players as f64));
    let note = format!(
        "{} games, {:.0} per (γ, β); {} players{}",
        rows.len(),
        per_cell,
        players
            .iter()
            .map(|p| format!("{p}"))
            .collect::<Vec<_>>()
            .join("/"),
        if rows
            .iter()
            .any(|r| r.params.topology != rows[0].params.topology
                || r.params.solver != rows[0].params.solver)
        {
            "; averaged over other axes"
        } else {
            ""
        }
    );
    render(
        &Phase {
            gammas,
            betas,
            cells,
            note,
        },
        out,
    )
}

impl Figure for Phase {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).d()?;
        let (title, body) = root.split_vertically(70);
        title
            .draw(&Text::new(
                "Pruned fraction at equilibrium",
                (20, 10),
                ("sans-serif", TITLE).into_font(),
            ))
            .d()?;
        title
            .draw(&Text::new(
                self.note.as_str(),
                (20, 42),
                ("sans-serif", TICK)
                    .into_font()
                    .color(&RGBColor(90, 90, 90)),
            ))
            .d()?;
        let width = body.dim_in_pixel().0;
        let (main, bar) = body.split_horizontally(width - 130);
        let ge = edges(&self.gammas);
        let be = edges(&self.betas);
        let mut chart = ChartBuilder::on(&main)
            .margin(15)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(ge[0]..ge[ge.len() - 1], be[0]..be[be.len() - 1])
            .d()?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("participation cost γ")
            .y_desc("competition strength β")
            .axis_desc_style(("sans-serif", LABEL))
            .label_style(("sans-serif", TICK))
            .x_labels(self.gammas.len().clamp(2, 12))
            .y_labels(self.betas.len().clamp(2, 12))
            .draw()
            .d()?;
        chart
            .draw_series(self.cells.iter().map(|(&(g, b), &(mean, _))| {
                Rectangle::new(
                    [(ge[g], be[b]), (ge[g + 1], be[b + 1])],
                    viridis(mean).filled(),
                )
            }))
            .d()?;
        // Values written in the cells when they fit.
        if self.gammas.len() <= 12 && self.betas.len() <= 12 {
            chart
                .draw_series(self.cells.iter().map(|(&(g, b), &(mean, _))| {
                    let colour = if mean > 0.6 { BLACK } else { WHITE };
                    Text::new(
                        format!("{mean:.2}"),
                        (self.gammas[g], self.betas[b]),
                        ("sans-serif", 14)
                            .into_font()
                            .color(&colour)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                }))
                .d()?;
        }
        colour_bar(&bar, "pruned fraction")
    }
}

/// A vertical colour bar for [`viridis`] on [0, 1].
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
) -> std::result::Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin_top(15)
        .margin_bottom(70)
        .margin_right(55)
        .y_label_area_size(0)
        .right_y_label_area_size(45)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .d()?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .label_style(("sans-serif", TICK))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()
        .d()?;
    let steps = 100;
    chart
        .draw_series((0..steps).map(|k| {
            let (lo, hi) = (k as f64 / steps as f64, (k + 1) as f64 / steps as f64);
            Rectangle::new([(0.0, lo), (1.0, hi)], viridis((lo + hi) / 2.0).filled())
        }))
        .d()?;
    let (w, _) = area.dim_in_pixel();
    area.draw(&Text::new(
        label.to_owned(),
        (w as i32 - 20, 200),
        ("sans-serif", TICK)
            .into_font()
            .transform(FontTransform::Rotate90),
    ))
    .d()?;
    Ok(())
}

struct Scatter {
    negative_q: Vec<(f64, f64)>,
    proved: Vec<(f64, f64)>,
}

/// Predicted versus observed pruned fraction, one point per game and predictor, with the
/// diagonal `observed = predicted`: points above it are units the predictor missed.
pub fn sparsity(rows: &[Row], out: &Path) -> Result<()> {
    if rows.is_empty() {
        return Err(invalid(out, "no sweep rows to plot"));
    }
    render(
        &Scatter {
            negative_q: rows
                .iter()
                .map(|r| (r.negative_q_fraction, r.pruned_fraction))
                .collect(),
            proved: rows
                .iter()
                .map(|r| (r.proved_pruned_fraction, r.pruned_fraction))
                .collect(),
        },
        out,
    )
}

impl Figure for Scatter {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).d()?;
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Predicted vs observed sparsity",
                ("sans-serif", TITLE).into_font(),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .d()?;
        chart
            .configure_mesh()
            .x_desc("predicted pruned fraction")
            .y_desc("pruned fraction at equilibrium")
            .axis_desc_style(("sans-serif", LABEL))
            .label_style(("sans-serif", TICK))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .d()?;
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                grey.stroke_width(2),
            ))
            .d()?
            .label("observed = predicted")
            .legend(legend_line(grey.stroke_width(2)));
        let blue = PALETTE[0];
        chart
            .draw_series(
                self.negative_q
                    .iter()
                    .map(|&p| Circle::new(p, 4, blue.mix(0.6).filled())),
            )
            .d()?
            .label("q_i < 0 (T3)")
            .legend(move |(x, y)| Circle::new((x + 12, y), 5, blue.filled()));
        let orange = PALETTE[1];
        chart
            .draw_series(
                self.proved
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 5, orange.mix(0.7).filled())),
            )
            .d()?
            .label("iterated elimination (T3 ∪ T4)")
            .legend(move |(x, y)| TriangleMarker::new((x + 12, y), 6, orange.filled()));
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
    }
}

struct Convergence<'a> {
    traces: &'a [Trace],
}

/// Residual per iteration of one or more solver runs, log-scaled. `residuals[k]` is the
/// residual of iterate `k` (iterate 0 is the starting profile), as in `SolveReport`. Zeros
/// are dropped: they have no logarithm, and mean the solve was exact.
pub fn convergence(traces: &[Trace], out: &Path) -> Result<()> {
    if traces
        .iter()
        .all(|t| t.residuals.iter().all(|r| !(*r > 0.0 && r.is_finite())))
    {
        return Err(invalid(out, "no positive finite residuals to plot"));
    }
    render(&Convergence { traces }, out)
}

impl Figure for Convergence<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).d()?;
        let positive = |t: &Trace| {
            t.residuals
                .iter()
                .enumerate()
                .filter(|(_, r)| **r > 0.0 && r.is_finite())
                .map(|(k, r)| (k as f64, *r))
                .collect::<Vec<_>>()
        };
        let all: Vec<(f64, f64)> = self.traces.iter().flat_map(positive).collect();
        let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max);
        let lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = all.iter().map(|p| p.1).fold(0.0, f64::max);
        let (lo, hi) = (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()).max(lo * 10.0),
        );
        let mut chart = ChartBuilder::on(root)
            .caption("Solver convergence", ("sans-serif", TITLE).into_font())
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x_max.max(2.0), (lo..hi).log_scale())
            .d()?;
        chart
            .configure_mesh()
            .x_desc("iteration k")
            .y_desc("natural residual of iterate k")
            .x_label_formatter(&tick)
            .axis_desc_style(("sans-serif", LABEL))
            .label_style(("sans-serif", TICK))
            .light_line_style(RGBColor(235, 235, 235))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .d()?;
        for (k, t) in self.traces.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(positive(t), colour.stroke_width(2)))
                .d()?
                .label(format!(
                    "{} ({} iterations)",
                    t.label,
                    t.residuals.len().saturating_sub(1)
                ))
                .legend(legend_line(colour.stroke_width(3)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

struct Trajectories {
    /// (unit, points sorted by step, final value).
    units: Vec<(String, Vec<(f64, f64)>)>,
}

/// Participation of each unit over training steps. Up to 10 units get their own colour and
/// legend entry; beyond that, units that end at 0 (pruned) are red and the others blue.
pub fn trajectories(points: &[TrajectoryPoint], out: &Path) -> Result<()> {
    if points.is_empty() {
        return Err(invalid(out, "no trajectory points to plot"));
    }
    let mut by_unit: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for p in points {
        by_unit.entry(&p.unit).or_default().push((p.step, p.value));
    }
    let units = by_unit
        .into_iter()
        .map(|(u, mut v)| {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            (u.to_owned(), v)
        })
        .collect();
    render(&Trajectories { units }, out)
}

impl Figure for Trajectories {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).d()?;
        let pts = self.units.iter().flat_map(|(_, v)| v.iter());
        let (x0, x1) = pts
            .clone()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.0), b.max(p.0))
            });
        let y1 = pts.map(|p| p.1).fold(1.0, f64::max);
        let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Participation trajectories",
                ("sans-serif", TITLE).into_font(),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, 0.0..y1 * 1.05)
            .d()?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("participation s_i")
            .x_label_formatter(&tick)
            .axis_desc_style(("sans-serif", LABEL))
            .label_style(("sans-serif", TICK))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .d()?;
        let individual = self.units.len() <= PALETTE.len();
        let (mut kept_labelled, mut pruned_labelled) = (false, false);
        let pruned_count = self
            .units
            .iter()
            .filter(|(_, v)| v.last().is_some_and(|p| p.1 <= 0.0))
            .count();
        for (k, (unit, v)) in self.units.iter().enumerate() {
            let pruned = v.last().is_some_and(|p| p.1 <= 0.0);
            let colour = if individual {
                PALETTE[k]
            } else if pruned {
                PALETTE[3]
            } else {
                PALETTE[0]
            };
            let style = if individual {
                colour.stroke_width(2)
            } else {
                colour.mix(0.5).stroke_width(1)
            };
            let series = chart.draw_series(LineSeries::new(v.clone(), style)).d()?;
            let label = if individual {
                Some(unit.clone())
            } else if pruned && !pruned_labelled {
                pruned_labelled = true;
                Some(format!("pruned (ends at 0): {pruned_count}"))
            } else if !pruned && !kept_labelled {
                kept_labelled = true;
                Some(format!("kept: {}", self.units.len() - pruned_count))
            } else {
                None
            };
            if let Some(label) = label {
                series
                    .label(label)
                    .legend(legend_line(colour.stroke_width(3)));
            }
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
    }
}

/// `(kept fraction, mean accuracy, sd)` points of one method.
type Curve = Vec<(f64, f64, f64)>;

struct Frontier {
    methods: Vec<(String, Curve)>,
}

/// Accuracy against kept fraction, one line per method, with ±1 standard deviation bars.
pub fn frontier(points: &[FrontierPoint], out: &Path) -> Result<()> {
    if points.is_empty() {
        return Err(invalid(out, "no frontier points to plot"));
    }
    let mut by_method: Vec<(String, Curve)> = Vec::new();
    for p in points {
        let entry = (p.kept_fraction, p.accuracy_mean, p.accuracy_std.abs());
        match by_method.iter_mut().find(|(m, _)| *m == p.method) {
            Some((_, v)) => v.push(entry),
            None => by_method.push((p.method.clone(), vec![entry])),
        }
    }
    for (_, v) in &mut by_method {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    render(&Frontier { methods: by_method }, out)
}

impl Figure for Frontier {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        root.fill(&WHITE).d()?;
        let all = self.methods.iter().flat_map(|(_, v)| v.iter());
        let x1 = all.clone().map(|p| p.0).fold(0.0, f64::max).max(1.0);
        let y0 = all.clone().map(|p| p.1 - p.2).fold(f64::INFINITY, f64::min);
        let y1 = all.map(|p| p.1 + p.2).fold(f64::NEG_INFINITY, f64::max);
        let pad = ((y1 - y0) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Accuracy vs kept fraction",
                ("sans-serif", TITLE).into_font(),
            )
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x1, (y0 - pad)..(y1 + pad))
            .d()?;
        chart
            .configure_mesh()
            .x_desc("kept fraction of units")
            .y_desc("test accuracy")
            .axis_desc_style(("sans-serif", LABEL))
            .label_style(("sans-serif", TICK))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .d()?;
        for (k, (method, v)) in self.methods.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            chart
                .draw_series(v.iter().map(|&(x, m, s)| {
                    PathElement::new(vec![(x, m - s), (x, m + s)], colour.stroke_width(2))
                }))
                .d()?;
            chart
                .draw_series(
                    v.iter()
                        .map(|&(x, m, _)| Circle::new((x, m), 4, colour.filled())),
                )
                .d()?;
            chart
                .draw_series(LineSeries::new(
                    v.iter().map(|&(x, m, _)| (x, m)),
                    colour.stroke_width(2),
                ))
                .d()?
                .label(method.clone())
                .legend(legend_line(colour.stroke_width(3)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_bracket_centres() {
        let e = edges(&[0.0, 0.1, 0.3]);
        assert_eq!(e.len(), 4);
        assert!((e[0] + 0.05).abs() < 1e-12 && (e[3] - 0.4).abs() < 1e-12);
        assert_eq!(edges(&[2.0]).len(), 2);
    }

    #[test]
    fn colour_map_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }
}
