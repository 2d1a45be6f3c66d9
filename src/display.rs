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
