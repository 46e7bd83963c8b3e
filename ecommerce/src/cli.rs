//! The flags both services take, declared once and flattened into each command line.
//!
//! `--bind` and `--tls-reload-interval-secs` stay in each service's own arguments: their
//! environment variables carry the service's prefix (`DISCOUNT_BIND`, `CATALOG_BIND`), and
//! clap's derive takes environment names as literals. Their range is shared from here.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;

use crate::keys::default_keys_dir;
use crate::telemetry::LogFormat;

/// Flags every subcommand of both services takes.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// The keys directory, shared by both services [default: the repository's keys/].
    /// discount serves its `cert.pem` and `private.key`; the catalog trusts its `ca.pem`
    /// (or, lacking one, `cert.pem`). Keys are generated there when it has none.
    #[arg(long, global = true, env = "KEYS_DIR", value_name = "DIR", default_value_os_t = default_keys_dir(), hide_default_value = true)]
    pub keys_dir: PathBuf,

    /// Log lines as text for people or as JSON for log collectors.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
}

/// The values `--tls-reload-interval-secs` takes: 0 (never) to a day.
pub fn reload_interval_secs() -> RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=86_400)
}
