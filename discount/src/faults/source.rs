//! Where the fault flags come from, and keeping the faults up to date with it.
//!
//! - **A flagd JSON file** (`--fault-flags`, or flagd's own `FLAGD_OFFLINE_FLAG_SOURCE_PATH`):
//!   flagd's provider reads it in process. [`follow_file`] looks at the file every
//!   [`FILE_CHECK_INTERVAL`] and, when it changed, arms the flags it could turn on and
//!   installs a provider made from it; a file that cannot be used is said in one line, and
//!   the last good flags stay (a file missing at start: every flag off until it appears).
//!   An editor's write-and-rename is a change like any other; in a container, mount the
//!   directory rather than the file, or a rename on the host is not seen.
//! - **A flagd server** (`FLAGD_RESOLVER=rpc` or `in-process`, with flagd's `FLAGD_HOST`,
//!   `FLAGD_PORT`, `FLAGD_TLS`…): the provider asks it; discount cannot see the flags
//!   ahead, so every flag is evaluated for every call.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use open_feature::OpenFeature;
use open_feature_flagd::{FlagdOptions, FlagdProvider, ResolverType};

use super::flags::{self, Armed};
use super::state::Shared;

/// How often the flag file is looked at: a changed file takes effect within this time (a
/// provider is made from each good version of it).
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Where the flags come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagSource {
    /// flagd's JSON file format, read in process.
    File(PathBuf),
    /// A flagd server, configured by flagd's `FLAGD_*` environment variables.
    Server(ServerMode),
}

/// How flagd's provider uses a flagd server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// Each flag evaluated by the server (flagd's `rpc`, port 8013 by default).
    Rpc,
    /// The server's flag definitions streamed, evaluated here (`in-process`, port 8015).
    InProcess,
}

/// Starts the provider for a flagd server, and arms every flag once it answers. Retries
/// every second, with one line per new error.
pub(super) async fn follow_server(shared: Arc<Shared>, mode: ServerMode) {
    let mut options = FlagdOptions::default();
    let (resolver, port) = match mode {
        ServerMode::Rpc => (ResolverType::Rpc, 8013),
        ServerMode::InProcess => (ResolverType::InProcess, 8015),
    };
    options.resolver_type = resolver;
    // The provider picks its default port for the resolver its own variable names: here
    // the resolver may come from the command line.
    if std::env::var_os("FLAGD_PORT").is_none() {
        options.port = port;
    }
    tracing::info!(host = %options.host, port = options.port, ?mode, "fault flags: connecting to a flagd server; every fault off until it answers");
    let mut last_error = String::new();
    loop {
        match FlagdProvider::new(options.clone()).await {
            Ok(provider) => {
                install(&shared, provider).await;
                shared.set_armed(Armed::ALL);
                tracing::info!("fault flags: asking the flagd server (FLAGD_* settings)");
                return;
            }
            Err(error) => {
                let error = error.to_string();
                if error != last_error {
                    tracing::warn!(%error, "fault flags: cannot reach the flagd server; every fault off, retrying every second");
                    last_error = error;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What was last seen of the file: enough to notice a change without reading it.
#[derive(Debug, PartialEq)]
enum Seen {
    Nothing,
    Missing(String),
    /// An editor's write-and-rename makes a new inode, even within the clock's resolution.
    File {
        inode: u64,
        modified: Option<SystemTime>,
        len: u64,
    },
}

/// Follows the flag file: at each change, arms the flags it could turn on and gives
/// OpenFeature a provider made from it; logs one line for each change that cannot be used.
pub(super) async fn follow_file(shared: Arc<Shared>, path: PathBuf) {
    let mut seen = Seen::Nothing;
    let mut provider_started = false;
    let mut interval = tokio::time::interval(FILE_CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = match tokio::fs::metadata(&path).await {
            Ok(metadata) => Seen::File {
                inode: metadata.ino(),
                modified: metadata.modified().ok(),
                len: metadata.len(),
            },
            Err(error) => Seen::Missing(error.to_string()),
        };
        if now == seen {
            continue;
        }
        let keeping = if provider_started {
            "keeping the last good flags"
        } else {
            "every fault off until it can be used"
        };
        if let Seen::Missing(error) = &now {
            tracing::warn!(path = %path.display(), %error, "fault flags: cannot read the flag file; {keeping}");
            shared.metrics.fault_flags_loaded(false);
            seen = now;
            continue;
        }
        seen = now;
        let reading = read(&path, keeping).await;
        shared.metrics.fault_flags_loaded(reading.is_some());
        let Some(reading) = reading else {
            continue;
        };
        // A provider made anew from each good version of the file: the change takes effect
        // within one check, whether or not inotify reaches this process (it does not
        // through some container file sharing, Docker Desktop's among them).
        match start_file_provider(&path).await {
            Ok(provider) => {
                install(&shared, provider).await;
                if !provider_started {
                    provider_started = true;
                    tracing::info!(path = %path.display(), every = ?FILE_CHECK_INTERVAL, "fault flags: following the flag file");
                }
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "fault flags: flagd's provider refused the file; {keeping}");
                continue;
            }
        }
        shared.set_armed(reading);
    }
}

/// The file's flags, or `None` after logging why it cannot be used.
async fn read(path: &Path, keeping: &str) -> Option<Armed> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "fault flags: cannot read the flag file; {keeping}");
            return None;
        }
    };
    match flags::read(&text) {
        Ok(reading) => {
            for problem in &reading.problems {
                tracing::warn!(path = %path.display(), %problem, "fault flags: a flag is written wrong");
            }
            Some(reading.armed)
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "fault flags: the flag file is malformed; {keeping}");
            None
        }
    }
}

async fn start_file_provider(
    path: &Path,
) -> Result<FlagdProvider, open_feature_flagd::error::FlagdError> {
    FlagdProvider::new(FlagdOptions {
        resolver_type: ResolverType::File,
        source_configuration: Some(path.display().to_string()),
        // Caching is for flagd servers: a cached answer would outlive a change of the file.
        cache_settings: None,
        ..FlagdOptions::default()
    })
    .await
}

/// Binds `provider` to this server's own name in OpenFeature's registry (replacing the
/// one before, which stops following the file as it is dropped): each server (the tests
/// run several in one process) evaluates with its own.
async fn install(shared: &Shared, provider: FlagdProvider) {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(&shared.name, provider).await;
    // The client looks its provider up by name at each evaluation: made once.
    if shared.client.get().is_none() {
        let _ = shared.client.set(api.create_named_client(&shared.name));
    }
}
