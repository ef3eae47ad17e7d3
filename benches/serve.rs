//! Load benchmark of `vit-hybrid serve` on loopback: throughput and p50/p99 latency of
//! `POST /classify` at a few client concurrencies, with dynamic batching on.
//!
//!   cargo bench --bench serve
//!   VIT_HYBRID_BENCH_MODEL=google/vit-hybrid-base-bit-384 VIT_HYBRID_BENCH_REQUESTS=64 cargo bench --bench serve
//!
//! Bounded: each concurrency sends at most VIT_HYBRID_BENCH_REQUESTS requests (default 400)
//! and stops after VIT_HYBRID_BENCH_SECONDS (default 20), whichever comes first.

#[path = "../tests/server/mod.rs"]
mod server;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let model = std::env::var("VIT_HYBRID_BENCH_MODEL").unwrap_or_else(|_| server::digits_model());
    let max_requests: usize = env_or("VIT_HYBRID_BENCH_REQUESTS", 400);
    let max_time = Duration::from_secs(env_or("VIT_HYBRID_BENCH_SECONDS", 20));
    let max_batch = env_or("VIT_HYBRID_BENCH_MAX_BATCH", 8usize).to_string();
    let s = server::Server::start(&[
        "--model",
        &model,
        "--max-batch",
        &max_batch,
        "--max-delay-ms",
        "2",
        "--max-queue",
        "256",
    ]);
    let images: Vec<Vec<u8>> = server::digit_images()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let url = s.url("/classify?top_k=1");
    println!("model {model}, --max-batch {max_batch}, POST /classify of 8x8 PNG digits");
    println!("| clients | requests | throughput (req/s) | p50 (ms) | p99 (ms) | mean batch |");
    println!("|--------:|---------:|-------------------:|---------:|---------:|-----------:|");
    for clients in [1usize, 4, 16] {
        let passes0 = s.metric("vit_hybrid_batch_size_count");
        let images0 = s.metric("vit_hybrid_batch_size_sum");
        let next = AtomicUsize::new(0);
        let latencies = Mutex::new(Vec::new());
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..clients {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= max_requests || start.elapsed() > max_time {
                            break;
                        }
                        let t = Instant::now();
                        let r = server::post(&url, &[], &images[i % images.len()]).unwrap();
                        assert_eq!(r.status, 200, "{}", r.text());
                        latencies
                            .lock()
                            .unwrap()
                            .push(t.elapsed().as_secs_f64() * 1e3);
                    }
                });
            }
        });
        let wall = start.elapsed().as_secs_f64();
        let mut l = latencies.into_inner().unwrap();
        l.sort_by(f64::total_cmp);
        let passes = s.metric("vit_hybrid_batch_size_count") - passes0;
        let batched = s.metric("vit_hybrid_batch_size_sum") - images0;
        println!(
            "| {clients} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            l.len(),
            l.len() as f64 / wall,
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            batched / passes.max(1.0)
        );
    }
}
