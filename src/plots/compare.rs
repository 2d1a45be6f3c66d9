//! A seed comparison as a paired strip chart: each candidate's trainings as dots over its name, the trainings
//! of one seed joined across candidates (the pairing the difference is computed on), each mean as a bar.

use super::{Figure, plot_err, range, render};
use crate::compare::Comparison;
use crate::error::{Error, Result};
use crate::fsutil::fmt_g;
use plotters::prelude::*;

impl Comparison {
    /// Fitness of every training, candidate by candidate, the seeds joined.
    pub fn plot(&self) -> Result<Figure> {
        if self.trials.is_empty() {
            return Err(Error::Plot { figure: "seed comparison".into(), message: "no trainings".into() });
        }
        let k = self.labels.len();
        let ys: Vec<f64> = self.trials.iter().map(|t| t.fitness).collect();
        let yr = range(&ys);
        let x_of = |label: &str| self.labels.iter().position(|l| l == label).unwrap_or(0) as f64;
        let title = format!("Fitness over {} seeds, paired by seed", self.seeds.len());
        let width = (260 + 170 * k as u32).min(1100);
        let labels = self.labels.clone();
        render(width, 440, &title, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(&title, ("sans-serif", 18))
                .margin(15)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(-0.5..(k as f64 - 0.5), yr.0..yr.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(k)
                .x_label_formatter(&|v| {
                    let i = v.round();
                    if (v - i).abs() < 0.01 && i >= 0.0 {
                        labels.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .y_desc("fitness (higher is better)")
                .label_style(("sans-serif", 13))
                .y_label_formatter(&|v| fmt_g(*v, 3))
                .draw()
                .map_err(plot_err)?;
            for &seed in &self.seeds {
                let pts: Vec<(f64, f64)> =
                    self.trials.iter().filter(|t| t.seed == seed).map(|t| (x_of(&t.label), t.fitness)).collect();
                chart.draw_series(LineSeries::new(pts, RGBColor(150, 150, 150).mix(0.6))).map_err(plot_err)?;
            }
            chart
                .draw_series(
                    self.trials.iter().map(|t| Circle::new((x_of(&t.label), t.fitness), 5, BLUE.mix(0.7).filled())),
                )
                .map_err(plot_err)?;
            for (i, l) in self.labels.iter().enumerate() {
                if let Some(n) = self.noise(l) {
                    let x = i as f64;
                    chart
                        .draw_series([PathElement::new(
                            vec![(x - 0.25, n.mean), (x + 0.25, n.mean)],
                            RED.stroke_width(3),
                        )])
                        .map_err(plot_err)?;
                    chart
                        .draw_series([Text::new(
                            format!("mean {:.4}", n.mean),
                            (x + 0.27, n.mean),
                            ("sans-serif", 12).into_font().color(&RED),
                        )])
                        .map_err(plot_err)?;
                }
            }
            Ok(())
        })
    }
}
