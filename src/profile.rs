//! Where the GPU time goes: every dispatch of a recorded program timed on its own.
//!
//! This is the fallback that works on every adapter (one submission per dispatch, timed on
//! the host); it overstates tiny dispatches by the submit latency but ranks kernels well.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;

use crate::gpu::Gpu;
use crate::ops::Program;

/// One dispatch's measured time.
#[derive(Clone, Debug)]
pub struct DispatchTime {
    pub kernel: &'static str,
    pub entry: &'static str,
    pub layer: String,
    pub seconds: f64,
    pub flops: f64,
    pub bytes: f64,
}

/// Runs each dispatch of `program` in its own submission and times it.
pub fn time_dispatches(gpu: &Gpu, program: &Program) -> Result<Vec<DispatchTime>> {
    let mut out = Vec::with_capacity(program.dispatches.len());
    for (i, d) in program.dispatches.iter().enumerate() {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        program.encode_one(&mut encoder, i);
        let t = Instant::now();
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("waiting for the GPU: {e}"))?;
        out.push(DispatchTime {
            kernel: d.kernel,
            entry: d.entry,
            layer: d.layer.clone(),
            seconds: t.elapsed().as_secs_f64(),
            flops: d.flops,
            bytes: d.bytes,
        });
    }
    Ok(out)
}

/// Totals per key (e.g. per kernel), sorted by time, largest first.
pub fn aggregate<K: Fn(&DispatchTime) -> String>(
    times: &[DispatchTime],
    key: K,
) -> Vec<(String, f64, f64, usize)> {
    let mut m: HashMap<String, (f64, f64, usize)> = HashMap::new();
    for t in times {
        let e = m.entry(key(t)).or_default();
        e.0 += t.seconds;
        e.1 += t.flops;
        e.2 += 1;
    }
    let mut v: Vec<_> = m.into_iter().map(|(k, (s, f, n))| (k, s, f, n)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}
