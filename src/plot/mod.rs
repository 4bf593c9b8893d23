//! Figures drawn with plotters, as SVG or PNG (chosen by the output file's extension).
//!
//! * [`phase_diagram`] — mean pruned fraction over (γ, β), a heatmap with a colour bar;
//! * [`sparsity`] — predicted (q < 0, iterated elimination) versus observed pruned fraction;
//! * [`convergence`] — solver residual per iteration, log scale;
//! * [`trajectories`] — participation of each unit over training steps;
//! * [`frontier`] — accuracy versus kept fraction per pruning method, with ±1 sd bars.
//!
//! Text is rendered with `ab_glyph` from a TrueType font read at run time (no system
//! fontconfig): `PRUNING_GAME_FONT` if set, else DejaVu Sans from Debian's
//! `fonts-dejavu-core`. A missing font is an [`Error::Plot`] that says how to fix it.

mod data;
mod figures;

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

pub use data::{
    read_frontier, read_trace, read_trajectories, FrontierPoint, Trace, TrajectoryPoint,
};
pub use figures::{convergence, frontier, phase_diagram, sparsity, trajectories};

use crate::error::{Error, Result};

/// Where the font is looked for when `PRUNING_GAME_FONT` is not set.
pub const DEFAULT_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Figure size in pixels (PNG) or user units (SVG).
pub const SIZE: (u32, u32) = (960, 640);

/// Loads and registers the font once per process.
fn ensure_font() -> std::result::Result<(), String> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var("PRUNING_GAME_FONT") {
            Ok(p) => vec![p],
            Err(_) => DEFAULT_FONTS.iter().map(|s| s.to_string()).collect(),
        };
        let (path, bytes) = candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok().map(|b| (p.clone(), b)))
            .ok_or_else(|| {
                format!(
                    "no font found at {}; install Debian's fonts-dejavu-core or set \
                     PRUNING_GAME_FONT to a .ttf file",
                    candidates.join(", ")
                )
            })?;
        // plotters keeps fonts for the whole process; leaking one file once is that.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable TrueType font"))
    })
    .clone()
}

/// Something drawable on any plotters backend.
pub(crate) trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

/// The image format of an output path, from its extension (`svg` or `png`), or why not.
/// `plot` calls it before reading any input, so a bad `--out` writes nothing.
pub fn output_format(out: &Path) -> Result<&'static str> {
    match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => Ok("svg"),
        Some("png") => Ok("png"),
        _ => Err(Error::Plot {
            path: out.into(),
            reason: "the output must end in .svg or .png".into(),
        }),
    }
}

/// Draws `figure` into `out` (`.svg` or `.png`). The image is drawn into a temporary file
/// beside `out` and renamed over it, so an interrupted or failed drawing leaves no
/// half-written figure (and the previous one, if any, intact).
pub(crate) fn render(figure: &impl Figure, out: &Path) -> Result<()> {
    let fail = |reason: String| Error::Plot {
        path: out.into(),
        reason,
    };
    let format = output_format(out)?;
    ensure_font().map_err(fail)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let name = out
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    // The temporary keeps the extension: the bitmap backend picks its encoder from it.
    let tmp = out.with_file_name(format!(".{name}.{}.tmp.{format}", std::process::id()));
    let drawn = match format {
        "svg" => {
            let root = SVGBackend::new(&tmp, SIZE).into_drawing_area();
            figure
                .draw(&root)
                .and_then(|()| root.present().map_err(|e| e.to_string()))
        }
        _ => {
            let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            figure
                .draw(&root)
                .and_then(|()| root.present().map_err(|e| e.to_string()))
        }
    };
    let result = drawn
        .map_err(fail)
        .and_then(|()| std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `Result<T, E: Display>` → `Result<T, String>`, so drawing code can use `?` on every
/// backend's error type.
pub(crate) trait Describe<T> {
    fn d(self) -> std::result::Result<T, String>;
}

impl<T, E: std::fmt::Display> Describe<T> for std::result::Result<T, E> {
    fn d(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}
