//! The real `discount` binary, spawned as a user would run it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use ecommerce::keys::{self, KeyPaths};
use ecommerce::pb::discount_client::DiscountClient;
use ecommerce::pb::{Customer, DiscountRequest, Product};
use rustls_pki_types::pem::PemObject;
use testkit::{ServiceProcess, run_to_end};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn discount() -> Command {
    Command::new(env!("CARGO_BIN_EXE_discount"))
}

/// A gRPC client of the discount on `port`, over TLS, trusting the CA in `paths`.
async fn tls_client(port: u16, paths: &KeyPaths) -> DiscountClient<tonic::transport::Channel> {
    ecommerce::install_crypto_provider();
    let ca = Certificate::from_pem(keys::read_trust_roots(paths).unwrap());
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(ca))
        .unwrap()
        .connect()
        .await
        .expect("connects over TLS");
    DiscountClient::new(channel)
}

/// ApplyDiscount for customer 1 and a product at `price`; the discounted price.
async fn discounted(client: &mut DiscountClient<tonic::transport::Channel>, price: i32) -> i32 {
    let response = client
        .apply_discount(DiscountRequest {
            customer: Some(Customer {
                id: 1,
                ..Default::default()
            }),
            product: Some(Product {
                id: 1,
                price_in_cents: price,
                ..Default::default()
            }),
        })
        .await
        .expect("answers")
        .into_inner();
    response
        .product
        .unwrap()
        .discount_value
        .unwrap()
        .value_in_cents
}

#[test]
fn help_explains_the_port_and_the_keys() {
    let mut command = discount();
    command.arg("--help");
    let (status, stdout, _) = run_to_end(command);
    assert!(status.success());
    for needle in ["[PORT]", "11443", "--keys-dir", "KEYS_DIR", "--tls-name"] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let mut command = discount();
    command.arg("--no-such-flag");
    let (status, _, stderr) = run_to_end(command);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

// Multi-threaded: the client's connection must keep running while this thread blocks in
// `terminate`, to answer the server's graceful-shutdown ping as a real client would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_no_keys_creates_them_private_answers_over_tls_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(&keys_dir);
    let mut process = ServiceProcess::spawn(command);
    let addr = process.wait_until_listening();

    let paths = KeyPaths::new(&keys_dir);
    for private in [paths.server_key(), paths.ca_key()] {
        let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", private.display());
    }
    assert!(process.log_text().contains("generated a local CA"));

    let mut client = tls_client(addr.port(), &paths).await;
    assert_eq!(discounted(&mut client, 99999).await, 89999);

    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "log: {}", process.log_text());
    assert!(process.log_text().contains("discount server stopped"));
}

#[test]
fn existing_keys_are_reused_not_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let paths = KeyPaths::new(dir.path());
    keys::ensure_keys(&paths, &[]).unwrap();
    let before = fs::read(paths.server_cert()).unwrap();

    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(dir.path());
    let mut process = ServiceProcess::spawn(command);
    process.wait_until_listening();
    assert_eq!(process.terminate().code(), Some(0));
    assert_eq!(fs::read(paths.server_cert()).unwrap(), before);
    assert!(!process.log_text().contains("generated"));
}

#[test]
fn a_port_in_use_is_a_clear_error_and_a_failed_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut command = discount();
    command
        .arg(taken.local_addr().unwrap().port().to_string())
        .args(["--bind", "127.0.0.1", "--keys-dir"])
        .arg(dir.path());
    let (status, _, stderr) = run_to_end(command);
    assert!(!status.success());
    assert!(stderr.contains("cannot listen on port"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
}

#[test]
fn a_certificate_without_its_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let paths = KeyPaths::new(dir.path());
    keys::ensure_keys(&paths, &[]).unwrap();
    fs::remove_file(paths.server_key()).unwrap();
    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(dir.path());
    let (status, _, stderr) = run_to_end(command);
    assert!(!status.success());
    assert!(stderr.contains("private.key does not"), "{stderr}");
}

#[test]
fn healthcheck_exits_0_for_a_serving_discount_and_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(dir.path());
    let mut process = ServiceProcess::spawn(command);
    let port = process.wait_until_listening().port().to_string();

    let mut check = discount();
    check
        .args(["healthcheck", &port, "--keys-dir"])
        .arg(dir.path());
    let (status, stdout, stderr) = run_to_end(check);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "SERVING");

    assert_eq!(process.terminate().code(), Some(0));
    let mut check = discount();
    check
        .args(["healthcheck", &port, "--keys-dir"])
        .arg(dir.path());
    let (status, _, stderr) = run_to_end(check);
    assert!(!status.success());
    assert!(
        stderr.contains("no answer from https://localhost:"),
        "{stderr}"
    );
}

#[test]
fn gen_keys_makes_a_set_with_the_extra_names_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = discount();
    command
        .args([
            "gen-keys",
            "--tls-name",
            "discount,discount.shop.svc.cluster.local",
            "--keys-dir",
        ])
        .arg(dir.path());
    let (status, stdout, stderr) = run_to_end(command);
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("generated keys in"), "{stdout}");

    let paths = KeyPaths::new(dir.path());
    let identity = keys::read_server_identity(&paths).unwrap();
    let leaf = rustls_pki_types::CertificateDer::from_pem_slice(&identity.cert_chain_pem).unwrap();
    for name in [&b"discount.shop.svc.cluster.local"[..], b"localhost"] {
        assert!(
            leaf.windows(name.len()).any(|w| w == name),
            "{} not in the certificate",
            String::from_utf8_lossy(name)
        );
    }

    let mut again = discount();
    again.args(["gen-keys", "--keys-dir"]).arg(dir.path());
    let (status, stdout, _) = run_to_end(again);
    assert!(status.success());
    assert!(stdout.starts_with("kept the existing keys"), "{stdout}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = discount();
    command
        .args(["0", "--log-format", "json", "--keys-dir"])
        .arg(dir.path());
    let mut process = ServiceProcess::spawn(command);
    let line = process.wait_for_line("listening (TLS)");
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(entry["level"], "INFO");
    assert!(entry["fields"]["address"].as_str().is_some(), "{line}");
    assert_eq!(process.terminate().code(), Some(0));
}

#[test]
fn a_private_key_readable_by_others_stops_start_up_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let paths = KeyPaths::new(dir.path());
    keys::ensure_keys(&paths, &[]).unwrap();
    fs::set_permissions(paths.server_key(), fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(dir.path());
    let (status, _, stderr) = run_to_end(command);
    assert!(!status.success());
    assert!(
        stderr.contains("private.key is readable or writable by other users"),
        "{stderr}"
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

#[test]
fn a_certificate_from_another_ca_stops_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, other) = (
        KeyPaths::new(dir.path().join("a")),
        KeyPaths::new(dir.path().join("b")),
    );
    keys::ensure_keys(&ours, &[]).unwrap();
    keys::ensure_keys(&other, &[]).unwrap();
    fs::copy(other.ca_cert(), ours.ca_cert()).unwrap();
    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(ours.dir());
    let (status, _, stderr) = run_to_end(command);
    assert!(!status.success());
    assert!(
        stderr.contains("not issued by the CA this directory trusts"),
        "{stderr}"
    );
}

// Multi-threaded: the TLS client keeps running while this thread reads the process's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_on_the_tls_port_is_refused_logged_and_disturbs_no_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut command = discount();
    command.args(["0", "--keys-dir"]).arg(dir.path());
    let mut process = ServiceProcess::spawn(command);
    let port = process.wait_until_listening().port();

    // A gRPC client over TLS, connected before and used after.
    let paths = KeyPaths::new(dir.path());
    let mut client = tls_client(port, &paths).await;

    for plaintext in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.write_all(plaintext).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await;
        assert!(read.is_ok(), "the plaintext connection was left hanging");
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/"),
            "answered in plaintext"
        );
    }
    process.wait_for_line("tls accept error");

    // The TLS client connected before is still served.
    assert_eq!(discounted(&mut client, 100).await, 90);
    assert_eq!(process.terminate().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_export_off_a_callers_trace_id_is_on_every_log_line_of_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let mut command = discount();
    command
        .args(["0", "--log-format", "json", "--keys-dir"])
        .arg(&keys_dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let mut process = ServiceProcess::spawn(command);
    let line = process.wait_for_line("listening (TLS)");
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    let port: u16 = entry["fields"]["address"]
        .as_str()
        .and_then(|address| address.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .expect("a port");
    assert!(entry.get("trace_id").is_none(), "not in a trace: {line}");

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut client = tls_client(port, &KeyPaths::new(&keys_dir)).await;
    let mut request = tonic::Request::new(DiscountRequest {
        customer: Some(Customer {
            id: 1,
            ..Default::default()
        }),
        product: Some(Product {
            id: 7,
            price_in_cents: 1000,
            ..Default::default()
        }),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    client.apply_discount(request).await.expect("discounted");

    let line = process.wait_for_line("discount applied");
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(entry["trace_id"], trace_id, "{line}");
    // Recording no span of its own, discount names the caller's, the nearest there is.
    assert_eq!(entry["span_id"], "b7ad6b7169203331", "{line}");
    assert_eq!(entry["span"]["product_id"], 7, "{line}");
    assert_eq!(process.terminate().code(), Some(0));
}

#[test]
fn an_otlp_protocol_this_build_lacks_stops_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = discount();
    command
        .args([
            "0",
            "--otlp-endpoint",
            "http://127.0.0.1:4318",
            "--keys-dir",
        ])
        .arg(dir.path())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
    let (status, _, stderr) = run_to_end(command);
    assert!(!status.success());
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
            && stderr.contains("gRPC only"),
        "{stderr}"
    );
}

#[test]
fn near_expiry_leaves_are_renewed_by_gen_keys_and_at_start_keeping_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let gen_keys = |args: &[&str]| {
        let mut command = discount();
        command
            .arg("gen-keys")
            .args(args)
            .arg("--keys-dir")
            .arg(&keys_dir);
        run_to_end(command)
    };
    // Ten-day leaves, as if issued 80 days ago.
    let (status, _, stderr) = gen_keys(&["--cert-validity-days", "10", "--renew-before-days", "5"]);
    assert!(status.success(), "{stderr}");
    let paths = KeyPaths::new(&keys_dir);
    let server_key = fs::read(paths.server_key()).unwrap();
    let days_left = |path: &std::path::Path| {
        keys::certificate_info(path).unwrap().time_left().as_secs() / 86_400
    };
    assert_eq!(days_left(&paths.server_cert()), 9);

    let (status, stdout, stderr) = gen_keys(&["--renew"]);
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("renewed") && stdout.contains("cert.pem: 9 days left"),
        "{stdout}"
    );
    assert!(stdout.contains("client.pem: 9 days left"), "{stdout}");
    assert_eq!(days_left(&paths.server_cert()), 89);
    assert_eq!(days_left(&paths.client_cert()), 89);
    assert_eq!(fs::read(paths.server_key()).unwrap(), server_key);
    let (status, stdout, _) = gen_keys(&["--renew"]);
    assert!(status.success());
    assert!(
        stdout.contains("kept") && !stdout.contains("renewed"),
        "{stdout}"
    );

    // At start, too: with a 90-day window, the 89 days left call for renewal.
    let mut command = discount();
    command
        .args(["0", "--bind", "127.0.0.1", "--cert-validity-days", "120"])
        .args(["--renew-before-days", "90", "--keys-dir"])
        .arg(&keys_dir);
    let mut process = ServiceProcess::spawn(command);
    process.wait_until_listening();
    assert!(
        process.log_text().contains("renewed a certificate"),
        "{}",
        process.log_text()
    );
    assert_eq!(days_left(&paths.server_cert()), 119);
    assert_eq!(fs::read(paths.server_key()).unwrap(), server_key);
    assert_eq!(process.terminate().code(), Some(0));

    // Without the CA's key, renewal says it cannot.
    fs::remove_file(paths.ca_key()).unwrap();
    let (status, _, stderr) = gen_keys(&["--renew"]);
    assert!(!status.success());
    assert!(
        stderr.contains("cannot renew") && stderr.contains("ca.key is missing"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_expires_while_serving_is_noticed_and_a_renewal_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let paths = KeyPaths::new(dir.path());
    keys::ensure_keys(&paths, &[]).unwrap();
    // A server certificate with six seconds to live (same CA, same key): time enough to
    // start on a busy machine, which checks that the certificate is valid.
    let short = keys::Validity {
        leaf: std::time::Duration::from_secs(6),
        ..keys::Validity::default()
    };
    keys::renew(&paths, &[], &short, std::time::Duration::from_secs(1 << 40)).unwrap();
    let expires = keys::certificate_info(&paths.server_cert())
        .unwrap()
        .not_after;

    let mut command = discount();
    command
        .args([
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-reload-interval-secs",
            "1",
        ])
        .args([
            "--renew-before-days",
            "0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--keys-dir",
        ])
        .arg(dir.path());
    let mut process = ServiceProcess::spawn(command);
    let line = process.wait_for_line("gRPC server listening");
    let port: u16 = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .and_then(|address| address.rsplit(':').next()?.parse().ok())
        .expect("the gRPC port");
    let metrics_addr = process
        .log
        .iter()
        .find(|line| line.contains("metrics listening"))
        .expect("the metrics listener's line")
        .split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .unwrap()
        .to_owned();

    // Noticed while running: an error in the log, and the expiry in the metrics.
    process.wait_for_line("the certificate has expired");
    assert!(std::time::SystemTime::now() >= expires);
    let metrics = scrape_text(&metrics_addr).await;
    let expiry: f64 = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(
                r#"discount_tls_certificate_expiry_timestamp_seconds{certificate="server"} "#,
            )
        })
        .expect("the expiry gauge")
        .parse()
        .unwrap();
    let expires_unix = expires
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(expiry, expires_unix);

    // `gen-keys --renew` brings it back, without a restart.
    let mut renew = discount();
    renew
        .args(["gen-keys", "--renew", "--keys-dir"])
        .arg(dir.path());
    let (status, stdout, stderr) = run_to_end(renew);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("renewed"), "{stdout}");
    process.wait_for_line("new TLS certificates");
    let mut client = tls_client(port, &paths).await;
    assert_eq!(discounted(&mut client, 1000).await, 900);
    assert_eq!(process.terminate().code(), Some(0));
}

/// `GET /metrics` in the text format, from `addr` (host:port).
async fn scrape_text(addr: &str) -> String {
    let addr = addr.parse().expect("an IP:port");
    testkit::http_get(addr, "/metrics", &[("Accept", "text/plain")]).await
}

#[test]
fn each_tls_set_a_reload_would_refuse_stops_start_up_before_the_port_is_bound() {
    testkit::assert_each_broken_set_stops_start_up(
        "discount",
        keys::CertificateUse::Server,
        |port, dir| {
            let mut command = discount();
            command
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--keys-dir"])
                .arg(dir);
            command
        },
    );
}

// Multi-threaded, as above: the client answers the graceful-shutdown ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_flags_from_a_file_that_comes_late_then_turns_bad() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let flags = dir.path().join("flags.flagd.json");
    let mut command = discount();
    command
        .args(["0", "--replica-name", "r9", "--fault-flags"])
        .arg(&flags)
        .arg("--keys-dir")
        .arg(&keys_dir);
    let mut process = ServiceProcess::spawn(command);
    let addr = process.wait_until_listening();
    // Missing at start: one line (before or after the listening one: the file is looked
    // at by a task of its own), and the service serves without faults.
    let needle = "cannot read the flag file";
    let line = match process.log.iter().find(|line| line.contains(needle)) {
        Some(line) => line.clone(),
        None => process.wait_for_line(needle),
    };
    assert!(line.contains(&flags.display().to_string()), "{line}");
    assert!(line.contains("every fault off"), "{line}");
    let paths = KeyPaths::new(&keys_dir);
    let mut client = tls_client(addr.port(), &paths).await;
    assert_eq!(discounted(&mut client, 99999).await, 89999);

    // Written as editors do; aimed at this replica by name.
    let write = |text: &str| {
        let temporary = flags.with_extension("tmp");
        fs::write(&temporary, text).unwrap();
        fs::rename(&temporary, &flags).unwrap();
    };
    write(
        r#"{"flags": {"discountError": {"state": "ENABLED", "variants": {"on": "DATA_LOSS", "off": ""},
            "defaultVariant": "off", "targeting": {"if": [{"==": [{"var": "replica"}, "r9"]}, "on", "off"]}}}}"#,
    );
    process.wait_for_line("following the flag file");
    let status = testkit::poll::until("the flag's error", || {
        let mut client = client.clone();
        async move {
            match client
                .apply_discount(DiscountRequest {
                    customer: None,
                    product: Some(Product::default()),
                })
                .await
            {
                Err(status) => Ok(status),
                Ok(_) => Err("answered".into()),
            }
        }
    })
    .await;
    assert_eq!(status.code(), tonic::Code::DataLoss);
    assert!(status.message().contains("discountError"), "{status:?}");

    write("{\"flags\": ");
    let line = process.wait_for_line("malformed");
    assert!(line.contains("keeping the last good flags"), "{line}");
    let status = client
        .apply_discount(DiscountRequest {
            customer: None,
            product: Some(Product::default()),
        })
        .await
        .expect_err("the last good flags hold");
    assert_eq!(status.code(), tonic::Code::DataLoss);
    assert_eq!(process.terminate().code(), Some(0));
}
