//! The services' real binaries, spawned: a [`ServiceProcess`] whose stderr is read line by
//! line on a thread. Tests wait for the start-up line that carries the bound address
//! (`address=…`), which is logged after the port is bound, so it doubles as a readiness
//! signal: no sleeps.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a test waits for a process to log a line or to exit before failing. Generous:
/// the machine is shared, and a failure here means "never", not "slow".
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A running binary, killed on drop if the test did not stop it.
pub struct ServiceProcess {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far, for assertions and failure messages.
    pub log: Vec<String>,
}

impl ServiceProcess {
    /// Spawns `command` with stderr captured (stdout is discarded).
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle` and returns it.
    ///
    /// Panics with the log so far if the process exits or stays silent for [`PATIENCE`].
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {needle:?} within {PATIENCE:?}; log: {:#?}",
                        self.log
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the process ended before logging {needle:?}; log: {:#?}",
                        self.log
                    )
                }
            }
        }
    }

    /// Waits for the "listening … address=IP:PORT" start-up line and returns that address.
    pub fn wait_until_listening(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening");
        let address = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address= in {line:?}"));
        address
            .parse()
            .unwrap_or_else(|e| panic!("bad address {address:?} in {line:?}: {e}"))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        self.wait()
    }

    /// Waits (at most [`PATIENCE`]) for the process to exit, and collects the rest of its
    /// stderr into [`Self::log`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader thread ends when the pipe closes; take what it read.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.log.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "the process did not exit within {PATIENCE:?}; log: {:#?}",
                    self.log
                );
            }
            // Polling the exit status, not standing in for readiness.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole log so far, as one string.
    pub fn log_text(&self) -> String {
        self.log.join("\n")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to completion (it must exit by itself) and returns its status, stdout
/// and stderr.
pub fn run_to_end(mut command: Command) -> (ExitStatus, String, String) {
    let output = command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts a service with each of [`crate::broken_sets`] of `usage` (the command for a port
/// and a keys directory comes from `command`), on a port the test holds, and asserts that
/// each start fails before binding (a start that reached the bind would report the port
/// taken), with exit code 1 and one error line, `PROGRAM: error: …`, that names the broken
/// file and the reason, and nothing logged as listening.
pub fn assert_each_broken_set_stops_start_up(
    program: &str,
    usage: ecommerce::keys::CertificateUse,
    command: impl Fn(u16, &std::path::Path) -> Command,
) {
    for broken in crate::broken_sets(usage) {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
        let port = held.local_addr().expect("its address").port();
        let mut service = ServiceProcess::spawn(command(port, broken.paths.dir()));
        let status = service.wait();
        let log = service.log_text();
        let case = broken.case;
        assert_eq!(status.code(), Some(1), "{case}: {log}");
        let errors: Vec<&String> = service
            .log
            .iter()
            .filter(|l| l.contains("error:"))
            .collect();
        let (file, reason) = &broken.expected;
        let prefix = format!("{program}: error: cannot use the TLS files: ");
        assert!(
            errors.len() == 1
                && errors[0].starts_with(&prefix)
                && errors[0].contains(&file.display().to_string())
                && errors[0].to_lowercase().contains(&reason.to_lowercase()),
            "{case}: one line naming {} and {reason:?} expected; log: {log}",
            file.display()
        );
        assert!(!log.contains("listening"), "{case}: {log}");
        drop(held);
    }
}
