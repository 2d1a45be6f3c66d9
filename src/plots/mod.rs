//! Figures as PNG, drawn with plotters and a font bundled in the crate (DejaVu Sans, assets/), so nothing
//! depends on system fonts: `plot_evolve` as YOLOv5 draws it (`utils/plots.py::plot_evolve`), the fitness
//! history, parallel coordinates of the best rows, importance bars and `plot_results` for results.csv.

use crate::error::{Error, Result};
use crate::fsutil::fmt_g;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use std::path::Path;

mod canvas;
mod compare;
mod evolve;
mod pareto;
mod val;
use canvas::Canvas;
pub use evolve::hist2d_log_density;
pub use val::{plot_confusion_matrix, plot_pr_curve};

static FONT_ONCE: std::sync::Once = std::sync::Once::new();

fn ensure_font() {
    FONT_ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, crate::font::FONT);
    });
}

/// A rendered figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// A one-line description (text/plain fallback).
    pub title: String,
}

impl Figure {
    /// Write the PNG (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsutil::write_atomic(path.as_ref(), &self.png)
    }

    /// An `<img>` tag with the PNG inlined (to put several figures in one notebook cell).
    pub fn to_html(&self) -> String {
        format!("<img src=\"data:image/png;base64,{}\" style=\"max-width:100%\"/>", crate::display::base64(&self.png))
    }

    /// evcxr: show inline as image/png.
    pub fn evcxr_display(&self) {
        crate::display::emit(&[("text/plain", &self.title), ("image/png", &crate::display::base64(&self.png))]);
    }
}

/// A drawing error; [`render`] names the figure.
fn plot_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Plot { figure: String::new(), message: e.to_string() }
}

/// Draw into an RGB buffer with `f`, then encode PNG.
fn render(
    width: u32,
    height: u32,
    title: &str,
    f: impl FnOnce(&DrawingArea<Canvas<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<Figure> {
    ensure_font();
    let named = |e: Error| match e {
        Error::Plot { figure, message } if figure.is_empty() => Error::Plot { figure: title.into(), message },
        other => other,
    };
    let mut buf = vec![255u8; (width * height * 3) as usize];
    {
        let root = Canvas(BitMapBackend::with_buffer(&mut buf, (width, height))).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err).map_err(named)?;
        f(&root).map_err(named)?;
        root.present().map_err(plot_err).map_err(named)?;
    }
    let img = image::RgbImage::from_raw(width, height, buf).ok_or_else(|| named(plot_err("buffer size")))?;
    Ok(Figure { png: crate::data::png_bytes(&img), width, height, title: title.into() })
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().cloned().filter(|x| x.is_finite()).fold(f64::MAX, f64::min);
    let hi = v.iter().cloned().filter(|x| x.is_finite()).fold(f64::MIN, f64::max);
    if lo > hi {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A running best drawn as a step: flat until the generation that improves it, then straight up.
fn step_points(best: &[f64]) -> Vec<(f64, f64)> {
    let mut pts = Vec::with_capacity(2 * best.len());
    for (i, &v) in best.iter().enumerate() {
        if i > 0 {
            pts.push((i as f64, best[i - 1]));
        }
        pts.push((i as f64, v));
    }
    pts
}

/// The legend of every chart: framed, on a light background, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(plot_err)
}

/// A vertical viridis colour bar filling `area`: `low` at the bottom, `high` at the top, `what` along it.
fn colour_bar(area: &DrawingArea<Canvas<'_>, plotters::coord::Shift>, what: &str, low: &str, high: &str) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (x0, x1) = (10i32, 28i32);
    let (y0, y1) = (60i32, h as i32 - 60);
    let steps = 64;
    for k in 0..steps {
        let t = k as f64 / (steps - 1) as f64;
        let ya = y1 - ((y1 - y0) as f64 * (k + 1) as f64 / steps as f64) as i32;
        let yb = y1 - ((y1 - y0) as f64 * k as f64 / steps as f64) as i32;
        area.draw(&Rectangle::new([(x0, ya), (x1, yb)], ViridisRGB::get_color(t).filled())).map_err(plot_err)?;
    }
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(1))).map_err(plot_err)?;
    let font = ("sans-serif", 11).into_font().color(&BLACK);
    area.draw(&Text::new(high.to_string(), (x0, y0 - 16), font.clone())).map_err(plot_err)?;
    area.draw(&Text::new(low.to_string(), (x0, y1 + 4), font.clone())).map_err(plot_err)?;
    let side = ("sans-serif", 12).into_font().transform(FontTransform::Rotate90).color(&BLACK);
    area.draw(&Text::new(what.to_string(), (w as i32 - 8, y0 + 10), side)).map_err(plot_err)?;
    Ok(())
}

/// 1-D Gaussian smoothing with reflected edges (scipy's `gaussian_filter1d` default mode), truncated at 4σ.
pub fn gaussian_smooth(y: &[f64], sigma: f64) -> Vec<f64> {
    let r = (4.0 * sigma).round() as isize;
    let w: Vec<f64> = (-r..=r).map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = w.iter().sum();
    let n = y.len() as isize;
    let at = |i: isize| -> f64 {
        let mut j = i;
        while j < 0 || j >= n {
            j = if j < 0 { -j - 1 } else { 2 * n - j - 1 };
        }
        y[j as usize]
    };
    (0..n).map(|i| (-r..=r).zip(&w).map(|(k, wk)| at(i + k) * wk).sum::<f64>() / s).collect()
}

/// YOLOv5's results.png from a results.csv: 2×5 panels (train box/obj/cls, P, R, val box/obj/cls, mAP@0.5,
/// mAP@0.5:0.95), each with the values and a smoothed dotted line.
pub fn plot_results(results_csv: impl AsRef<Path>) -> Result<Figure> {
    let path = results_csv.as_ref();
    let rows = crate::train::results::read(path)?;
    let order = [1usize, 2, 3, 4, 5, 8, 9, 10, 6, 7];
    let x: Vec<f64> = rows.iter().map(|r| r.epoch as f64).collect();
    let label = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    render(1200, 600, &format!("results of {}", path.display()), |root| {
        let panels = root.split_evenly((2, 5));
        for (p, &c) in order.iter().enumerate() {
            let y: Vec<f64> = rows.iter().map(|r| r.values()[c]).collect();
            let (xr, yr) = (range(&x), range(&y));
            let mut chart = ChartBuilder::on(&panels[p])
                .caption(crate::train::RESULTS_COLUMNS[c], ("sans-serif", 14))
                .margin(6)
                .x_label_area_size(20)
                .y_label_area_size(45)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .label_style(("sans-serif", 10))
                .y_label_formatter(&|v| fmt_g(*v, 3))
                .x_label_formatter(&|v| fmt_g(*v, 3))
                .draw()
                .map_err(plot_err)?;
            let s = chart
                .draw_series(
                    LineSeries::new(x.iter().cloned().zip(y.iter().cloned()), BLUE.stroke_width(2)).point_size(3),
                )
                .map_err(plot_err)?;
            if p == 0 {
                s.label(label.clone()).legend(|(a, b)| PathElement::new(vec![(a - 8, b), (a + 8, b)], BLUE));
            }
            if y.len() > 1 {
                let sm = gaussian_smooth(&y, 3.0);
                chart
                    .draw_series(
                        x.iter()
                            .cloned()
                            .zip(sm)
                            .enumerate()
                            .filter(|(i, _)| i % 2 == 0)
                            .map(|(_, pt)| Circle::new(pt, 1, RED.filled())),
                    )
                    .map_err(plot_err)?;
            }
            if p == 0 {
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 10))
                    .background_style(WHITE.mix(0.8))
                    .draw()
                    .map_err(plot_err)?;
            }
        }
        Ok(())
    })
}

/// Several figures in one HTML block (evcxr keeps one output per MIME type per cell).
pub fn figures_html(figs: &[&Figure]) -> String {
    figs.iter().map(|f| f.to_html()).collect::<Vec<_>>().join("<br/>")
}

/// evcxr: show several figures in one cell.
pub fn show_all(figs: &[&Figure]) {
    let titles: Vec<&str> = figs.iter().map(|f| f.title.as_str()).collect();
    crate::display::emit(&[("text/plain", &titles.join("\n")), ("text/html", &figures_html(figs))]);
}

/// Line chart of named series (shared by studies and schedules).
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<Figure> {
    let xs: Vec<f64> = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).collect();
    let ys: Vec<f64> = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).collect();
    let (xr, yr) = (range(&xs), range(&ys));
    const PALETTE: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    render(800, 420, title, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(("sans-serif", 12))
            .x_label_formatter(&|v| fmt_g(*v, 4))
            .y_label_formatter(&|v| fmt_g(*v, 3))
            .draw()
            .map_err(plot_err)?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().cloned(), c.stroke_width(2)).point_size(2))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], c.stroke_width(2)));
        }
        draw_legend(&mut chart, emptiest_corner(series, xr, yr))
    })
}

/// Where a legend covers the fewest points: the corner (a third of each axis) holding the fewest.
fn emptiest_corner(series: &[(String, Vec<(f64, f64)>)], xr: (f64, f64), yr: (f64, f64)) -> SeriesLabelPosition {
    let frac = |v: f64, r: (f64, f64)| (v - r.0) / (r.1 - r.0).max(1e-12);
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let count = |right: bool, upper: bool| {
        let side = |f: f64, high: bool| if high { f > 2.0 / 3.0 } else { f < 1.0 / 3.0 };
        series.iter().flat_map(|s| &s.1).filter(|p| side(frac(p.0, xr), right) && side(frac(p.1, yr), upper)).count()
    };
    corners.into_iter().min_by_key(|c| count(c.1, c.2)).map(|c| c.0).unwrap_or(SeriesLabelPosition::UpperRight)
}

/// Width in pixels of `text` at `size` in the bundled font.
fn text_width(text: &str, size: f32) -> i32 {
    let mut right = 0;
    crate::font::rasterise(text, size, |x, _, _| right = right.max(x + 1));
    right
}

/// `text` at the largest size from 15 down to 9 px that fits `width`, cut with "…" when even 9 px does not.
fn fit_caption(text: &str, width: i32) -> (String, f32) {
    for size in (9..=15).rev().map(|s| s as f32) {
        if text_width(text, size) <= width {
            return (text.to_string(), size);
        }
    }
    let mut cut: Vec<char> = text.chars().collect();
    while !cut.is_empty() {
        cut.pop();
        let t = format!("{}…", cut.iter().collect::<String>().trim_end());
        if text_width(&t, 9.0) <= width {
            return (t, 9.0);
        }
    }
    (String::new(), 9.0)
}

/// A grid of images with captions (augmentation previews, detections). Each caption is fitted to its tile
/// (smaller, then cut with "…"); when every image has the same caption it is drawn once, as a title.
pub fn image_grid(images: &[crate::data::Image], captions: &[String], cols: usize) -> Result<Figure> {
    if images.is_empty() {
        return Err(plot_err("no images"));
    }
    let cols = cols.max(1).min(images.len());
    let rows = images.len().div_ceil(cols);
    let (cw, ch) =
        (images.iter().map(|i| i.width()).max().unwrap_or(1), images.iter().map(|i| i.height()).max().unwrap_or(1));
    let cap = 22u32;
    let title = (captions.len() > 1 && captions.iter().all(|c| *c == captions[0])).then(|| captions[0].clone());
    let (tile_cap, top) = if title.is_some() { (0, cap) } else { (cap, 0) };
    let (w, h) = (cols as u32 * cw, top + rows as u32 * (ch + tile_cap));
    let mut canvas = crate::data::Image::from_pixel(w, h, image::Rgb([255, 255, 255]));
    for (k, img) in images.iter().enumerate() {
        let (x, y) = ((k % cols) as u32 * cw, top + (k / cols) as u32 * (ch + tile_cap) + tile_cap);
        image::imageops::replace(&mut canvas, img, x as i64, y as i64);
    }
    ensure_font();
    let mut buf = canvas.into_raw();
    {
        let root = Canvas(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        let put = |text: &str, x: i32, y: i32, width: i32| -> Result<()> {
            let (t, size) = fit_caption(text, width - 8);
            root.draw(&Text::new(t, (x + 4, y + 3), ("sans-serif", size as f64).into_font().color(&BLACK)))
                .map_err(plot_err)
        };
        match &title {
            Some(t) => put(t, 0, 0, w as i32)?,
            None => {
                for (k, c) in captions.iter().enumerate().take(images.len()) {
                    let (x, y) = ((k % cols) as i32 * cw as i32, (k / cols) as i32 * (ch + cap) as i32);
                    put(c, x, y, cw as i32)?;
                }
            }
        }
        root.present().map_err(plot_err)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| plot_err("buffer size"))?;
    Ok(Figure { png: crate::data::png_bytes(&img), width: w, height: h, title: format!("{} images", images.len()) })
}

/// Learning rates of the three groups and the momentum over the iterations of a run, as train.py schedules
/// them (warmup, then linear or cosine decay per epoch).
pub fn plot_schedule(hyp: &crate::hyp::Hyp, epochs: usize, batches_per_epoch: usize, cosine: bool) -> Result<Figure> {
    use crate::train::schedule::{lr_epoch, lr_factor, warmup_iters, warmup_lr, warmup_momentum};
    let nw = warmup_iters(hyp.warmup_epochs, batches_per_epoch);
    let total = epochs * batches_per_epoch;
    let mut s: Vec<(String, Vec<(f64, f64)>)> =
        ["lr bias (group 0)", "lr weights (group 1)", "lr BN weights (group 2)", "momentum × lr0"]
            .iter()
            .map(|n| (n.to_string(), vec![]))
            .collect();
    for ni in 0..total {
        let e = ni / batches_per_epoch;
        let lf = |e: usize| hyp.lr0 * lr_factor(e as f64, epochs, hyp.lrf, cosine);
        let x = ni as f64 / batches_per_epoch as f64;
        for (g, series) in s.iter_mut().take(3).enumerate() {
            let lr = if ni <= nw {
                warmup_lr(ni, nw, g, hyp.warmup_bias_lr, lf(e))
            } else {
                lf(lr_epoch(e, nw, batches_per_epoch))
            };
            series.1.push((x, lr));
        }
        let m = if ni <= nw { warmup_momentum(ni, nw, hyp.warmup_momentum, hyp.momentum) } else { hyp.momentum };
        s[3].1.push((x, m * hyp.lr0));
    }
    // groups 1 and 2 follow the same schedule (only the bias group warms up differently): one line, named so
    if s[1].1 == s[2].1 {
        s.remove(2);
        s[1].0 = "lr weights and BN weights (groups 1 and 2, the same)".into();
    }
    lines(&format!("learning rate schedule ({} warmup iterations)", nw), "epoch", "value", &s)
}

/// A grid of annotated images ([`crate::detect::detect_files`], [`crate::detect::Detector`]): boxes with
/// class names and confidences, each image captioned with what was found.
pub fn plot_detections(found: &[crate::detect::ImageDetections]) -> Result<Figure> {
    let images: Vec<crate::data::Image> = found.iter().map(|f| f.annotated()).collect();
    let captions: Vec<String> = found.iter().map(|f| f.summary()).collect();
    image_grid(&images, &captions, 4)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_running_best_is_a_step() {
        assert_eq!(super::step_points(&[0.1, 0.1, 0.3]), [(0.0, 0.1), (1.0, 0.1), (1.0, 0.1), (2.0, 0.1), (2.0, 0.3)]);
    }
}
