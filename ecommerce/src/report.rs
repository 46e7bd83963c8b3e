//! Errors as people read them: on one line, with every cause, for a log field or the last
//! words of a binary that cannot start.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

/// `error: cause: cause` on one line. Libraries often repeat a cause's text in their own
/// (tonic and hyper do); each text is written once.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&with_causes(self.0.to_string(), self.0.source()))
    }
}

/// `head`, then `: cause` for each cause from `source` on whose text is not already there:
/// [`Chain`], for an error whose own text is not the best head (a gRPC status's message
/// rather than its whole `Display`, say).
pub fn with_causes(head: String, mut source: Option<&(dyn Error + 'static)>) -> String {
    let mut text = head;
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The end of a binary's `main`: nothing on success; on an error, one line on stderr,
/// `PROGRAM: error: …` with every cause (the alternate form, `{:#}`, which is anyhow's
/// chain), and exit code 1. No backtrace and no "Caused by:" block: whoever reads it (a
/// person, a container's log) gets the file and the reason in one line.
pub fn exit_code<E: fmt::Display>(program: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The one place a binary writes to stderr outside its log lines.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{program}: error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn a_chain_is_one_line_with_each_cause_once() {
        let root = std::io::Error::other("no such file");
        let error = Outer("ca.pem", root);
        assert_eq!(
            Chain(&error).to_string(),
            "cannot load ca.pem: no such file"
        );
        let repeating = Outer(
            "ca.pem: no such file",
            std::io::Error::other("no such file"),
        );
        assert_eq!(
            Chain(&repeating).to_string(),
            "cannot load ca.pem: no such file"
        );
    }
}
