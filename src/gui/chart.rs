//! Horizontal bar rows drawn with egui's painter: the top-k probabilities and the GPU time per
//! shader. A row is a name, a bar and a value; no plotting crate is needed for that.

use eframe::egui::{self, Align2, Color32, CornerRadius, FontId, Rect, Sense, Vec2, pos2};
use vit_hybrid::profile::{self, DispatchTime};

/// Colours for the shader bars; a kernel keeps its colour from one image to the next.
const PALETTE: [Color32; 8] = [
    Color32::from_rgb(0x4e, 0x79, 0xa7),
    Color32::from_rgb(0xf2, 0x8e, 0x2b),
    Color32::from_rgb(0x59, 0xa1, 0x4f),
    Color32::from_rgb(0xe1, 0x57, 0x59),
    Color32::from_rgb(0x76, 0xb7, 0xb2),
    Color32::from_rgb(0xed, 0xc9, 0x48),
    Color32::from_rgb(0xb0, 0x7a, 0xa1),
    Color32::from_rgb(0x9c, 0x75, 0x5f),
];

/// The colour of the probability bars.
pub const PROBABILITY: Color32 = Color32::from_rgb(0x4e, 0x9a, 0xe0);

/// One kernel's share of a forward pass.
pub struct KernelTime {
    pub kernel: String,
    pub seconds: f64,
    pub flops: f64,
    pub dispatches: usize,
}

/// Totals per kernel (conv2d, linear, ...), largest first.
pub fn per_kernel(times: &[DispatchTime]) -> Vec<KernelTime> {
    profile::aggregate(times, |t| t.kernel.to_string())
        .into_iter()
        .map(|(kernel, seconds, flops, dispatches)| KernelTime {
            kernel,
            seconds,
            flops,
            dispatches,
        })
        .collect()
}

fn colour_of(name: &str) -> Color32 {
    let h = name
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
    PALETTE[h % PALETTE.len()]
}

/// One row: `name` in a column `name_width` wide, a bar `fraction` of the remaining width
/// (minus room for `value`), and `value` after the bar.
pub fn bar_row(
    ui: &mut egui::Ui,
    name: &str,
    name_width: f32,
    fraction: f64,
    value: &str,
    colour: Color32,
) -> egui::Response {
    let font = FontId::proportional(14.0);
    let height = 22.0;
    let value_width = 150.0;
    let (rect, response) =
        ui.allocate_exact_size(Vec2::new(ui.available_width(), height), Sense::hover());
    let painter = ui.painter_at(rect);
    let text = ui.visuals().text_color();
    let mid = rect.center().y;
    painter.text(
        pos2(rect.left(), mid),
        Align2::LEFT_CENTER,
        name,
        font.clone(),
        text,
    );
    let track_left = rect.left() + name_width;
    let track_width = (rect.width() - name_width - value_width).max(10.0);
    let track = Rect::from_min_size(
        pos2(track_left, rect.top() + 3.0),
        Vec2::new(track_width, height - 6.0),
    );
    painter.rect_filled(track, CornerRadius::same(3), ui.visuals().faint_bg_color);
    let filled = Rect::from_min_size(
        track.min,
        Vec2::new(track_width * fraction.clamp(0.0, 1.0) as f32, track.height()),
    );
    painter.rect_filled(filled, CornerRadius::same(3), colour);
    painter.text(
        pos2(track.right() + 8.0, mid),
        Align2::LEFT_CENTER,
        value,
        font,
        text,
    );
    response
}

/// The shader chart: one bar per kernel, scaled to the slowest, with its time and share.
pub fn kernel_bars(ui: &mut egui::Ui, kernels: &[KernelTime]) {
    let total: f64 = kernels.iter().map(|k| k.seconds).sum();
    let slowest = kernels.first().map_or(0.0, |k| k.seconds);
    for k in kernels {
        let share = if total > 0.0 { k.seconds / total } else { 0.0 };
        let fraction = if slowest > 0.0 {
            k.seconds / slowest
        } else {
            0.0
        };
        let value = format!("{}  {:>3.0}%", format_seconds(k.seconds), share * 100.0);
        let gflops = if k.seconds > 0.0 {
            k.flops / k.seconds / 1e9
        } else {
            0.0
        };
        bar_row(ui, &k.kernel, 110.0, fraction, &value, colour_of(&k.kernel)).on_hover_text(
            format!(
                "{}: {} dispatches, {:.3} GFLOP, {gflops:.1} GFLOP/s",
                k.kernel,
                k.dispatches,
                k.flops / 1e9
            ),
        );
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
