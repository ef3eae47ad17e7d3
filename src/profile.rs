//! Where the GPU time goes: the time of every dispatch of a recorded program.
//!
//! With `TIMESTAMP_QUERY` each dispatch runs in its own compute pass whose start and end the
//! GPU stamps, all in one submission. Without it, each dispatch is submitted alone and timed
//! on the host: that overstates tiny dispatches by the submit latency but ranks kernels well.

use std::collections::HashMap;

use anyhow::{Context, Result};
use serde_json::json;
use web_time::Instant;

use crate::gpu::Gpu;
use crate::ops::Program;

/// One dispatch's measured time.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    pub kernel: &'static str,
    pub entry: &'static str,
    pub layer: String,
    /// Start relative to the first dispatch, in seconds.
    pub start: f64,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
}

/// How the times were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GPU timestamps around each dispatch.
    Timestamps,
    /// One submission per dispatch, host clock (the adapter has no timestamp queries).
    SeparateSubmissions,
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::Timestamps => "GPU timestamp queries",
            Method::SeparateSubmissions => {
                "separate submissions timed on the host (the adapter has no timestamp queries)"
            }
        }
    }
}

/// Times every dispatch of `program`, with timestamps where the device has them.
#[cfg(not(target_arch = "wasm32"))]
pub fn time_program(gpu: &Gpu, program: &Program) -> Result<(Vec<DispatchTime>, Method)> {
    let all = 0..program.dispatches.len();
    pollster::block_on(time_program_async(gpu, program, std::slice::from_ref(&all)))
}

/// [`time_program`], awaiting the GPU. With timestamps, the dispatches of each of `spans`
/// (consecutive ranges covering the program) go in one submission, awaited before the next,
/// as [`crate::Model::set_submission_flops`] splits a forward pass.
pub async fn time_program_async(
    gpu: &Gpu,
    program: &Program,
    spans: &[std::ops::Range<usize>],
) -> Result<(Vec<DispatchTime>, Method)> {
    if gpu
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        let ends: Vec<usize> = spans.iter().map(|s| s.end).collect();
        Ok((
            time_with_timestamps(gpu, program, &ends).await?,
            Method::Timestamps,
        ))
    } else {
        Ok((
            time_dispatches(gpu, program).await?,
            Method::SeparateSubmissions,
        ))
    }
}

fn entry(program: &Program, i: usize, start: f64, seconds: f64) -> DispatchTime {
    let d = &program.dispatches[i];
    DispatchTime {
        kernel: d.kernel,
        entry: d.entry,
        layer: d.layer.clone(),
        start,
        seconds,
        flops: d.flops,
        bytes: d.bytes,
    }
}

/// Query sets hold at most this many timestamps (wgpu's limit).
const MAX_QUERIES: usize = 4096;

/// `span_ends`: the dispatches after which a submission ends.
async fn time_with_timestamps(
    gpu: &Gpu,
    program: &Program,
    span_ends: &[usize],
) -> Result<Vec<DispatchTime>> {
    let n = program.dispatches.len();
    let period_ns = gpu.queue.get_timestamp_period() as f64;
    let mut stamps: Vec<u64> = Vec::with_capacity(2 * n);
    for first in (0..n).step_by(MAX_QUERIES / 2) {
        let count = (n - first).min(MAX_QUERIES / 2);
        let queries = (2 * count) as u32;
        let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: queries,
        });
        let bytes = queries as u64 * 8;
        let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile.resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile.readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for j in 0..count {
            program.encode_timed(&mut encoder, first + j, &set, 2 * j as u32);
            if j + 1 < count && span_ends.contains(&(first + j + 1)) {
                gpu.queue.submit([encoder.finish()]);
                gpu.work_done().await?;
                encoder = gpu.device.create_command_encoder(&Default::default());
            }
        }
        encoder.resolve_query_set(&set, 0..queries, &resolve, 0);
        encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
        gpu.queue.submit([encoder.finish()]);
        // Timestamps are u64: read them as pairs of u32 words.
        let words = gpu
            .map_read_async(&staging, 2 * queries as usize)
            .await
            .context("reading timestamps")?;
        stamps.extend(
            words
                .chunks_exact(2)
                .map(|w| w[0].to_bits() as u64 | (w[1].to_bits() as u64) << 32),
        );
    }
    let t0 = stamps.first().copied().unwrap_or(0);
    Ok((0..n)
        .map(|i| {
            let (a, b) = (stamps[2 * i], stamps[2 * i + 1]);
            let start = a.saturating_sub(t0) as f64 * period_ns * 1e-9;
            entry(
                program,
                i,
                start,
                b.saturating_sub(a) as f64 * period_ns * 1e-9,
            )
        })
        .collect())
}

/// Runs each dispatch of `program` in its own submission and times it on the host.
pub async fn time_dispatches(gpu: &Gpu, program: &Program) -> Result<Vec<DispatchTime>> {
    let mut out = Vec::with_capacity(program.dispatches.len());
    let mut clock = 0.0;
    for i in 0..program.dispatches.len() {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        program.encode_one(&mut encoder, i);
        let t = Instant::now();
        gpu.queue.submit([encoder.finish()]);
        gpu.work_done().await?;
        let s = t.elapsed().as_secs_f64();
        out.push(entry(program, i, clock, s));
        clock += s;
    }
    Ok(out)
}

/// One row of an aggregated profile.
#[derive(Clone, Debug)]
pub struct Row {
    pub key: String,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
    pub dispatches: usize,
}

/// Totals per key (e.g. per kernel), sorted by time, largest first.
pub fn aggregate<K: Fn(&DispatchTime) -> String>(times: &[DispatchTime], key: K) -> Vec<Row> {
    let mut m: HashMap<String, Row> = HashMap::new();
    for t in times {
        let k = key(t);
        let e = m.entry(k.clone()).or_insert(Row {
            key: k,
            seconds: 0.0,
            flops: 0.0,
            bytes: 0.0,
            dispatches: 0,
        });
        e.seconds += t.seconds;
        e.flops += t.flops;
        e.bytes += t.bytes;
        e.dispatches += 1;
    }
    let mut v: Vec<Row> = m.into_values().collect();
    v.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    v
}

/// A text table of `rows` with share of `total`, GFLOP/s and GB/s.
pub fn table(title: &str, rows: &[Row], total: f64) -> String {
    let mut s = format!(
        "{title:<40} {:>10} {:>7} {:>6} {:>9} {:>8}\n",
        "ms", "share", "calls", "GFLOP/s", "GB/s"
    );
    for r in rows {
        let rate = |x: f64| {
            if r.seconds > 0.0 {
                x / r.seconds / 1e9
            } else {
                0.0
            }
        };
        s += &format!(
            "{:<40} {:>10.3} {:>6.1}% {:>6} {:>9.2} {:>8.2}\n",
            r.key,
            r.seconds * 1e3,
            100.0 * r.seconds / total.max(1e-12),
            r.dispatches,
            rate(r.flops),
            rate(r.bytes)
        );
    }
    s
}

/// A Chrome trace-event file (Perfetto, chrome://tracing): one complete event per dispatch,
/// named after its shader, with the layer in its args.
pub fn chrome_trace(times: &[DispatchTime], method: Method) -> serde_json::Value {
    let events: Vec<_> = times
        .iter()
        .map(|t| {
            json!({
                "name": format!("{}:{}", t.kernel, t.entry),
                "cat": t.kernel,
                "ph": "X",
                "ts": t.start * 1e6,
                "dur": t.seconds * 1e6,
                "pid": 1,
                "tid": 1,
                "args": {"layer": t.layer, "gflop": t.flops / 1e9, "mbytes": t.bytes / 1e6},
            })
        })
        .collect();
    json!({"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"timing": method.describe()}})
}
