//! The real `catalog` binary, spawned as a user would run it, with a real discount service.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use ecommerce::keys::KeyPaths;
use testkit::{ServiceProcess, run_to_end};
use tokio::net::TcpListener;

fn catalog() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
    // The tests decide where discount is; an outer DISCOUNT_SERVICE_HOST must not leak in.
    command
        .env_remove("DISCOUNT_SERVICE_HOST")
        .env_remove("KEYS_DIR");
    command
}

/// A bare HTTP/1.1 GET, as curl would send it, with `X-USER-ID` if given; returns the
/// whole response.
async fn http_get(addr: SocketAddr, path: &str, user_id: Option<&str>) -> String {
    let header: Vec<(&str, &str)> = user_id.map(|id| ("X-USER-ID", id)).into_iter().collect();
    testkit::http_get(addr, path, &header).await
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
}

#[test]
fn help_explains_the_port_the_discount_host_and_the_data() {
    let mut command = catalog();
    command.arg("--help");
    let (status, stdout, _) = run_to_end(command);
    assert!(status.success());
    for needle in [
        "[PORT]",
        "11080",
        "DISCOUNT_SERVICE_HOST",
        "localhost:11443",
        "--data",
        "--keys-dir",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
}

// Multi-threaded: the in-process discount must keep serving while this thread blocks on
// the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prices_through_discount_over_tls_and_stops_on_sigterm() {
    let (_dir, paths) = testkit::generated_keys();
    let discount = testkit::start_discount(&paths).await;
    let discount_port = discount.addr.port();

    let mut command = catalog();
    command
        .arg("0")
        .env(
            "DISCOUNT_SERVICE_HOST",
            format!("localhost:{discount_port}"),
        )
        .env("KEYS_DIR", paths.dir());
    let mut process = ServiceProcess::spawn(command);
    let addr = loopback(process.wait_until_listening());

    let response = http_get(addr, "/products", Some("1")).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains(r#""discount_value":{"pct":0.1,"value_in_cents":89999}"#),
        "{response}"
    );
    let root = http_get(addr, "/", None).await;
    assert!(root.ends_with("It is working.\n"), "{root}");

    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "log: {}", process.log_text());
    assert!(process.log_text().contains("catalog server stopped"));
}

#[tokio::test]
async fn with_no_keys_and_no_discount_it_makes_keys_and_serves_full_prices() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = catalog();
    command
        .args(["0", "--keys-dir"])
        .arg(&keys_dir)
        .args(["--discount-host", &format!("localhost:{}", closed.port())]);
    let mut process = ServiceProcess::spawn(command);
    let addr = loopback(process.wait_until_listening());

    let paths = KeyPaths::new(&keys_dir);
    let mode = fs::metadata(paths.server_key())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let response = http_get(addr, "/products", Some("1")).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains(r#""slug":"playstation-4-slim""#),
        "{response}"
    );
    assert!(!response.contains("discount_value"), "{response}");
    assert_eq!(process.terminate().code(), Some(0));
    // Said once by the health checks, or by the request if it came before them.
    let log = process.log_text();
    assert!(
        log.contains("discount replica unhealthy")
            || log.contains("serving those products at full price"),
        "{log}"
    );
}

#[test]
fn a_data_file_replaces_the_products() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    fs::write(&data, r#"{"products":[{"id":9,"slug":"only-one","description":"d","price_in_cents":5}],"customers":[]}"#).unwrap();
    let mut command = catalog();
    command
        .args(["0", "--keys-dir"])
        .arg(dir.path().join("keys"))
        .arg("--data")
        .arg(&data);
    let mut process = ServiceProcess::spawn(command);
    let addr = loopback(process.wait_until_listening());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime.block_on(http_get(addr, "/products", None));
    assert!(
        response.ends_with(r#"[{"id":9,"slug":"only-one","description":"d","price_in_cents":5}]"#),
        "{response}"
    );
    assert_eq!(process.terminate().code(), Some(0));
}

#[test]
fn a_bad_or_missing_data_file_stops_start_up_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    fs::write(&broken, "{ not json").unwrap();
    for file in [broken, dir.path().join("missing.json")] {
        let mut command = catalog();
        command
            .args(["0", "--keys-dir"])
            .arg(dir.path().join("keys"))
            .arg("--data")
            .arg(&file);
        let (status, _, stderr) = run_to_end(command);
        assert!(!status.success());
        assert!(stderr.contains(&*file.to_string_lossy()), "{stderr}");
    }
}

#[test]
fn bad_settings_are_refused_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["--discount-host", "http://localhost:11443"][..],
            "TLS only",
        ),
        (&["--discount-host", "localhost"][..], "valid port"),
        (&["--discount-timeout-ms", "0"][..], "discount-timeout-ms"),
        (&["not-a-port"][..], "not-a-port"),
    ] {
        let mut command = catalog();
        command
            .args(args)
            .arg("--keys-dir")
            .arg(dir.path().join("keys"));
        let (status, _, stderr) = run_to_end(command);
        assert!(!status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error_and_a_failed_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = catalog();
    command
        .arg(taken.local_addr().unwrap().port().to_string())
        .args(["--bind", "127.0.0.1", "--keys-dir"])
        .arg(dir.path().join("keys"));
    let (status, _, stderr) = run_to_end(command);
    assert!(!status.success());
    assert!(stderr.contains("cannot listen on port"), "{stderr}");
}

#[test]
fn healthcheck_exits_0_for_a_ready_catalog_and_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = catalog();
    command
        .args(["0", "--bind", "127.0.0.1", "--keys-dir"])
        .arg(dir.path().join("keys"));
    let mut process = ServiceProcess::spawn(command);
    let port = process.wait_until_listening().port().to_string();

    let mut check = catalog();
    check.args(["healthcheck", &port]);
    let (status, stdout, stderr) = run_to_end(check);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "ready");

    assert_eq!(process.terminate().code(), Some(0));
    let mut check = catalog();
    check.args(["healthcheck", &port]);
    let (status, _, stderr) = run_to_end(check);
    assert!(!status.success());
    assert!(stderr.contains("no answer from 127.0.0.1:"), "{stderr}");
}

#[tokio::test]
async fn the_access_log_names_each_request_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = catalog();
    command
        .args(["0", "--log-format", "json", "--keys-dir"])
        .arg(dir.path().join("keys"));
    let mut process = ServiceProcess::spawn(command);
    let line = process.wait_for_line("catalog HTTP server listening");
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr: SocketAddr = started["fields"]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let response = testkit::http_get(
        loopback(addr),
        "/products",
        &[("X-Request-ID", "follow-me")],
    )
    .await;
    assert!(response.contains("x-request-id: follow-me"), "{response}");

    let line = process.wait_for_line("follow-me");
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(entry["fields"]["message"], "answered");
    assert_eq!(entry["fields"]["status"], 200);
    assert_eq!(entry["span"]["request_id"], "follow-me");
    assert_eq!(process.terminate().code(), Some(0));
}

#[test]
fn each_tls_set_a_reload_would_refuse_stops_start_up_before_the_port_is_bound() {
    testkit::assert_each_broken_set_stops_start_up(
        "catalog",
        ecommerce::keys::CertificateUse::Client,
        |port, dir| {
            let mut command = catalog();
            command
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--client-cert", "--keys-dir"])
                .arg(dir);
            command
        },
    );
}
