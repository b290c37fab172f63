//! A ticket as a QR code in the terminal, for a phone camera or another
//! laptop's webcam (`invite --qr`, `ticket --qr`).
//!
//! Two modules per character cell (upper and lower half blocks), light
//! modules drawn and dark ones left blank, which reads right on the dark
//! background of most terminals, with the standard quiet zone around it.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// `text` as a QR code, one line per two rows of modules.
pub fn render(text: &str) -> anyhow::Result<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)?;
    let image = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    Ok(image + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The modules drawn, read back from the characters: `true` is dark.
    fn modules(image: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in image.lines() {
            let (mut upper, mut lower) = (Vec::new(), Vec::new());
            for c in line.chars() {
                // A drawn half is a light module.
                let (u, l) = match c {
                    '█' => (false, false),
                    '▀' => (false, true),
                    '▄' => (true, false),
                    ' ' => (true, true),
                    other => panic!("unexpected {other:?}"),
                };
                upper.push(u);
                lower.push(l);
            }
            rows.push(upper);
            rows.push(lower);
        }
        rows
    }

    #[test]
    fn the_drawing_holds_exactly_the_modules_of_the_code() {
        let ticket = "cvinv1qqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0jqgpzf";
        let image = render(ticket).unwrap_or_else(|e| panic!("{e}"));
        let code = QrCode::with_error_correction_level(ticket.as_bytes(), EcLevel::L)
            .unwrap_or_else(|e| panic!("{e}"));
        let width = code.width();
        let colors = code.to_colors();
        let drawn = modules(&image);
        // Four modules of quiet zone on every side.
        for y in 0..width {
            for x in 0..width {
                let dark = colors[y * width + x] == qrcode::Color::Dark;
                assert_eq!(drawn[y + 4][x + 4], dark, "module ({x}, {y})");
            }
        }
        assert!(drawn[0].iter().all(|dark| !dark), "no quiet zone on top");
    }
}
