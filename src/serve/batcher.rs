//! Dynamic batching: HTTP handlers queue preprocessed images, one worker thread owns the GPU
//! and runs whatever is waiting as one forward pass.
//!
//! The model is blocking (wgpu calls wait inside), so it runs on a plain thread and never on
//! the async runtime's threads. The worker takes the oldest request, then keeps taking
//! requests until the batch holds `max_batch` images or the oldest one has waited
//! `max_delay`; a request that does not fit waits for the next pass. Batches are padded with
//! zero images to a power of two (or `max_batch`), so only a few batch sizes ever get
//! buffers and pipelines, all created before the server reports ready. Every image is
//! computed independently of the others in its pass, so an answer does not depend on what it
//! was batched with.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use vit_hybrid::Model;

use super::metrics::{Metrics, QueueState};

/// One image's logits, or why it has none (non-finite logits).
pub type ImageResult = Result<Vec<f32>, String>;

/// A request's images, waiting for the GPU.
pub struct Job {
    /// `images` x [3, H, W], row-major.
    pub pixels: Vec<f32>,
    pub images: usize,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<ImageResult>, String>>,
    pub enqueued: Instant,
}

struct State {
    jobs: VecDeque<Job>,
    images: usize,
    closed: bool,
}

/// The bounded queue between the handlers and the worker.
pub struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
}

/// Why a job was not queued.
pub enum Refused {
    Full,
    Closed,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                images: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn push(&self, job: Job) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        if s.jobs.len() >= self.capacity {
            return Err(Refused::Full);
        }
        s.images += job.images;
        s.jobs.push_back(job);
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    /// No more jobs: the worker finishes those queued, then ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    pub fn state(&self) -> QueueState {
        let s = self.lock();
        QueueState {
            requests: s.jobs.len(),
            images: s.images,
            capacity: self.capacity,
        }
    }

    /// The next batch: blocks for a first job, then gathers more until `max_batch` images or
    /// the first job's deadline. None once closed and empty.
    fn next_batch(&self, max_batch: usize, max_delay: Duration) -> Option<Vec<Job>> {
        let mut s = self.lock();
        let first = loop {
            if let Some(job) = s.jobs.pop_front() {
                break job;
            }
            if s.closed {
                return None;
            }
            s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        };
        s.images -= first.images;
        let deadline = first.enqueued + max_delay;
        let mut total = first.images;
        let mut batch = vec![first];
        while total < max_batch {
            if let Some(next) = s.jobs.front() {
                if total + next.images > max_batch {
                    break;
                }
                let job = s.jobs.pop_front().expect("front exists");
                s.images -= job.images;
                total += job.images;
                batch.push(job);
                continue;
            }
            let now = Instant::now();
            if s.closed || now >= deadline {
                break;
            }
            s = self
                .wake
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(batch)
    }
}

/// The batch sizes the worker runs: powers of two below `max_batch`, and `max_batch`.
pub fn bucket_sizes(max_batch: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut b = 1;
    while b < max_batch {
        sizes.push(b);
        b *= 2;
    }
    sizes.push(max_batch);
    sizes
}

/// The smallest bucket holding `n` images (n <= max_batch).
fn bucket_for(n: usize, max_batch: usize) -> usize {
    n.next_power_of_two().min(max_batch)
}

/// Creates every bucket's buffers and pipelines and runs each once, so that the first
/// requests pay no compilation.
pub fn warm_up(model: &Model, max_batch: usize) -> Result<()> {
    for b in bucket_sizes(max_batch) {
        model.prepare(b)?;
        model.forward(&vec![0.0; b * model.image_len()], b)?;
    }
    Ok(())
}

pub struct Worker {
    pub model: Arc<Model>,
    pub queue: Arc<Queue>,
    pub metrics: Arc<Metrics>,
    pub max_batch: usize,
    pub max_delay: Duration,
}

impl Worker {
    /// Runs batches until the queue is closed and empty.
    pub fn run(&self) {
        while let Some(jobs) = self.queue.next_batch(self.max_batch, self.max_delay) {
            let pixels: Vec<f32> = jobs.iter().flat_map(|j| j.pixels.iter().copied()).collect();
            let total: usize = jobs.iter().map(|j| j.images).sum();
            match self.forward(&pixels, total) {
                // An image without an answer may have taken others in its pass down with it
                // (a non-finite activation can leak across images in some kernels), and a
                // pass that fails as a whole may be one request's fault: either way, with
                // several requests in the pass, each is run again on its own, so no request
                // pays for another's input.
                Ok(logits) if jobs.len() == 1 || logits.iter().all(Result::is_ok) => {
                    self.answer(jobs, logits)
                }
                Err(e) if jobs.len() == 1 => {
                    for job in jobs {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
                _ => {
                    for job in jobs {
                        match self.forward(&job.pixels, job.images) {
                            Ok(logits) => self.answer(vec![job], logits),
                            Err(e) => {
                                let _ = job.reply.send(Err(e));
                            }
                        }
                    }
                }
            }
        }
    }

    fn answer(&self, jobs: Vec<Job>, logits: Vec<ImageResult>) {
        let mut logits = logits.into_iter();
        for job in jobs {
            let mine: Vec<ImageResult> = logits.by_ref().take(job.images).collect();
            // The handler may have gone (client hung up); nothing to do then.
            let _ = job.reply.send(Ok(mine));
        }
    }

    /// Logits of `images` images, run in passes of at most `max_batch`, each padded to its
    /// bucket size.
    fn forward(&self, pixels: &[f32], images: usize) -> Result<Vec<ImageResult>, String> {
        let labels = self.model.config.num_labels();
        let len = self.model.image_len();
        let mut out = Vec::with_capacity(images);
        for start in (0..images).step_by(self.max_batch) {
            let n = self.max_batch.min(images - start);
            let b = bucket_for(n, self.max_batch);
            let mut chunk = pixels[start * len..(start + n) * len].to_vec();
            chunk.resize(b * len, 0.0);
            let t = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.model.forward(&chunk, b)
            }));
            let logits = match result {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return Err(format!("running the model: {e:#}")),
                Err(_) => return Err("running the model: the forward pass panicked".into()),
            };
            self.metrics.forward_pass(n, t.elapsed().as_secs_f64());
            for l in logits.chunks(labels).take(n) {
                let bad = l.iter().filter(|v| !v.is_finite()).count();
                out.push(if bad == 0 {
                    Ok(l.to_vec())
                } else {
                    Err(format!(
                        "{bad} of its {labels} logits are NaN or infinite (the input or an \
                         activation is outside float32's range), so there is no answer"
                    ))
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(images: usize) -> Job {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        Job {
            pixels: Vec::new(),
            images,
            reply: tx,
            enqueued: Instant::now(),
        }
    }

    #[test]
    fn buckets_are_powers_of_two_then_the_maximum() {
        assert_eq!(bucket_sizes(1), vec![1]);
        assert_eq!(bucket_sizes(8), vec![1, 2, 4, 8]);
        assert_eq!(bucket_sizes(12), vec![1, 2, 4, 8, 12]);
        assert_eq!(bucket_for(5, 12), 8);
        assert_eq!(bucket_for(9, 12), 12);
    }

    #[test]
    fn batches_take_what_fits_and_leave_the_rest() {
        let q = Queue::new(10);
        for n in [2, 3, 4, 1] {
            assert!(q.push(job(n)).is_ok());
        }
        let b = q.next_batch(6, Duration::ZERO).unwrap();
        assert_eq!(b.iter().map(|j| j.images).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(q.state().requests, 2);
        assert_eq!(q.state().images, 5);
        let b = q.next_batch(6, Duration::ZERO).unwrap();
        assert_eq!(b.iter().map(|j| j.images).collect::<Vec<_>>(), vec![4, 1]);
        q.close();
        assert!(q.next_batch(6, Duration::ZERO).is_none());
        assert!(matches!(q.push(job(1)), Err(Refused::Closed)));
    }

    #[test]
    fn a_full_queue_refuses() {
        let q = Queue::new(1);
        assert!(q.push(job(1)).is_ok());
        assert!(matches!(q.push(job(1)), Err(Refused::Full)));
    }
}
