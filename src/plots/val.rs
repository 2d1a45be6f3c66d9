//! The figures of a validation (`val.py --plots`): the confusion matrix and the precision-recall curve.

use super::{Figure, lines, plot_err, render};
use crate::error::Result;
use crate::metrics::{ApPerClass, ConfusionMatrix};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

/// The confusion matrix normalised per true class (columns sum to 1, as YOLOv5 draws it): rows are the
/// predicted class, columns the true one, the last of each the background; each cell carries its share.
pub fn plot_confusion_matrix(cm: &ConfusionMatrix, names: &[String]) -> Result<Figure> {
    let n = cm.nc + 1;
    let labels: Vec<String> = (0..cm.nc)
        .map(|i| names.get(i).cloned().unwrap_or_else(|| i.to_string()))
        .chain(std::iter::once("background".to_string()))
        .collect();
    let col_sums: Vec<f64> = (0..n).map(|j| cm.matrix.iter().map(|r| r[j] as f64).sum::<f64>()).collect();
    let share = |i: usize, j: usize| cm.matrix[i][j] as f64 / (col_sums[j] + 1e-9);
    let side = (160 + 48 * n as u32).clamp(420, 1400);
    let title = "Confusion Matrix";
    let label = move |v: &f64| labels.get(v.floor().max(0.0) as usize).cloned().unwrap_or_default();
    render(side + 80, side, title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..n as f64, n as f64..0.0)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("True")
            .y_desc("Predicted")
            .x_labels(n * 2 + 1)
            .y_labels(n * 2 + 1)
            .x_label_formatter(&|v| if v.fract() == 0.5 { label(v) } else { String::new() })
            .y_label_formatter(&|v| if v.fract() == 0.5 { label(v) } else { String::new() })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(plot_err)?;
        for i in 0..n {
            for j in 0..n {
                let v = share(i, j);
                let c = ViridisRGB::get_color(v.clamp(0.0, 1.0));
                let (x, y) = (j as f64, i as f64);
                chart.draw_series([Rectangle::new([(x, y), (x + 1.0, y + 1.0)], c.filled())]).map_err(plot_err)?;
                if n <= 30 && v > 0.0 {
                    let ink = if v > 0.5 { BLACK } else { WHITE };
                    let style = ("sans-serif", 11).into_font().color(&ink).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                    chart.draw_series([Text::new(format!("{v:.2}"), (x + 0.5, y + 0.5), style)]).map_err(plot_err)?;
                }
            }
        }
        Ok(())
    })
}

/// Precision against recall at IoU 0.5: one line per class with its AP@0.5, and the mean of all classes
/// with mAP@0.5 (`plot_pr_curve`).
pub fn plot_pr_curve(pc: &ApPerClass, names: &[String]) -> Result<Figure> {
    if pc.pr_curve.is_empty() {
        return Err(plot_err("no class has labels: there is no precision-recall curve"));
    }
    let points = pc.pr_curve[0].len();
    let recall = |k: usize| k as f64 / (points - 1).max(1) as f64;
    let ap50 = pc.ap50();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    if pc.classes.len() <= 20 {
        for (i, &c) in pc.classes.iter().enumerate() {
            let name = names.get(c).cloned().unwrap_or_else(|| c.to_string());
            let pts = pc.pr_curve[i].iter().enumerate().map(|(k, &p)| (recall(k), p)).collect();
            series.push((format!("{name} {:.3}", ap50[i]), pts));
        }
    }
    let mean: Vec<(f64, f64)> = (0..points)
        .map(|k| (recall(k), pc.pr_curve.iter().map(|c| c[k]).sum::<f64>() / pc.pr_curve.len() as f64))
        .collect();
    let map50 = ap50.iter().sum::<f64>() / ap50.len() as f64;
    series.push((format!("all classes {map50:.3} mAP@0.5"), mean));
    lines("Precision-Recall Curve", "Recall", "Precision", &series)
}
