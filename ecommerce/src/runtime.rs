//! The tokio runtime both binaries run on, sized to the CPUs the process may use.
//!
//! `std::thread::available_parallelism` counts the CPUs this process may run on: its CPU
//! affinity (`taskset`) and cgroup quota (a container's or Kubernetes pod's CPU limit). With
//! one CPU, a multi-threaded scheduler only adds cost (atomics, work-stealing queues,
//! cross-thread wake-ups) for no parallelism, so we use tokio's single-threaded scheduler.
//! Otherwise tokio's multi-threaded one, with one worker per CPU (`TOKIO_WORKER_THREADS`
//! overrides, as tokio documents).
//!
//! [`BoxingExecutor`] is how both services have hyper spawn its per-call tasks.

use std::future::Future;
use std::io;
use std::num::NonZeroUsize;

use tokio::runtime::{Builder, Runtime};

/// Builds the runtime for this process (see the module docs).
pub fn build() -> io::Result<Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let mut builder = if cpus == 1 && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        Builder::new_current_thread()
    } else {
        Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// Runs the futures hyper spawns (per call: a server's request handler, a client's request
/// body) as tokio tasks, boxed first. They are large; moved by value into a task, as
/// `hyper_util`'s `TokioExecutor` does, they were copied several times on the way: 4,400
/// instructions a call in the catalog, memcpy mostly (BENCHMARKS.md, "Fewer instructions
/// per request"). Boxed, only a pointer moves. tonic's `Channel` boxes them too.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoxingExecutor;

impl<F> hyper::rt::Executor<F> for BoxingExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Box::pin(future));
    }
}
