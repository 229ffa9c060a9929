//! The results table: one row per (set, method), as markdown for people and CSV for scripts.

/// The mean scores of one method on one set. A metric that does not apply (PSNR/SSIM without ground truth,
/// speed a tool did not record) is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub set: String,
    pub method: String,
    pub psnr_y: Option<f64>,
    pub ssim_y: Option<f64>,
    pub niqe: Option<f64>,
    pub seconds_per_image: Option<f64>,
    /// Images scored.
    pub images: usize,
    /// Images of the set this method failed on (unreadable, missing output, metric error).
    pub failed: usize,
}

const HEADER: [&str; 8] = ["set", "method", "PSNR-Y", "SSIM-Y", "NIQE", "sec/img", "images", "failed"];

impl Row {
    /// The cells in [`HEADER`] order; absent values are empty. `extra_digits` is added to every score's
    /// usual precision: scripts comparing two close methods need more than a reader of the table does.
    fn cells(&self, extra_digits: usize) -> [String; 8] {
        let fixed = |value: Option<f64>, digits: usize| {
            let digits = digits + extra_digits;
            value.map(|v| format!("{v:.digits$}")).unwrap_or_default()
        };
        [
            self.set.clone(),
            self.method.clone(),
            fixed(self.psnr_y, 2),
            fixed(self.ssim_y, 4),
            fixed(self.niqe, 3),
            fixed(self.seconds_per_image, 3),
            self.images.to_string(),
            self.failed.to_string(),
        ]
    }
}

/// A GitHub-flavoured markdown table (absent values shown as `–`).
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    for row in rows {
        let cells = row.cells(0).map(|c| if c.is_empty() { "–".to_owned() } else { c });
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// CSV with a header line, scores one digit finer than the markdown table; absent values are empty fields.
/// Set and method names are quoted when they contain a comma or a quote.
pub fn csv(rows: &[Row]) -> String {
    let quote = |cell: String| {
        if cell.contains([',', '"', '\n']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell
        }
    };
    let mut out = HEADER.join(",") + "\n";
    for row in rows {
        out.push_str(&row.cells(1).map(quote).join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        vec![
            Row {
                set: "Set5".into(),
                method: "bicubic".into(),
                psnr_y: Some(28.4213),
                ssim_y: Some(0.81049),
                niqe: Some(7.1234),
                seconds_per_image: Some(0.0123),
                images: 5,
                failed: 0,
            },
            Row {
                set: "RealSet65".into(),
                method: "real,esrgan".into(),
                psnr_y: None,
                ssim_y: None,
                niqe: Some(4.5),
                seconds_per_image: None,
                images: 64,
                failed: 1,
            },
        ]
    }

    #[test]
    fn markdown_rounds_and_marks_absent_values() {
        let expected = "| set | method | PSNR-Y | SSIM-Y | NIQE | sec/img | images | failed |\n\
                        |---|---|---|---|---|---|---|---|\n\
                        | Set5 | bicubic | 28.42 | 0.8105 | 7.123 | 0.012 | 5 | 0 |\n\
                        | RealSet65 | real,esrgan | – | – | 4.500 | – | 64 | 1 |\n";
        assert_eq!(markdown(&rows()), expected);
    }

    #[test]
    fn csv_keeps_a_finer_digit_leaves_absent_values_empty_and_quotes_commas() {
        let expected = "set,method,PSNR-Y,SSIM-Y,NIQE,sec/img,images,failed\n\
                        Set5,bicubic,28.421,0.81049,7.1234,0.0123,5,0\n\
                        RealSet65,\"real,esrgan\",,,4.5000,,64,1\n";
        assert_eq!(csv(&rows()), expected);
    }
}
