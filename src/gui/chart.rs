//! Horizontal bar rows drawn with egui's painter: the top-k probabilities and the GPU time per
//! shader. A row is a name, a bar and a value; no plotting crate is needed for that.

use eframe::egui::ecolor::HsvaGamma;
use eframe::egui::{self, Align2, Color32, CornerRadius, FontId, Rect, Sense, Vec2, pos2};
use vit_hybrid::ops::ALL_KERNELS;
use vit_hybrid::profile::{self, DispatchTime, Row};

/// The colour of the probability bars.
pub const PROBABILITY: Color32 = Color32::from_rgb(0x4e, 0x9a, 0xe0);

/// Totals per kernel (conv2d, linear, ...), largest first.
pub fn per_kernel(times: &[DispatchTime]) -> Vec<Row> {
    profile::aggregate(times, |t| t.kernel.to_string())
}

/// A kernel's bar colour: hues a golden angle apart in the order of `ops::ALL_KERNELS`, so
/// that every kernel has its own colour and keeps it from one image to the next.
fn colour_of(kernel: &str) -> Color32 {
    let i = ALL_KERNELS
        .iter()
        .position(|k| k.name == kernel)
        .unwrap_or(ALL_KERNELS.len());
    let hue = (0.58 + i as f32 * 0.618_034).fract();
    HsvaGamma {
        h: hue,
        s: 0.6,
        v: 0.8,
        a: 1.0,
    }
    .into()
}

/// Rows of horizontal bars: a name column, a bar, and the bar's value after it.
pub struct Bars {
    pub name_width: f32,
    pub value_width: f32,
}

impl Bars {
    /// One row whose bar fills `fraction` of the track.
    pub fn row(
        &self,
        ui: &mut egui::Ui,
        name: &str,
        fraction: f64,
        value: &str,
        colour: Color32,
    ) -> egui::Response {
        let font = FontId::proportional(15.0);
        let height = 24.0;
        let (rect, response) =
            ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
        let text = ui.visuals().text_color();
        let mid = rect.center().y;
        // Long labels are cut at the bar rather than drawn over it.
        let name_clip = Rect::from_min_size(rect.min, Vec2::new(self.name_width - 8.0, height));
        ui.painter_at(name_clip).text(
            pos2(rect.left(), mid),
            Align2::LEFT_CENTER,
            name,
            font.clone(),
            text,
        );
        let painter = ui.painter_at(rect);
        let track_width = (rect.width() - self.name_width - self.value_width).max(10.0);
        let track = Rect::from_min_size(
            pos2(rect.left() + self.name_width, rect.top() + 4.0),
            Vec2::new(track_width, height - 8.0),
        );
        painter.rect_filled(track, CornerRadius::same(3), ui.visuals().faint_bg_color);
        let filled = Rect::from_min_size(
            track.min,
            Vec2::new(
                track_width * fraction.clamp(0.0, 1.0) as f32,
                track.height(),
            ),
        );
        painter.rect_filled(filled, CornerRadius::same(3), colour);
        painter.text(
            pos2(rect.right(), mid),
            Align2::RIGHT_CENTER,
            value,
            font,
            text,
        );
        response
    }
}

/// The shader chart: one bar per kernel, scaled to the slowest, with its time and share.
pub fn kernel_bars(ui: &mut egui::Ui, kernels: &[Row]) {
    let total: f64 = kernels.iter().map(|k| k.seconds).sum();
    let slowest = kernels.first().map_or(0.0, |k| k.seconds);
    for k in kernels {
        let share = if total > 0.0 { k.seconds / total } else { 0.0 };
        let fraction = if slowest > 0.0 {
            k.seconds / slowest
        } else {
            0.0
        };
        let value = format!("{}   {:.0}%", format_seconds(k.seconds), share * 100.0);
        let per_second = |x: f64| if k.seconds > 0.0 { x / k.seconds } else { 0.0 };
        let bars = Bars {
            name_width: 110.0,
            value_width: 118.0,
        };
        bars.row(ui, &k.key, fraction, &value, colour_of(&k.key))
            .on_hover_text(format!(
                "{}: {} dispatches, {:.1} GFLOP/s, {:.1} GB/s",
                k.key,
                k.dispatches,
                per_second(k.flops) / 1e9,
                per_second(k.bytes) / 1e9,
            ));
    }
}

/// `0.42 ms`, `12.3 ms`, `1.25 s`.
pub fn format_seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.01 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}
