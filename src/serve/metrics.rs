//! The server's Prometheus metrics, kept by hand in the text exposition format: a handful of
//! counters and histograms do not justify a metrics crate and its registry.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A cumulative-on-render histogram: per-bucket counts, their sum and how many.
#[derive(Clone, Debug)]
struct Histogram {
    bounds: Vec<f64>,
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: Vec<f64>) -> Self {
        let counts = vec![0; bounds.len()];
        Self {
            bounds,
            counts,
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// `name_bucket{labels,le=..}` lines (cumulative), then `_sum` and `_count`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Seconds, from a fast cached answer to a large batch on a CPU adapter.
const LATENCY_BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

struct Inner {
    /// (endpoint, status) -> requests.
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batch_size: Histogram,
    inference: Histogram,
    rejected_queue_full: u64,
}

pub struct Metrics {
    inner: Mutex<Inner>,
}

/// What the queue looks like at render time.
pub struct QueueState {
    pub requests: usize,
    pub images: usize,
    pub capacity: usize,
}

impl Metrics {
    /// `max_batch` sets the batch-size buckets: every power of two below it, and itself.
    pub fn new(max_batch: usize) -> Self {
        let mut bounds = Vec::new();
        let mut b = 1;
        while b < max_batch {
            bounds.push(b as f64);
            b *= 2;
        }
        bounds.push(max_batch as f64);
        Self {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                batch_size: Histogram::new(bounds),
                inference: Histogram::new(LATENCY_BOUNDS.to_vec()),
                rejected_queue_full: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        let mut m = self.lock();
        *m.requests
            .entry((endpoint.to_string(), status))
            .or_default() += 1;
        m.latency
            .entry(endpoint.to_string())
            .or_insert_with(|| Histogram::new(LATENCY_BOUNDS.to_vec()))
            .observe(seconds);
    }

    /// One forward pass of `images` real images (padding not counted) taking `seconds`.
    pub fn forward_pass(&self, images: usize, seconds: f64) {
        let mut m = self.lock();
        m.batch_size.observe(images as f64);
        m.inference.observe(seconds);
    }

    pub fn queue_full(&self) {
        self.lock().rejected_queue_full += 1;
    }

    pub fn render(&self, queue: &QueueState, in_flight: usize, ready: bool) -> String {
        let m = self.lock();
        let mut out = String::new();
        out.push_str(
            "# HELP vit_hybrid_requests_total HTTP requests answered, by endpoint and status.\n\
             # TYPE vit_hybrid_requests_total counter\n",
        );
        for ((endpoint, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "vit_hybrid_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {n}",
                escape(endpoint)
            );
        }
        out.push_str(
            "# HELP vit_hybrid_request_duration_seconds Time from a request's arrival to its \
             answer, by endpoint.\n# TYPE vit_hybrid_request_duration_seconds histogram\n",
        );
        for (endpoint, h) in &m.latency {
            let labels = format!("endpoint=\"{}\"", escape(endpoint));
            h.render(&mut out, "vit_hybrid_request_duration_seconds", &labels);
        }
        out.push_str(
            "# HELP vit_hybrid_batch_size Images per forward pass (dynamic batching).\n\
             # TYPE vit_hybrid_batch_size histogram\n",
        );
        m.batch_size.render(&mut out, "vit_hybrid_batch_size", "");
        out.push_str(
            "# HELP vit_hybrid_inference_duration_seconds GPU time of one forward pass, \
             upload to logits read back.\n# TYPE vit_hybrid_inference_duration_seconds histogram\n",
        );
        m.inference
            .render(&mut out, "vit_hybrid_inference_duration_seconds", "");
        let _ = write!(
            out,
            "# HELP vit_hybrid_queue_depth Requests waiting for the GPU.\n\
             # TYPE vit_hybrid_queue_depth gauge\nvit_hybrid_queue_depth {}\n\
             # HELP vit_hybrid_queue_images Images in the requests waiting for the GPU.\n\
             # TYPE vit_hybrid_queue_images gauge\nvit_hybrid_queue_images {}\n\
             # HELP vit_hybrid_queue_capacity Requests the queue holds (--max-queue).\n\
             # TYPE vit_hybrid_queue_capacity gauge\nvit_hybrid_queue_capacity {}\n\
             # HELP vit_hybrid_queue_rejected_total Requests refused with 503 because the queue was full.\n\
             # TYPE vit_hybrid_queue_rejected_total counter\nvit_hybrid_queue_rejected_total {}\n\
             # HELP vit_hybrid_inference_requests_in_flight Inference requests (infer, classify) \
             received and not yet answered.\n\
             # TYPE vit_hybrid_inference_requests_in_flight gauge\n\
             vit_hybrid_inference_requests_in_flight {}\n\
             # HELP vit_hybrid_ready 1 once the model is loaded and warmed.\n\
             # TYPE vit_hybrid_ready gauge\nvit_hybrid_ready {}\n",
            queue.requests,
            queue.images,
            queue.capacity,
            m.rejected_queue_full,
            in_flight,
            u8::from(ready)
        );
        out
    }
}

/// A label value as the exposition format needs it.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let m = Metrics::new(6);
        for n in [1, 1, 3, 6] {
            m.forward_pass(n, 0.01);
        }
        let text = m.render(
            &QueueState {
                requests: 2,
                images: 5,
                capacity: 9,
            },
            3,
            true,
        );
        for line in [
            "vit_hybrid_batch_size_bucket{le=\"1\"} 2",
            "vit_hybrid_batch_size_bucket{le=\"2\"} 2",
            "vit_hybrid_batch_size_bucket{le=\"4\"} 3",
            "vit_hybrid_batch_size_bucket{le=\"6\"} 4",
            "vit_hybrid_batch_size_bucket{le=\"+Inf\"} 4",
            "vit_hybrid_batch_size_sum 11",
            "vit_hybrid_batch_size_count 4",
            "vit_hybrid_queue_depth 2",
            "vit_hybrid_queue_images 5",
            "vit_hybrid_inference_requests_in_flight 3",
            "vit_hybrid_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
