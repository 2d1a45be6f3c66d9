//! Rich output for evcxr notebooks: results are plain structs elsewhere; this module turns them into HTML
//! tables and PNG blocks in evcxr's `EVCXR_BEGIN_CONTENT <mime>` protocol (shared spec rust_libraries.md §1.1).

use std::io::Write;

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Standard base64 (RFC 4648, with padding), for PNGs inside HTML and evcxr blocks.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// An HTML table with a header row; cells are escaped.
pub fn html_table(caption: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut h = String::from("<table style=\"border-collapse:collapse;font-family:monospace;font-size:12px\">");
    if !caption.is_empty() {
        h.push_str(&format!("<caption style=\"text-align:left;font-weight:bold\">{}</caption>", escape(caption)));
    }
    h.push_str("<thead><tr>");
    for c in headers {
        h.push_str(&format!(
            "<th style=\"text-align:right;padding:2px 8px;border-bottom:1px solid #999\">{}</th>",
            escape(c)
        ));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        h.push_str("<tr>");
        for c in r {
            h.push_str(&format!("<td style=\"text-align:right;padding:2px 8px\">{}</td>", escape(c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    h
}

/// The evcxr block of one MIME type.
pub fn block(mime: &str, content: &str) -> String {
    format!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT\n")
}

/// Print a bundle of alternatives (e.g. text/plain and text/html) in one locked write, so nothing interleaves.
pub fn emit(parts: &[(&str, &str)]) {
    let text: String = parts.iter().map(|(m, c)| block(m, c)).collect();
    let out = std::io::stdout();
    let mut lock = out.lock();
    let _ = lock.write_all(text.as_bytes());
    let _ = lock.flush();
}

impl crate::model::ModelSummary {
    /// The per-module table and the summary line as HTML.
    pub fn to_html(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let from = if r.from.len() == 1 { r.from[0].to_string() } else { format!("{:?}", r.from) };
                vec![
                    r.index.to_string(),
                    from,
                    r.n.to_string(),
                    crate::model::thousands(r.params),
                    r.module.clone(),
                    r.arguments.clone(),
                ]
            })
            .collect();
        let line = self.to_string().lines().last().unwrap_or_default().to_string();
        html_table(&line, &["", "from", "n", "params", "module", "arguments"], &rows)
    }

    /// evcxr: an HTML table with the summary line as plain-text fallback.
    pub fn evcxr_display(&self) {
        let line = self.to_string().lines().last().unwrap_or_default().to_string();
        emit(&[("text/plain", &line), ("text/html", &self.to_html())]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_tables() {
        assert_eq!(block("text/plain", "hi"), "EVCXR_BEGIN_CONTENT text/plain\nhi\nEVCXR_END_CONTENT\n");
        let t = html_table("cap", &["a", "b"], &[vec!["1".into(), "<2>".into()]]);
        assert!(t.contains("<caption style=\"text-align:left;font-weight:bold\">cap</caption>"));
        assert!(t.contains("&lt;2&gt;"));
        assert_eq!(t.matches("<td").count(), 2);
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(base64(b""), "");
    }
}

/// A polars DataFrame as an HTML table (every cell formatted by polars' own value display).
pub fn df_to_html(df: &polars::prelude::DataFrame, caption: &str) -> String {
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    let head: Vec<&str> = names.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| match c.get(i) {
                    Ok(polars::prelude::AnyValue::Float64(v)) => crate::fsutil::fmt_g(v, 5),
                    Ok(polars::prelude::AnyValue::String(s)) => s.to_string(),
                    Ok(v) => v.to_string(),
                    Err(_) => String::new(),
                })
                .collect()
        })
        .collect();
    html_table(caption, &head, &rows)
}

/// Wrap a DataFrame to show it as an HTML table in a notebook: `Table(df)` as a cell's last expression.
#[derive(Debug, Clone)]
pub struct Table(pub polars::prelude::DataFrame);

impl Table {
    /// evcxr: HTML table with the plain polars rendering as fallback.
    pub fn evcxr_display(&self) {
        emit(&[("text/plain", &self.0.to_string()), ("text/html", &df_to_html(&self.0, ""))]);
    }
}

impl crate::train::TrainRun {
    /// Per-epoch metrics as an HTML table with the run summary as caption.
    pub fn to_html(&self) -> String {
        let head = ["epoch", "box", "obj", "cls", "P", "R", "mAP@0.5", "mAP@0.5:0.95", "val box", "val obj", "val cls"];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.values()[..11]
                    .iter()
                    .enumerate()
                    .map(|(k, v)| if k == 0 { format!("{v}") } else { crate::fsutil::fmt_g(*v, 4) })
                    .collect()
            })
            .collect();
        let s = self.telemetry.summary();
        let tele = if s.peak_gpu_mem_pct.is_finite() {
            format!(
                "GPU memory peak {:.1}% (mean {:.1}%), utilisation mean {:.1}%",
                s.peak_gpu_mem_pct, s.mean_gpu_mem_pct, s.mean_gpu_util_pct
            )
        } else {
            format!("no NVML: process RSS peak {:.0} MiB, CPU mean {:.0}%", s.peak_rss_mib, s.mean_cpu_pct)
        };
        let caption = format!(
            "{} — {} epochs, {:.1} s, {:.1} images/s, {} trainable parameters; {tele}",
            self.dir.display(),
            self.rows.len(),
            self.seconds,
            self.images_per_second,
            crate::model::thousands(self.parameters.0 - self.parameters.1)
        );
        html_table(&caption, &head, &rows)
    }

    /// evcxr: the metrics table.
    pub fn evcxr_display(&self) {
        emit(&[("text/plain", &self.to_string()), ("text/html", &self.to_html())]);
    }
}

impl crate::results::EvolveResults {
    /// evcxr: the five best rows and the fitness history.
    pub fn evcxr_display(&self) {
        let mut html = match self.top(5) {
            Ok(df) => {
                df_to_html(&df, &format!("{}: {} rows, best row {}", self.path.display(), self.len(), self.best_row()))
            }
            Err(e) => escape(&e.to_string()),
        };
        if let Ok(f) = self.plot_fitness_history() {
            html.push_str(&f.to_html());
        }
        emit(&[("text/plain", &format!("{} rows, best row {}", self.len(), self.best_row())), ("text/html", &html)]);
    }
}

impl crate::gpu::TelemetryLog {
    /// evcxr: peak and mean figures as a table.
    pub fn evcxr_display(&self) {
        let s = self.summary();
        let f = |v: f64| if v.is_finite() { format!("{v:.1}") } else { "n/a".into() };
        let rows = vec![vec![
            self.source.to_string(),
            self.samples.len().to_string(),
            f(s.peak_gpu_mem_pct),
            f(s.mean_gpu_mem_pct),
            f(s.mean_gpu_util_pct),
            f(s.peak_rss_mib),
            f(s.mean_cpu_pct),
        ]];
        let head =
            ["source", "samples", "peak GPU mem %", "mean GPU mem %", "mean GPU util %", "peak RSS MiB", "mean CPU %"];
        emit(&[("text/plain", &format!("{:?}", s)), ("text/html", &html_table("telemetry", &head, &rows))]);
    }
}
