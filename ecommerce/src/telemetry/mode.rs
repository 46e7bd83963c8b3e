//! Whether spans are made and exported: the one switch the rest of the telemetry reads,
//! set once by [`super::init`].

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the OpenTelemetry layer makes spans (export on); see [`super::propagation`].
static SPANS: AtomicBool = AtomicBool::new(false);

/// Whether spans are made and exported. Without export no span is made at all: the trace
/// context is passed through ([`super::propagation`]), which costs next to nothing.
pub fn spans_enabled() -> bool {
    SPANS.load(Ordering::Relaxed)
}

/// Turns spans on or off (at start-up, by [`super::init`]).
pub(super) fn set_spans_enabled(on: bool) {
    SPANS.store(on, Ordering::Relaxed);
}
