//! Failures a presenter can switch on: OpenFeature flags, in flagd's format, that make
//! discount answer an error, answer late, never answer, or burn CPU, for the calls the
//! flags' targeting picks (a customer, a product, a replica, a share of calls).
//!
//! They exist to show the catalog's defences at work (fallback per product, breakers,
//! health checks, hedging, admission control): docs/failure-scenarios.md says what each
//! shows and where to look. A fault never changes an answer's content: a call either
//! fails, comes late, or does not come, and a price that is answered is the rule's.
//!
//! Each call is evaluated with this context, for flagd's targeting rules:
//! - `targetingKey`: `REPLICA/N`, N counting this replica's calls, so that a `fractional`
//!   rule splits calls (not requests or customers);
//! - `replica`: this replica's name (`--replica-name`, by default the host name);
//! - `call`: `ApplyDiscount`, or `Check` for a health check on the TLS port (only
//!   `discountHang` is evaluated for those: a replica that hangs is seen by the catalog's
//!   health checks too, when the flag is aimed at the replica rather than a customer);
//! - `customer` (when the request names one) and `product`: their ids.
//!
//! Flags no file could turn on are not evaluated at all ([`flags`]), so that with every
//! flag off a call costs one atomic load.

pub mod flags;
pub mod source;
mod state;

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use open_feature::provider::NoOpProvider;
use open_feature::{Client, EvaluationContext, OpenFeature};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::metrics::Metrics;
use crate::trace;
use flags::{Armed, Flag};
pub use source::{FILE_CHECK_INTERVAL, FlagSource, ServerMode};
pub use state::Call;
use state::Shared;

/// The longest CPU burn a call gets, whatever the flag says: a runtime worker spins for
/// that long, and a longer spin would only stop the replica from answering anything.
pub const MAX_CPU_BURN: Duration = Duration::from_secs(1);

/// How discount is told about fault flags.
#[derive(Debug, Clone)]
pub struct FaultFlags {
    /// Where the flags come from.
    pub source: FlagSource,
    /// This replica's name, for the flags' targeting (`replica`).
    pub replica: String,
}

/// The faults for this server's calls: cheap to clone; off unless started with flags.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    shared: Option<Arc<Shared>>,
}

/// What to do to one call, from the flags that hold for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Spin on the CPU this long first.
    pub cpu: Duration,
    /// Then wait this long.
    pub delay: Duration,
    /// Then never answer.
    pub hang: bool,
    /// Then answer this error instead of the price.
    pub error: Option<tonic::Code>,
}

impl Faults {
    /// Follows `flags` until the returned task is aborted (by [`crate::run`], at its end).
    pub fn start(flags: FaultFlags, metrics: Metrics) -> (Self, JoinHandle<()>) {
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let shared = Arc::new(Shared {
            name: format!(
                "discount-faults-{}",
                SERVERS.fetch_add(1, Ordering::Relaxed)
            ),
            replica: flags.replica,
            armed: AtomicU8::new(Armed::NONE.0),
            client: OnceLock::new(),
            calls: AtomicU64::new(0),
            metrics,
        });
        let task = match flags.source {
            FlagSource::File(path) => tokio::spawn(source::follow_file(shared.clone(), path)),
            FlagSource::Server(mode) => tokio::spawn(source::follow_server(shared.clone(), mode)),
        };
        (
            Self {
                shared: Some(shared),
            },
            task,
        )
    }

    /// Unbinds this server's provider from OpenFeature's registry, which stops it following
    /// the flags (after the task [`Self::start`] returned is aborted).
    pub async fn stop(&self) {
        if let Some(shared) = &self.shared
            && shared.client.get().is_some()
        {
            let mut api = OpenFeature::singleton_mut().await;
            api.set_named_provider(&shared.name, NoOpProvider::default())
                .await;
        }
    }

    /// Whether any flag may be on for some call: when not, [`Self::apply`] need not be asked.
    #[inline]
    pub fn armed(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.armed.load(Ordering::Relaxed) != 0)
    }

    /// The faults for `call`, evaluated and carried out: returns when the call may go on,
    /// or with the status to answer. Only worth asking for when [`Self::armed`].
    pub async fn apply(&self, call: Call) -> Result<(), Status> {
        let plan = self.plan(call).await;
        self.inject(plan).await
    }

    /// Evaluates the armed flags for `call`.
    async fn plan(&self, call: Call) -> Plan {
        let Some(shared) = &self.shared else {
            return Plan::default();
        };
        let (Some(client), armed) = (
            shared.client.get(),
            Armed(shared.armed.load(Ordering::Relaxed)),
        ) else {
            return Plan::default();
        };
        let context = shared.context(call);
        let mut plan = Plan::default();
        let evaluate = |flag: Flag| {
            armed.has(flag) && (flag == flags::HANG || matches!(call, Call::Discount { .. }))
        };
        if evaluate(flags::HANG) {
            plan.hang = client
                .get_bool_value(flags::HANG.key, Some(&context), None)
                .await
                .unwrap_or(false);
        }
        if evaluate(flags::CPU) {
            plan.cpu = millis(client, flags::CPU, &context).await.min(MAX_CPU_BURN);
        }
        if evaluate(flags::DELAY) {
            plan.delay = millis(client, flags::DELAY, &context).await;
        }
        if evaluate(flags::ERROR) {
            plan.error = client
                .get_string_value(flags::ERROR.key, Some(&context), None)
                .await
                .ok()
                .and_then(|name| flags::code(&name));
        }
        plan
    }

    /// Carries `plan` out: returns when the call may go on, or with the status to answer.
    async fn inject(&self, plan: Plan) -> Result<(), Status> {
        let count = |fault: &'static str| {
            if let Some(shared) = &self.shared {
                shared.metrics.fault_injected(fault);
            }
            trace::fault_injected(fault);
        };
        if !plan.cpu.is_zero() {
            count("cpu");
            tracing::info!(cpu_ms = plan.cpu.as_millis(), "fault: burning CPU");
            let start = Instant::now();
            while start.elapsed() < plan.cpu {
                std::hint::spin_loop();
            }
        }
        if !plan.delay.is_zero() {
            count("delay");
            tracing::info!(delay_ms = plan.delay.as_millis(), "fault: answering late");
            tokio::time::sleep(plan.delay).await;
        }
        if plan.hang {
            count("hang");
            tracing::info!("fault: not answering");
            std::future::pending::<()>().await;
        }
        if let Some(code) = plan.error {
            count("error");
            tracing::info!(code = ?code, "fault: answering an error");
            return Err(Status::new(
                code,
                format!("fault injected by the flag {}", flags::ERROR.key),
            ));
        }
        Ok(())
    }
}

/// The milliseconds `flag` holds for `context`; an evaluation error or a negative number
/// is no fault.
async fn millis(client: &Client, flag: Flag, context: &EvaluationContext) -> Duration {
    client
        .get_int_value(flag.key, Some(context), None)
        .await
        .ok()
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(Duration::ZERO, Duration::from_millis)
}
