//! What a replica's health checks found, readable on every call without a lock, and how
//! often and how patiently they ask. The checks themselves are [`super::health_check`]'s.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// How often, and how patiently, replicas are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Time between checks of one replica.
    pub interval: Duration,
    /// How long a check may take.
    pub timeout: Duration,
}

impl Default for HealthSettings {
    /// Every second, each with 300 ms to answer.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
        }
    }
}

/// What the last check of a replica found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not checked yet: calls go through (the breaker still guards them).
    Unknown = 0,
    /// SERVING, or a server without the health service that answered.
    Serving = 1,
    /// It answered, and not SERVING.
    NotServing = 2,
    /// No connection, or no answer in time.
    Unreachable = 3,
}

impl Health {
    /// Whether customer calls may go to a replica in this state.
    pub fn admits_calls(self) -> bool {
        matches!(self, Self::Unknown | Self::Serving)
    }

    /// `unknown`, `serving`, `not_serving` or `unreachable`, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Serving => "serving",
            Self::NotServing => "not_serving",
            Self::Unreachable => "unreachable",
        }
    }
}

/// A replica's [`Health`], readable on every call without a lock.
#[derive(Debug)]
pub struct HealthCell(AtomicU8);

impl Default for HealthCell {
    fn default() -> Self {
        Self(AtomicU8::new(Health::Unknown as u8))
    }
}

impl HealthCell {
    /// The health now.
    pub fn get(&self) -> Health {
        Self::decode(self.0.load(Ordering::Relaxed))
    }

    /// Sets it, and returns what it was.
    pub(crate) fn replace(&self, health: Health) -> Health {
        Self::decode(self.0.swap(health as u8, Ordering::Relaxed))
    }

    fn decode(value: u8) -> Health {
        match value {
            1 => Health::Serving,
            2 => Health::NotServing,
            3 => Health::Unreachable,
            _ => Health::Unknown,
        }
    }
}
