//! Test-only helpers, shared by the services' tests.
//!
//! - [`process`]: the real binaries, spawned, with their logs read as they come.
//! - [`server`]: servers in the test's own runtime (discount itself, or one a test builds),
//!   on ports the OS picks.
//! - [`keys`]: a keys directory generated into a temporary directory.
//! - [`http`]: one raw HTTP/1.1 exchange, for what a client library would tidy away.
//! - [`metrics`]: reading and asserting Prometheus samples.
//!
//! testkit depends on `discount`, and `discount`'s tests on testkit: a dev-dependency
//! cycle that Cargo allows (the tests link the one `discount` library).

pub mod http;
pub mod keys;
pub mod metrics;
pub mod process;
pub mod server;

pub use self::http::{http_get, http_request};
pub use self::keys::generated_keys;
pub use self::metrics::{assert_samples, sample};
pub use self::process::{PATIENCE, ServiceProcess, run_to_end};
pub use self::server::{Running, loopback, start_discount, start_discount_with};
