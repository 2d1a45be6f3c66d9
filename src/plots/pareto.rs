//! The Pareto front of two objectives: every candidate as a point, the dominated ones faded, the front
//! joined as a staircase (the trade-off it offers), the knee marked.

use super::{Figure, draw_legend, emptiest_corner, plot_err, range, render};
use crate::error::{Error, Result};
use crate::evolve::Objective;
use crate::fsutil::fmt_g;
use crate::results::EvolveResults;
use plotters::prelude::*;

impl EvolveResults {
    /// The front of the evolution's first two objectives ([`EvolveResults::objectives`]): the second
    /// objective across, the first up.
    pub fn plot_pareto(&self) -> Result<Figure> {
        let o = self.objectives();
        let x = o.iter().copied().find(|&k| k != o[0]).unwrap_or(Objective::ImagesPerSecond);
        self.plot_pareto_of(x, o[0])
    }

    /// The front of `y` against `x` (both as measured; the arrows of the axis labels say which way is
    /// better).
    pub fn plot_pareto_of(&self, x: Objective, y: Objective) -> Result<Figure> {
        self.require_rows()?;
        let trials = self.trials();
        let pts: Vec<(f64, f64, usize)> = trials
            .iter()
            .map(|t| (t.value(x), t.value(y), t.row))
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if pts.is_empty() {
            return Err(Error::DataConfig {
                path: self.path.clone(),
                message: format!("no row has both {x} and {y} measured (generations.csv)"),
            });
        }
        let front = self.front(&[x, y]);
        let on_front: std::collections::BTreeSet<usize> = front.iter().map(|t| t.row).collect();
        let knee = self.knee(&[y, x]);
        // the staircase: sorted by x, each step holds the last front point's y until the next point
        let mut stairs: Vec<(f64, f64)> = front.iter().map(|t| (t.value(x), t.value(y))).collect();
        stairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut steps = Vec::new();
        for (i, &(px, py)) in stairs.iter().enumerate() {
            if i > 0 {
                let prev = stairs[i - 1].1;
                // what is attainable between two front points: with less x better, the previous point's y
                // until x reaches this point; with more x better, this point's y from the previous x on
                let hold = if x.maximise() { py } else { prev };
                steps.push((px, hold));
            }
            steps.push((px, py));
        }
        let arrow =
            |o: Objective| format!("{} ({} is better)", o.label(), if o.maximise() { "higher" } else { "lower" });
        let title = format!("Pareto front: {} against {}", y.column(), x.column());
        let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
        let (xr, yr) = (range(&xs), range(&ys));
        render(900, 560, &title, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&title, ("sans-serif", 20))
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(70)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(arrow(x))
                .y_desc(arrow(y))
                .label_style(("sans-serif", 12))
                .x_label_formatter(&|v| fmt_g(*v, 3))
                .y_label_formatter(&|v| fmt_g(*v, 3))
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| !on_front.contains(&p.2))
                        .map(|p| Circle::new((p.0, p.1), 4, RGBColor(150, 150, 150).mix(0.45).filled())),
                )
                .map_err(plot_err)?
                .label("dominated")
                .legend(|(a, b)| Circle::new((a, b), 4, RGBColor(150, 150, 150).filled()));
            chart.draw_series(LineSeries::new(steps.clone(), BLUE.mix(0.6).stroke_width(2))).map_err(plot_err)?;
            chart
                .draw_series(stairs.iter().map(|&(a, b)| Circle::new((a, b), 5, BLUE.filled())))
                .map_err(plot_err)?
                .label(format!("Pareto front ({} candidates)", stairs.len()))
                .legend(|(a, b)| Circle::new((a, b), 5, BLUE.filled()));
            if let Some(k) = knee {
                let (kx, ky) = (k.value(x), k.value(y));
                chart
                    .draw_series([Circle::new((kx, ky), 9, RED.stroke_width(3))])
                    .map_err(plot_err)?
                    .label(format!("knee: row {}", k.row))
                    .legend(|(a, b)| Circle::new((a, b), 6, RED.stroke_width(2)));
            }
            let all = [(String::new(), pts.iter().map(|p| (p.0, p.1)).collect())];
            draw_legend(&mut chart, emptiest_corner(&all, xr, yr))
        })
    }
}
