//! The fault flags discount knows, and what a flag file says about them before any call:
//! which could be on for some call (armed), and which are written wrong.
//!
//! A flag is **disarmed** when nothing could turn it on: it is missing, its `state` is
//! `DISABLED`, or it has no targeting and its default variant is off (`false`, `0`, `""`).
//! Discount evaluates only armed flags, through OpenFeature, for each call; with every flag
//! disarmed a call costs one atomic load more (BENCHMARKS.md, "Fault flags").
//!
//! The file is judged with flagd's own parser (the one its provider reloads with), so that
//! a file discount calls malformed is one the provider refuses too, and keeps its last good
//! flags for.

use open_feature_flagd::resolver::in_process::{FeatureFlag, FlagParser};
use serde_json::Value;

/// One fault flag: its key in the file, and the type of its variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// The flag's key in flagd's JSON.
    pub key: &'static str,
    /// What its variants must be.
    pub kind: Kind,
    /// Its bit in [`Armed`].
    bit: u8,
}

/// The type of a flag's variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number of milliseconds, 0 for off.
    Millis,
    /// A gRPC status code's name, `""` for off.
    Code,
}

/// Answer with an error status (the name of a gRPC code: `INTERNAL`, `UNAVAILABLE`…).
pub const ERROR: Flag = Flag {
    key: "discountError",
    kind: Kind::Code,
    bit: 1,
};
/// Answer this many milliseconds late.
pub const DELAY: Flag = Flag {
    key: "discountDelayMs",
    kind: Kind::Millis,
    bit: 2,
};
/// Never answer (until the caller's deadline or cancellation).
pub const HANG: Flag = Flag {
    key: "discountHang",
    kind: Kind::Bool,
    bit: 4,
};
/// Spin on the CPU this many milliseconds before answering.
pub const CPU: Flag = Flag {
    key: "discountCpuMs",
    kind: Kind::Millis,
    bit: 8,
};

/// Every fault flag discount evaluates.
pub const ALL: [Flag; 4] = [ERROR, DELAY, HANG, CPU];

/// The set of armed flags, as one byte (stored in an atomic by the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Armed(pub u8);

impl Armed {
    /// No flag armed.
    pub const NONE: Self = Self(0);
    /// Every flag armed: for flags from a flagd server, which discount cannot read ahead.
    pub const ALL: Self = Self(1 | 2 | 4 | 8);

    /// Whether `flag` is armed.
    pub fn has(self, flag: Flag) -> bool {
        self.0 & flag.bit != 0
    }

    fn with(self, flag: Flag) -> Self {
        Self(self.0 | flag.bit)
    }
}

/// What a readable flag file says: the armed flags, and what is wrong in it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// The flags that could be on for some call.
    pub armed: Armed,
    /// One line per fault flag written wrong (it is then disarmed, as the provider would
    /// answer it with an error).
    pub problems: Vec<String>,
}

/// Why a flag file cannot be used at all (the provider keeps its last good flags).
#[derive(Debug, thiserror::Error)]
#[error("not a flagd flag file: {0}")]
pub struct Malformed(String);

/// Reads a flag file's text.
pub fn read(text: &str) -> Result<Reading, Malformed> {
    let parsed = FlagParser::parse_string(text).map_err(|error| Malformed(error.to_string()))?;
    let mut reading = Reading::default();
    for flag in ALL {
        let Some(definition) = parsed.flags.get(flag.key) else {
            continue;
        };
        match judge(flag, definition) {
            Ok(true) => reading.armed = reading.armed.with(flag),
            Ok(false) => {}
            Err(problem) => reading.problems.push(format!("{}: {problem}", flag.key)),
        }
    }
    Ok(reading)
}

/// Whether `definition` could turn `flag` on; an error when it is written wrong.
fn judge(flag: Flag, definition: &FeatureFlag) -> Result<bool, String> {
    if definition.state == "DISABLED" {
        return Ok(false);
    }
    for (name, value) in &definition.variants {
        if !flag.kind.accepts(value) {
            return Err(format!(
                "variant {name:?} is {value}, not {}; the flag stays off",
                flag.kind.expected()
            ));
        }
    }
    let Some(default) = definition.variants.get(&definition.default_variant) else {
        return Err(format!(
            "the default variant {:?} is not among the variants; the flag stays off",
            definition.default_variant
        ));
    };
    let targeted = definition
        .targeting
        .as_ref()
        .is_some_and(|targeting| targeting.as_object().is_none_or(|rules| !rules.is_empty()));
    Ok(targeted || !is_off(default))
}

/// Whether a variant's value means "no fault".
fn is_off(value: &Value) -> bool {
    match value {
        Value::Bool(on) => !on,
        Value::Number(number) => number.as_u64() == Some(0),
        Value::String(text) => text.is_empty(),
        _ => false,
    }
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::Bool => value.is_boolean(),
            Self::Millis => value.is_u64(),
            Self::Code => value
                .as_str()
                .is_some_and(|name| name.is_empty() || code(name).is_some()),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Bool => "true or false",
            Self::Millis => "a whole number of milliseconds",
            Self::Code => "\"\" or a gRPC status code's name (INTERNAL, UNAVAILABLE…)",
        }
    }
}

/// The gRPC code named `name` (as in the gRPC spec: `INTERNAL`, `DEADLINE_EXCEEDED`…),
/// except `OK`, which is no error.
pub fn code(name: &str) -> Option<tonic::Code> {
    use tonic::Code;
    Some(match name {
        "CANCELLED" => Code::Cancelled,
        "UNKNOWN" => Code::Unknown,
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "ABORTED" => Code::Aborted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "INTERNAL" => Code::Internal,
        "UNAVAILABLE" => Code::Unavailable,
        "DATA_LOSS" => Code::DataLoss,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(flags: &str) -> String {
        format!(r#"{{"flags": {{{flags}}}}}"#)
    }

    #[test]
    fn the_demo_file_arms_nothing() {
        let text = include_str!("../../../deploy/flags/demo.flagd.json");
        assert_eq!(read(text).unwrap(), Reading::default());
    }

    #[test]
    fn a_flag_is_armed_by_an_on_default_or_any_targeting() {
        let on = file(
            r#""discountDelayMs": {"state": "ENABLED", "variants": {"off": 0, "slow": 300}, "defaultVariant": "slow"}"#,
        );
        assert_eq!(read(&on).unwrap().armed, Armed(DELAY.bit));
        let targeted = file(
            r#""discountHang": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"if": [{"==": [{"var": "customer"}, 1]}, "on", "off"]}}"#,
        );
        assert_eq!(read(&targeted).unwrap().armed, Armed(HANG.bit));
        let disabled = file(
            r#""discountError": {"state": "DISABLED", "variants": {"on": "INTERNAL"}, "defaultVariant": "on"}"#,
        );
        assert_eq!(read(&disabled).unwrap().armed, Armed::NONE);
        let empty_targeting = file(
            r#""discountCpuMs": {"state": "ENABLED", "variants": {"off": 0}, "defaultVariant": "off", "targeting": {}}"#,
        );
        assert_eq!(read(&empty_targeting).unwrap().armed, Armed::NONE);
    }

    #[test]
    fn a_flag_written_wrong_stays_off_and_says_why() {
        let text = file(
            r#""discountDelayMs": {"state": "ENABLED", "variants": {"slow": "300"}, "defaultVariant": "slow"},
               "discountError": {"state": "ENABLED", "variants": {"on": "BROKEN"}, "defaultVariant": "on"},
               "discountHang": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "missing"}"#,
        );
        let reading = read(&text).unwrap();
        assert_eq!(reading.armed, Armed::NONE);
        assert_eq!(reading.problems.len(), 3, "{:?}", reading.problems);
        assert!(
            reading
                .problems
                .iter()
                .any(|p| p.starts_with("discountDelayMs: variant \"slow\""))
        );
    }

    #[test]
    fn a_file_that_is_not_flagd_json_is_malformed() {
        for text in ["", "{", "[]", r#"{"flags": 3}"#] {
            assert!(read(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn codes_are_named_as_in_the_grpc_spec() {
        assert_eq!(code("UNAVAILABLE"), Some(tonic::Code::Unavailable));
        assert_eq!(code("OK"), None);
        assert_eq!(code("internal"), None);
    }
}
