//! New TLS files without a restart, for both services: every few seconds the files are
//! read, and when they changed the new set is loaded by the service's own loader (the one
//! its start-up uses, so a set is judged the same way at both) and, if good, used for
//! every new connection. A bad or half-written set is refused with a warning and counted;
//! the previous one keeps serving, and the next change is tried again.
//!
//! Changes are noticed by reading the files' contents on a timer, not with inotify: a
//! watcher would have to follow Kubernetes' swap of the `..data` symlink and renames over
//! a watched file, which a poll of a few small files handles by construction.
//!
//! Each service says what its set is, how to load it and how to use it ([`TlsSource`]);
//! [`spawn`] does the rest: the timer, the change detection, the expiry warnings for
//! certificates that expire while the service runs, the metrics and the logs.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::keys::ExpiryWatch;
use crate::metrics::{ExpiryGauges, ReloadCounters};
use crate::report::Chain;

/// One service's TLS files: what they are, how to load them, how to use them.
pub trait TlsSource: Send + 'static {
    /// A set that was read and checked, ready to use.
    type Loaded: Send;

    /// Why a set was refused, with its causes (logged on one line).
    type Error: std::error::Error + Send + 'static;

    /// The files a change of the set touches.
    fn watched(&self) -> Vec<PathBuf>;

    /// Reads the set and checks it: the service's loader, the very one its start-up uses.
    fn load(&self) -> Result<Self::Loaded, Self::Error>;

    /// The certificates of `loaded` and when they expire, named as the metrics name them
    /// (`server`, `ca`, `client`).
    fn expiries(loaded: &Self::Loaded) -> Vec<(&'static str, SystemTime)>;

    /// Uses `loaded` for every new connection from now on.
    fn apply(&self, loaded: Self::Loaded) -> Result<(), Self::Error>;

    /// Logs that a new set is in use, saying what it is.
    fn log_used(&self);

    /// Whether the service still wants new sets (false: the reloading stops).
    fn wanted(&self) -> bool {
        true
    }
}

/// What a reload reports to: the service's TLS metrics.
#[derive(Debug, Clone)]
pub struct ReloadMetrics {
    /// When each certificate expires.
    pub certificates: ExpiryGauges,
    /// What became of each change.
    pub reloads: ReloadCounters,
}

/// Checks `source`'s files every `every` and, when they changed and are good, has the
/// service use them; warns about certificates with less than `renew_before` left. Ends
/// when aborted, or when the source is no longer wanted.
pub fn spawn<S: TlsSource>(
    source: S,
    every: Duration,
    renew_before: Duration,
    metrics: ReloadMetrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watch = FileWatch::new(&source.watched());
        let mut expiries = Expiries::new(renew_before);
        if let Ok(loaded) = source.load() {
            expiries.set(S::expiries(&loaded));
        }
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if !source.wanted() {
                return;
            }
            // Certificates that expire while the service runs are noticed here too.
            expiries.check();
            if !watch.changed(&source.watched()) {
                continue;
            }
            let used = source.load().and_then(|loaded| {
                let now = S::expiries(&loaded);
                source.apply(loaded).map(|()| now)
            });
            match used {
                Ok(now) => {
                    for &(certificate, not_after) in &now {
                        metrics.certificates.set(certificate, not_after);
                    }
                    expiries.set(now);
                    expiries.check();
                    metrics.reloads.record(true);
                    source.log_used();
                }
                Err(error) => {
                    metrics.reloads.record(false);
                    tracing::warn!(
                        error = %Chain(&error),
                        "the changed TLS files were refused; still using the previous ones"
                    );
                }
            }
        }
    })
}

/// The expiry of each certificate in use, each with its warning state.
struct Expiries {
    renew_before: Duration,
    watches: Vec<(ExpiryWatch, SystemTime)>,
}

impl Expiries {
    fn new(renew_before: Duration) -> Self {
        Self {
            renew_before,
            watches: Vec::new(),
        }
    }

    /// Follows the certificates `now` names; one already followed keeps its state.
    fn set(&mut self, now: Vec<(&'static str, SystemTime)>) {
        let mut old = std::mem::take(&mut self.watches);
        for (certificate, not_after) in now {
            let watch = match old.iter().position(|(w, _)| w.what() == certificate) {
                Some(i) => old.swap_remove(i).0,
                None => ExpiryWatch::new(certificate, self.renew_before),
            };
            self.watches.push((watch, not_after));
        }
    }

    fn check(&mut self) {
        for (watch, not_after) in &mut self.watches {
            watch.check(*not_after);
        }
    }
}

/// The contents of some files, to tell when any of them changed, however it was done: a
/// rename into place, a rewrite in place, a symlink swapped under them.
#[derive(Debug)]
pub struct FileWatch {
    seen: Vec<u8>,
}

impl FileWatch {
    /// Starts from what `files` hold now.
    pub fn new(files: &[PathBuf]) -> Self {
        Self {
            seen: contents(files),
        }
    }

    /// Whether `files` hold something else than when last asked (a missing file reads
    /// as empty).
    pub fn changed(&mut self, files: &[PathBuf]) -> bool {
        let now = contents(files);
        if now == self.seen {
            return false;
        }
        self.seen = now;
        true
    }
}

fn contents(files: &[PathBuf]) -> Vec<u8> {
    files
        .iter()
        .flat_map(|path| {
            let mut bytes = std::fs::read(path).unwrap_or_default();
            bytes.push(0xff); // a separator no PEM contains
            bytes
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_once_however_it_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "one").unwrap();
        let files = vec![a.clone(), b.clone()];
        let mut watch = FileWatch::new(&files);
        assert!(!watch.changed(&files));
        std::fs::write(&b, "appeared").unwrap();
        assert!(watch.changed(&files));
        assert!(!watch.changed(&files));
        let staged = dir.path().join("staged");
        std::fs::write(&staged, "two").unwrap();
        std::fs::rename(&staged, &a).unwrap();
        assert!(watch.changed(&files));
    }
}
