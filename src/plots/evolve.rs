//! The figures of an evolution: YOLOv5's evolve.png, the fitness history, parallel coordinates of the best
//! rows and the importance bars.

use super::{Figure, colour_bar, draw_legend, emptiest_corner, plot_err, range, render, step_points};
use crate::error::Result;
use crate::fsutil::fmt_g;
use crate::results::EvolveResults;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

/// log(count) of each point's cell in a 2-D histogram with `n` edges per axis (`hist2d` in plots.py).
pub fn hist2d_log_density(x: &[f64], y: &[f64], n: usize) -> Vec<f64> {
    let edges = |v: &[f64]| {
        let (lo, hi) = (v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(f64::MIN, f64::max));
        (lo, hi)
    };
    let ((xl, xh), (yl, yh)) = (edges(x), edges(y));
    let bins = n - 1;
    let bin = |v: f64, lo: f64, hi: f64| -> usize {
        if hi <= lo {
            return 0;
        }
        (((v - lo) / (hi - lo) * bins as f64).floor() as isize).clamp(0, bins as isize - 1) as usize
    };
    let mut counts = vec![0usize; bins * bins];
    let cells: Vec<usize> = x.iter().zip(y).map(|(a, b)| bin(*a, xl, xh) * bins + bin(*b, yl, yh)).collect();
    for c in &cells {
        counts[*c] += 1;
    }
    cells.iter().map(|c| (counts[*c] as f64).ln()).collect()
}

impl EvolveResults {
    /// YOLOv5's evolve.png: one panel per hyperparameter (6×5 grid, up to 30), value against fitness, points
    /// coloured by log density (viridis, with its colour bar), the best row marked with a black +, titles
    /// `key = best`.
    pub fn plot_evolve(&self) -> Result<Figure> {
        self.require_rows()?;
        let keys = self.keys();
        let f = self.fitness().to_vec();
        let best = self.best_row();
        // a wider margin than `range` gives, so markers at the extremes are not cut by the panel's edge
        let padded = |v: &[f64]| {
            let (lo, hi) = range(v);
            let pad = (hi - lo) * 0.04;
            (lo - pad, hi + pad)
        };
        render(1330, 1500, &format!("evolve.png: {} rows, best row {best}", self.len()), |root| {
            let (grid, bar) = root.split_horizontally(1250);
            let panels = grid.split_evenly((6, 5));
            for (i, k) in keys.iter().take(30).enumerate() {
                let v = self.column(k).unwrap_or_default();
                let dens = hist2d_log_density(&v, &f, 20);
                let dmax = dens.iter().cloned().fold(0.0, f64::max).max(1e-12);
                let (xr, yr) = (padded(&v), padded(&f));
                let first_column = i % 5 == 0;
                let mut chart = ChartBuilder::on(&panels[i])
                    .caption(format!("{k} = {}", fmt_g(v[best], 3)), ("sans-serif", 15))
                    .margin_top(6)
                    .margin_bottom(6)
                    .margin_left(14)
                    .margin_right(16)
                    .x_label_area_size(20)
                    .y_label_area_size(if first_column { 62 } else { 8 })
                    .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                    .map_err(plot_err)?;
                let mut mesh = chart.configure_mesh();
                mesh.disable_mesh().x_labels(3).label_style(("sans-serif", 10)).x_label_formatter(&|x| fmt_g(*x, 2));
                if first_column {
                    mesh.y_labels(4)
                        .y_label_formatter(&|y| fmt_g(*y, 2))
                        .y_desc("fitness")
                        .axis_desc_style(("sans-serif", 11));
                } else {
                    mesh.y_labels(0);
                }
                mesh.draw().map_err(plot_err)?;
                chart
                    .draw_series(v.iter().zip(&f).zip(&dens).map(|((x, y), d)| {
                        let c = ViridisRGB::get_color(*d / dmax);
                        Circle::new((*x, *y), 3, c.mix(0.8).filled())
                    }))
                    .map_err(plot_err)?;
                let (bx, by) = (v[best], f[best]);
                let (dx, dy) = ((xr.1 - xr.0) * 0.035, (yr.1 - yr.0) * 0.045);
                chart
                    .draw_series([
                        PathElement::new(vec![(bx - dx, by), (bx + dx, by)], BLACK.stroke_width(2)),
                        PathElement::new(vec![(bx, by - dy), (bx, by + dy)], BLACK.stroke_width(2)),
                    ])
                    .map_err(plot_err)?;
            }
            colour_bar(&bar, "rows per cell (log, per panel)", "one", "most")
        })
    }

    /// Fitness of every row in order, with the running best.
    pub fn plot_fitness_history(&self) -> Result<Figure> {
        self.require_rows()?;
        let f = self.fitness().to_vec();
        let mut best = Vec::with_capacity(f.len());
        let mut m = f64::MIN;
        for v in &f {
            m = m.max(*v);
            best.push(m);
        }
        let noise = self.noise();
        render(900, 450, "fitness by generation", |root| {
            let mut span = f.clone();
            if let Some(n) = noise {
                span.extend([n.mean - n.sd, n.mean + n.sd]);
            }
            let yr = range(&span);
            let mut chart = ChartBuilder::on(root)
                .caption("fitness by generation", ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..(f.len().max(2) - 1) as f64, yr.0..yr.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc("generation (row)")
                .y_desc("fitness")
                .label_style(("sans-serif", 12))
                .y_label_formatter(&|y| fmt_g(*y, 3))
                .draw()
                .map_err(plot_err)?;
            if let Some(n) = noise {
                // the base hyperparameters' run-to-run noise: their mean ± one training's standard deviation
                let x1 = (f.len().max(2) - 1) as f64;
                chart
                    .draw_series([Rectangle::new(
                        [(0.0, n.mean - n.sd), (x1, n.mean + n.sd)],
                        BLACK.mix(0.08).filled(),
                    )])
                    .map_err(plot_err)?
                    .label(format!("base ± noise (sd over {} seeds)", n.n))
                    .legend(|(x, y)| Rectangle::new([(x - 8, y - 4), (x + 8, y + 4)], BLACK.mix(0.15).filled()));
            }
            chart
                .draw_series(f.iter().enumerate().map(|(i, v)| Circle::new((i as f64, *v), 3, BLUE.mix(0.6).filled())))
                .map_err(plot_err)?
                .label("generation")
                .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
            chart
                .draw_series(LineSeries::new(step_points(&best), RED.stroke_width(2)))
                .map_err(plot_err)?
                .label("best so far")
                .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], RED));
            let pts = [(String::new(), f.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect())];
            draw_legend(&mut chart, emptiest_corner(&pts, (0.0, (f.len().max(2) - 1) as f64), yr))
        })
    }

    /// Parallel coordinates of the `k` best rows: each hyperparameter scaled to its range over all rows,
    /// lines coloured by fitness (viridis, yellow = best).
    pub fn plot_parallel(&self, k: usize) -> Result<Figure> {
        self.require_rows()?;
        let keys: Vec<String> = self
            .keys()
            .into_iter()
            .filter(|c| {
                self.column(c).map(|v| range(&v).1 - range(&v).0 > 0.0 && v.iter().any(|x| *x != v[0])).unwrap_or(false)
            })
            .collect();
        let top = crate::evolve::top_rows(self.fitness(), k);
        let f = self.fitness();
        let (fl, fh) = range(&top.iter().map(|&i| f[i]).collect::<Vec<_>>());
        let cols: Vec<Vec<f64>> = keys.iter().map(|c| self.column(c).unwrap_or_default()).collect();
        render(1180, 500, &format!("parallel coordinates of the {} best rows", top.len()), |root| {
            let (plot, bar) = root.split_horizontally(1100);
            colour_bar(&bar, "fitness", &fmt_g(fl, 3), &fmt_g(fh, 3))?;
            let mut chart = ChartBuilder::on(&plot)
                .caption(format!("top {} rows (colour = fitness)", top.len()), ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(70)
                .y_label_area_size(40)
                .build_cartesian_2d(-0.5f64..(keys.len().max(1) as f64 - 0.5), -0.05f64..1.05)
                .map_err(plot_err)?;
            let names = keys.clone();
            chart
                .configure_mesh()
                .x_labels(keys.len().max(1))
                .x_label_formatter(&|x| names.get(x.round() as usize).cloned().unwrap_or_default())
                .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
                .y_desc("scaled value")
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(plot_err)?;
            for &r in top.iter().rev() {
                let c = ViridisRGB::get_color(((f[r] - fl) / (fh - fl).max(1e-12)).clamp(0.0, 1.0));
                let pts: Vec<(f64, f64)> = cols
                    .iter()
                    .enumerate()
                    .map(|(j, col)| {
                        let (lo, hi) = (
                            col.iter().cloned().fold(f64::MAX, f64::min),
                            col.iter().cloned().fold(f64::MIN, f64::max),
                        );
                        (j as f64, if hi > lo { (col[r] - lo) / (hi - lo) } else { 0.5 })
                    })
                    .collect();
                chart.draw_series(LineSeries::new(pts, c.stroke_width(2))).map_err(plot_err)?;
            }
            Ok(())
        })
    }

    /// Bars of each hyperparameter's importance (η² of fitness ranks) with Spearman's ρ as a line, on an
    /// axis fitted to the values; hyperparameters that never changed are left out (they have no effect to
    /// show) and named in the caption's count.
    pub fn plot_importance(&self) -> Result<Figure> {
        self.require_rows()?;
        let mut imp: Vec<(String, f64, f64)> = self
            .keys()
            .into_iter()
            .filter_map(|k| {
                let v = self.column(&k).unwrap_or_default();
                if !v.iter().any(|x| *x != v[0]) {
                    return None;
                }
                let rho = crate::results::spearman(&v, self.fitness());
                let eta = crate::results::rank_eta_squared(&v, self.fitness());
                Some((k, eta, rho))
            })
            .collect();
        imp.sort_by(|a, b| b.1.total_cmp(&a.1));
        let fixed = self.keys().len() - imp.len();
        let n = imp.len().max(1);
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        let lo = imp.iter().map(|r| finite(r.2)).fold(0.0, f64::min);
        let hi = imp.iter().map(|r| finite(r.1).max(finite(r.2))).fold(0.0, f64::max);
        let pad = ((hi - lo) * 0.08).max(0.01);
        let (x0, x1) = ((lo - pad).max(-1.0), (hi + pad).min(1.0));
        let caption = format!(
            "importance of {} changing hyperparameters{}",
            imp.len(),
            if fixed > 0 { format!(" ({fixed} never changed)") } else { String::new() }
        );
        render(900, 40 + 22 * n as u32 + 90, "hyperparameter importance", |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&caption, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(110)
                .build_cartesian_2d(x0..x1, -0.5f64..(n as f64 - 0.5))
                .map_err(plot_err)?;
            let names: Vec<String> = imp.iter().map(|r| r.0.clone()).collect();
            chart
                .configure_mesh()
                .y_labels(n)
                .y_label_formatter(&|y| names.get((n as f64 - 1.0 - y).round() as usize).cloned().unwrap_or_default())
                .x_label_formatter(&|x| fmt_g(*x, 2))
                .x_desc("η² of fitness ranks (bar, 0–1) · Spearman ρ (line, −1–1)")
                .label_style(("sans-serif", 11))
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series([PathElement::new(vec![(0.0, -0.5), (0.0, n as f64 - 0.5)], BLACK.stroke_width(1))])
                .map_err(plot_err)?;
            for (i, (_, eta, rho)) in imp.iter().enumerate() {
                let y = n as f64 - 1.0 - i as f64;
                let bars = chart
                    .draw_series([Rectangle::new([(0.0, y - 0.35), (*eta, y + 0.35)], BLUE.mix(0.7).filled())])
                    .map_err(plot_err)?;
                if i == 0 {
                    bars.label("η²")
                        .legend(|(a, b)| Rectangle::new([(a - 6, b - 4), (a + 6, b + 4)], BLUE.mix(0.7).filled()));
                }
                let line = chart
                    .draw_series([PathElement::new(vec![(0.0, y), (*rho, y)], RED.stroke_width(3))])
                    .map_err(plot_err)?;
                if i == 0 {
                    line.label("Spearman ρ")
                        .legend(|(a, b)| PathElement::new(vec![(a - 8, b), (a + 8, b)], RED.stroke_width(3)));
                }
            }
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
        })
    }
}
