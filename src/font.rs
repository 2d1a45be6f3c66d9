//! The one font of the crate (DejaVu Sans, bundled in assets/, so nothing depends on system fonts) and a
//! glyph rasteriser that places each glyph at its true position (kerning, sub-pixel pen, bearing). Figures
//! ([`crate::plots`]) and labels drawn on images ([`crate::data::draw_label`]) share it.

use ab_glyph::{Font, FontRef, ScaleFont, point};
use std::sync::OnceLock;

/// The bundled TrueType font.
pub(crate) static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The font, parsed once.
pub(crate) fn font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    PARSED.get_or_init(|| FontRef::try_from_slice(FONT).expect("the bundled DejaVu Sans parses"))
}

/// Coverage of every pixel of `text` at `size` px, relative to the text's origin; the baseline sits at
/// `size / 2` below the origin, as plotters puts it.
pub(crate) fn rasterise(text: &str, size: f32, mut put: impl FnMut(i32, i32, f32)) {
    let f = font().as_scaled(size);
    let mut pen = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            pen += f.kern(p, id);
        }
        prev = Some(id);
        if let Some(outline) = f.outline_glyph(id.with_scale_and_position(size, point(pen, size / 2.0))) {
            let b = outline.px_bounds();
            let (x0, y0) = (b.min.x as i32, b.min.y as i32);
            outline.draw(|x, y, a| put(x0 + x as i32, y0 + y as i32, a));
        }
        pen += f.h_advance(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leftmost inked column of each glyph of `text`, drawn as one string.
    fn ink_columns(text: &str, size: f32) -> Vec<i32> {
        let mut cols = Vec::new();
        rasterise(text, size, |x, _, a| {
            if a > 0.5 {
                cols.push(x)
            }
        });
        cols
    }

    #[test]
    fn glyphs_keep_their_bearings() {
        // DejaVu's 'j' reaches left of its pen position (negative left bearing); plotters' own text drawing
        // starts every glyph's ink at the pen, which opens a gap before it. Here the ink of 'j' after 'H' must
        // start at H's advance plus j's (negative) bearing, as a text engine places it.
        let size = 40.0;
        let f = font().as_scaled(size);
        let h_adv = f.h_advance(f.glyph_id('H'));
        let j_left = ink_columns("j", size).into_iter().min().unwrap();
        assert!(j_left < 0, "j alone starts left of the pen ({j_left})");
        let h_right = ink_columns("H", size).into_iter().max().unwrap();
        let j_in_text = ink_columns("Hj", size).into_iter().filter(|&x| x > h_right).min().unwrap();
        let expected = h_adv + j_left as f32;
        assert!((j_in_text as f32 - expected).abs() <= 1.5, "j starts at {j_in_text}, expected about {expected}");
    }
}
