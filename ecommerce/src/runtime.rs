//! The tokio runtime both binaries run on, sized to the CPUs the process may use.
//!
//! `std::thread::available_parallelism` counts the CPUs this process may run on: its CPU
//! affinity (`taskset`) and cgroup quota (a container's or Kubernetes pod's CPU limit). With
//! one CPU, a multi-threaded scheduler only adds cost (atomics, work-stealing queues,
//! cross-thread wake-ups) for no parallelism, so we use tokio's single-threaded scheduler.
//! Otherwise tokio's multi-threaded one, with one worker per CPU (`TOKIO_WORKER_THREADS`
//! overrides, as tokio documents).

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
