//! What both services' certificate reloading shares: noticing that files changed, and
//! counting what became of each change.
//!
//! Changes are noticed by reading the files' contents on a timer, not with inotify: a
//! watcher would have to follow Kubernetes' swap of the `..data` symlink and renames over
//! a watched file, which a poll of a few small files handles by construction.

use std::path::PathBuf;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

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

/// `<prefix>_tls_reloads_total{outcome}` in a service's registry: changes of its TLS files
/// that were used (`ok`) or refused (`rejected`, the previous set kept).
#[derive(Debug, Clone, Default)]
pub struct ReloadCounters(Family<OutcomeLabel, Counter>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

impl ReloadCounters {
    /// Registers the counter, both outcomes at zero.
    pub fn register(registry: &mut Registry) -> Self {
        let counters = Self::default();
        registry.register(
            "tls_reloads",
            "Changes of the TLS files, by outcome: ok (in use for new connections), rejected (the previous set kept)",
            counters.0.clone(),
        );
        for outcome in ["ok", "rejected"] {
            counters
                .0
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(0);
        }
        counters
    }

    /// Counts a change: used (`ok`) or refused.
    pub fn record(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "rejected" };
        self.0.get_or_create(&OutcomeLabel { outcome }).inc();
    }
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
