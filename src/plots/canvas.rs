//! The drawing backend of every figure: plotters' bitmap backend with its own text rendering.
//!
//! plotters 0.3.7 (the latest release) places each glyph of a text at the pen position without the glyph's
//! left side bearing, so letter spacing comes out uneven ("ob j_pw", "cop y_paste"). `Canvas` forwards every
//! drawing call to the bitmap backend except text, which it rasterises with ab_glyph at each glyph's true
//! position (kerning, sub-pixel pen, bearing), keeping plotters' anchors, rotations and vertical metrics so
//! layouts computed by plotters still fit.

use ab_glyph::{Font, FontRef, ScaleFont, point};
use plotters::prelude::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};
use std::sync::OnceLock;

/// An RGB buffer to draw on (see the module docs).
pub(crate) struct Canvas<'a>(pub BitMapBackend<'a>);

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(super::FONT).expect("the bundled DejaVu Sans parses"))
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

impl<'a> DrawingBackend for Canvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vertices, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        // the same box and anchoring plotters uses, so labels land where its layout expects them
        let ((min_x, min_y), (max_x, max_y)) =
            style.layout_box(text).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let mut result: Result<(), DrawingErrorKind<Self::ErrorType>> = Ok(());
        rasterise(text, style.size() as f32, |x, y, a| {
            if result.is_ok() && a > 0.0 {
                let (tx, ty) = transform.transform(x + dx - min_x, y + dy - min_y);
                let c = BackendColor { alpha: color.alpha * a as f64, rgb: color.rgb };
                result = self.0.draw_pixel((pos.0 + tx, pos.1 + ty), c);
            }
        });
        result
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
