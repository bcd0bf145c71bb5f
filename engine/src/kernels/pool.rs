//! A small thread pool whose workers spin between jobs.
//!
//! A decode step runs about a hundred matrix-vector products one after the other, each a
//! fraction of a millisecond. With a general-purpose pool (rayon) the helper threads fall asleep
//! between products and every product pays to wake them, which measurably lowers the memory
//! bandwidth a decode step gets. Here workers spin for a short while after each job (long enough
//! to bridge the gap to the next product of a decode step, short enough not to compete with
//! other work) and then park. The calling thread always takes a share of the work.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
const SPIN: Duration = Duration::from_micros(200);

type Job = dyn Fn(usize) + Sync;

/// The current job, lifetime-erased (see [`SpinPool::run`]).
#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is `Sync` and outlives every use (run() waits for all parts).
unsafe impl Send for JobPtr {}
// SAFETY: as above; the pointer itself is never written after creation.
unsafe impl Sync for JobPtr {}

/// One job: its function and counters. Each job has its own, so a worker that arrives late
/// can never claim a part of a later job with an earlier job's function.
struct JobState {
    f: JobPtr,
    parts: usize,
    /// Next part to take.
    next: AtomicUsize,
    /// Parts finished.
    done: AtomicUsize,
}

struct Shared {
    /// Incremented for every job; workers watch it.
    epoch: AtomicUsize,
    /// The current job.
    job: Mutex<Option<Arc<JobState>>>,
    parked: Mutex<Vec<Thread>>,
    shutdown: AtomicBool,
}

/// The pool. One global instance serves the engine ([`global`]).
pub struct SpinPool {
    shared: Arc<Shared>,
    threads: usize,
    /// Serialises callers: one job at a time.
    gate: Mutex<()>,
}

impl SpinPool {
    /// A pool running jobs on `threads` threads in total (the caller plus `threads - 1`
    /// workers).
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: Mutex::new(None),
            parked: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
        });
        for i in 1..threads {
            let s = shared.clone();
            thread::Builder::new()
                .name(format!("qwen3-speech-kernel-{i}"))
                .spawn(move || worker(&s))
                .expect("spawning a kernel thread");
        }
        SpinPool {
            shared,
            threads,
            gate: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(0..parts)` across the pool and returns when every part is done.
    pub fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        if parts == 0 {
            return;
        }
        if self.threads == 1 || parts == 1 {
            (0..parts).for_each(f);
            return;
        }
        let _one_job = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: the erased reference is only used by workers until `done == parts`, and this
        // function does not return before that, so `f` outlives every use.
        let raw: &'static Job =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Job>(f) };
        let job = Arc::new(JobState {
            f: JobPtr(raw as *const Job),
            parts,
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        });
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
        s.epoch.fetch_add(1, Ordering::Release);
        for t in s.parked.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            t.unpark();
        }
        take_parts(&job);
        while job.done.load(Ordering::Acquire) < parts {
            std::hint::spin_loop();
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Claims and runs parts of `job` until none are left.
fn take_parts(job: &JobState) {
    loop {
        let i = job.next.fetch_add(1, Ordering::AcqRel);
        if i >= job.parts {
            break;
        }
        // SAFETY: a part below `parts` was claimed, so `run` is still waiting for this job and
        // its function is alive.
        unsafe { (*job.f.0)(i) };
        job.done.fetch_add(1, Ordering::AcqRel);
    }
}

fn worker(s: &Shared) {
    let mut seen = s.epoch.load(Ordering::Acquire);
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            if s.epoch.load(Ordering::Acquire) != seen {
                break;
            }
            spins += 1;
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                // Park until the next job; re-check after registering to avoid a lost wake-up.
                s.parked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(thread::current());
                if s.epoch.load(Ordering::Acquire) == seen {
                    thread::park_timeout(Duration::from_millis(50));
                }
            }
            std::hint::spin_loop();
        }
        seen = s.epoch.load(Ordering::Acquire);
        let job = s.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(job) = job {
            take_parts(&job);
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        for t in self
            .shared
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.unpark();
        }
    }
}

/// The engine's pool, sized like rayon's global pool (`RAYON_NUM_THREADS`, else all CPUs).
pub fn global() -> &'static SpinPool {
    static POOL: OnceLock<SpinPool> = OnceLock::new();
    POOL.get_or_init(|| SpinPool::new(rayon::current_num_threads()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_part_once() {
        let pool = SpinPool::new(3);
        for round in 0..200 {
            let parts = 1 + round % 17;
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            pool.run(parts, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            if round % 50 == 0 {
                // Let the workers park, then wake them with the next job.
                thread::sleep(Duration::from_millis(2));
            }
        }
    }
}
