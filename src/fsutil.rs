//! File helpers shared by every writer of results: atomic replacement and the cache folder.

use crate::error::{IoContext, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replace `path` with `bytes` atomically: write a temporary file beside it, flush it to disk, rename it over
/// the target. A crash leaves either the old or the new file, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", unique_suffix()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.at(path)
}

/// A suffix unique within this machine for temporary names: process id, thread id and a counter.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// The folder where yolo-lab keeps generated data sets and other caches: `$YOLO_LAB_CACHE`, else
/// `$XDG_CACHE_HOME/yolo-lab`, else `~/.cache/yolo-lab`, else `./.cache/yolo-lab`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("YOLO_LAB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("yolo-lab");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(home).join(".cache").join("yolo-lab");
    }
    PathBuf::from(".cache").join("yolo-lab")
}

/// Format a float the way Python's `repr` does (shortest round-trip digits; scientific notation below 1e-4
/// and from 1e16 on, with a two-digit exponent), which is what YOLOv5's YAML files contain.
/// `pyyaml` then adds `.0` to a mantissa without a point: see [`yaml_float`].
pub fn python_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{x:e}"); // shortest round-trip digits, e.g. "-1.2345e-5"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// A float as PyYAML's `safe_dump` writes it: Python's repr, with `.0` inserted before the exponent when
/// the mantissa has no point (`1e-05` becomes `1.0e-05`).
pub fn yaml_float(x: f64) -> String {
    let r = python_repr(x);
    match r.split_once('e') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
        _ => r,
    }
}

/// printf's `%.{prec}g` as Python formats it: `prec` significant digits, fixed notation when the exponent is
/// in [-4, prec), scientific otherwise (two-digit exponent), trailing zeros removed. YOLOv5's CSV files use
/// `%20.5g`: see [`fmt_g_width`].
pub fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let p = prec.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:.*e}", p - 1, x);
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let strip = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if exp >= -4 && exp < p as i32 {
        strip(&format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, x))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mant), exp.abs())
    }
}

/// `%{width}.{prec}g`: [`fmt_g`] right-aligned in `width` characters.
pub fn fmt_g_width(x: f64, width: usize, prec: usize) -> String {
    format!("{:>width$}", fmt_g(x, prec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_g_matches_python() {
        for (x, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.1081123, "0.10811"),
            (0.037399, "0.037399"),
            (0.00073451, "0.00073451"),
            (0.0000123456, "1.2346e-05"),
            (123456.0, "1.2346e+05"),
            (12345.0, "12345"),
            (29.0, "29"),
            (0.0865, "0.0865"),
            (-0.5, "-0.5"),
            (3.0, "3"),
            (1e-4, "0.0001"),
        ] {
            assert_eq!(fmt_g(x, 5), want, "{x}");
        }
        assert_eq!(fmt_g_width(0.1, 20, 5), "                 0.1");
    }

    #[test]
    fn python_repr_matches_python() {
        for (x, want) in [
            (0.01, "0.01"),
            (3.0, "3.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (0.937, "0.937"),
            (1e16, "1e+16"),
            (123456.0, "123456.0"),
            (-0.5, "-0.5"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_repr(x), want, "{x}");
        }
        assert_eq!(yaml_float(1e-5), "1.0e-05");
        assert_eq!(yaml_float(1.5e-5), "1.5e-05");
        assert_eq!(yaml_float(0.2), "0.2");
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
