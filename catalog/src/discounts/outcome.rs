//! What one discount call comes to: a [`Discount`] (or none), or a [`CallError`] that says
//! why the product is served at its full price, and whom to blame for it; and what a
//! request's calls come to together ([`DiscountStatus`]).

use serde::Serialize;
use tonic::Code;

/// A discount as the catalog serves it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Discount {
    /// The fraction taken off, as the discount service sent it (0.1 for 10%).
    pub pct: f32,
    /// The discounted price.
    pub value_in_cents: i32,
}

/// What one product's call comes to: its discount, none, or why there is no answer.
pub type CallResult = Result<Option<Discount>, CallError>;

/// Why one discount call gave no usable answer. Every variant means "serve the full price".
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer before the request's deadline (ours, or tonic's `Cancelled` /
    /// `DeadlineExceeded`, which is how tonic reports an expired `grpc-timeout`). `local`:
    /// the catalog itself was overloaded at the time, so the replica is not to blame.
    #[error("no answer in time{}", if *.local { " (the catalog was overloaded)" } else { "" })]
    Timeout {
        /// Whether the catalog was overloaded when the deadline passed.
        local: bool,
    },
    /// No replica is accepting calls: every breaker is open, every health check failing,
    /// or no address resolved.
    #[error("no discount replica is accepting calls (circuit open or unhealthy)")]
    CircuitOpen,
    /// No connection: refused, reset, TLS handshake or certificate failure.
    #[error("discount service unavailable: {0}")]
    Unavailable(String),
    /// The service said it is overloaded (`RESOURCE_EXHAUSTED`).
    #[error("discount service overloaded: {0}")]
    Overloaded(String),
    /// The service answered with another error status.
    #[error("discount service answered {code:?}: {message}")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// The service answered OK with something we cannot believe.
    #[error("implausible answer from the discount service: {0}")]
    BadAnswer(&'static str),
    /// Too little of the deadline was left to start the call.
    #[error("too little time left to call")]
    NoBudget,
}

impl CallError {
    /// The `outcome` label of `catalog_discount_calls_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout { local: true } => "timeout_local",
            Self::Timeout { local: false } => "timeout_remote",
            Self::CircuitOpen => "breaker_open",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded(_) => "overloaded",
            Self::Status { .. } | Self::BadAnswer(_) => "error",
            Self::NoBudget => "no_budget",
        }
    }

    /// Whether this failure counts against the replica's breaker. The replica is to blame
    /// for what happened on its side of the wire; not for a timeout the catalog's own
    /// overload caused, nor for shedding load when overloaded (which is what it should do).
    pub fn blames_replica(&self) -> bool {
        match self {
            Self::Timeout { local } => !local,
            Self::Unavailable(_) | Self::Status { .. } | Self::BadAnswer(_) => true,
            Self::Overloaded(_) | Self::CircuitOpen | Self::NoBudget => false,
        }
    }
}

/// "message: cause: cause", the way transport failures (TLS, refused) are explained.
/// tonic and hyper often repeat a cause's text in its wrapper's; each text appears once.
pub(crate) fn error_chain(status: &tonic::Status) -> String {
    ecommerce::report::with_causes(
        status.message().to_owned(),
        std::error::Error::source(status),
    )
}

/// How far a request's discounts could be applied: the value of the catalog's
/// `X-Discount-Status` header, and of its metrics' `discount_status` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountStatus {
    /// `skipped`: no customer, or one the catalog does not know; discount was not asked.
    Skipped,
    /// `complete`: every product was priced by discount (which may have given no discount).
    Complete,
    /// `partial`: some products are at full price because their call failed.
    Partial,
    /// `unavailable`: every call failed; all products are at full price.
    Unavailable,
}

impl DiscountStatus {
    /// Every value, for metrics that start each at zero.
    pub const ALL: [Self; 4] = [
        Self::Complete,
        Self::Partial,
        Self::Unavailable,
        Self::Skipped,
    ];

    /// The status of a request whose calls came to `results`.
    pub fn of(results: &[CallResult]) -> Self {
        let failed = results.iter().filter(|r| r.is_err()).count();
        match failed {
            0 => Self::Complete,
            n if n == results.len() => Self::Unavailable,
            _ => Self::Partial,
        }
    }

    /// Its name, as in the header and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Unavailable => "unavailable",
        }
    }
}
