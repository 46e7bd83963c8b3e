//! Test-only helpers, shared by the services' tests.
//!
//! - [`process`]: the real binaries, spawned, with their logs read as they come.
//! - [`server`]: servers in the test's own runtime (discount itself, or one a test builds),
//!   on ports the OS picks.
//! - [`keys`]: a keys directory generated into a temporary directory, and directories
//!   broken in each way the services must refuse.
//! - [`http`]: one raw HTTP/1.1 exchange, for what a client library would tidy away.
//! - [`metrics`]: reading and asserting Prometheus samples.
//! - [`poll`]: waiting, bounded, for a condition nothing announces.
//!
//! testkit depends on `discount`, and `discount`'s tests on testkit: a dev-dependency
//! cycle that Cargo allows (the tests link the one `discount` library).

pub mod http;
pub mod keys;
pub mod metrics;
pub mod poll;
pub mod process;
pub mod server;

pub use self::http::{http_get, http_request};
pub use self::keys::{BrokenKeys, broken_sets, generated_keys};
pub use self::metrics::{assert_samples, sample};
pub use self::process::{
    PATIENCE, ServiceProcess, assert_each_broken_set_stops_start_up, run_to_end,
};
pub use self::server::{Running, discount_tls, loopback, start_discount, start_discount_with};
