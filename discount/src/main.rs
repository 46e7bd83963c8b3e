//! `discount [PORT]`: see `discount --help`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use discount::config::{Cli, Command, ServeArgs};
use discount::tls::TlsFiles;
use ecommerce::keys::{self, KeyPaths, KeysOrigin, LifetimeArgs};
use ecommerce::{listener, report, shutdown, telemetry};

/// mimalloc rather than the system's allocator: see BENCHMARKS.md, "Fewer instructions per
/// request".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    report::exit_code("discount", run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    ecommerce::install_crypto_provider();
    let runtime = ecommerce::runtime::build().context("cannot start the tokio runtime")?;
    let paths = KeyPaths::new(&cli.common.keys_dir);
    if cli.command.is_some() {
        telemetry::init_logs(cli.common.log_format, "discount");
    }
    match &cli.command {
        // Tracing starts inside the runtime: the OTLP exporter's channel lives there.
        None => runtime.block_on(async {
            let telemetry = telemetry::init(cli.common.log_format, "discount", &cli.serve.tracing)?;
            let served = serve(cli, &paths).await;
            telemetry.shutdown().await;
            served
        }),
        Some(Command::Healthcheck { port, host }) => {
            let trust_roots_pem = keys::read_trust_roots(&paths)?;
            // Presented when there is one, in case the service requires client certificates.
            let identity = keys::read_client_identity(&paths).ok();
            runtime.block_on(discount::healthcheck::check(
                host,
                *port,
                &trust_roots_pem,
                identity.as_ref(),
            ))?;
            println!("SERVING");
            Ok(())
        }
        Some(Command::GenKeys { renew }) => {
            let origin = prepare_keys(&paths, &cli.tls_names, &cli.lifetime)?;
            if *renew {
                for renewal in renew_leaves(&paths, &cli.tls_names, &cli.lifetime)? {
                    println!(
                        "{} {}: {}",
                        if renewal.renewed { "renewed" } else { "kept" },
                        renewal.path.display(),
                        renewal.reason
                    );
                }
            }
            println!(
                "{} keys in {}",
                if origin == KeysOrigin::Generated {
                    "generated"
                } else {
                    "kept the existing"
                },
                paths.dir().display()
            );
            Ok(())
        }
    }
}

fn prepare_keys(
    paths: &KeyPaths,
    tls_names: &[String],
    lifetime: &LifetimeArgs,
) -> anyhow::Result<KeysOrigin> {
    let validity = lifetime.validity().map_err(anyhow::Error::msg)?;
    let origin = keys::ensure_keys_with(paths, tls_names, &validity)
        .with_context(|| format!("cannot prepare TLS keys in {}", paths.dir().display()))?;
    if origin == KeysOrigin::Generated {
        tracing::info!(dir = %paths.dir().display(), "generated a local CA and server certificate");
    }
    Ok(origin)
}

/// Reissues the leaves near expiry, or without a requested name, from `ca.key`.
fn renew_leaves(
    paths: &KeyPaths,
    tls_names: &[String],
    lifetime: &LifetimeArgs,
) -> anyhow::Result<Vec<keys::Renewal>> {
    let validity = lifetime.validity().map_err(anyhow::Error::msg)?;
    let renewals = keys::renew(paths, tls_names, &validity, lifetime.renew_before())?;
    for renewal in renewals.iter().filter(|r| r.renewed) {
        tracing::info!(path = %renewal.path.display(), reason = %renewal.reason, "renewed a certificate");
    }
    Ok(renewals)
}

async fn serve(cli: &Cli, paths: &KeyPaths) -> anyhow::Result<()> {
    let args: &ServeArgs = &cli.serve;
    // Before anything else can take time: a SIGTERM from now on stops the service cleanly.
    let stop = shutdown::signal();
    prepare_keys(paths, &cli.tls_names, &cli.lifetime)?;
    // A certificate near its end is renewed at start, where the CA's key is at hand (the
    // demo's own directory; not a mounted Secret, whose issuer renews it). A directory that
    // cannot be written (a read-only volume) keeps its certificates, with a warning: the
    // expiry is logged and exported below, and alerted on.
    if paths.ca_key().exists()
        && let Err(error) = renew_leaves(paths, &cli.tls_names, &cli.lifetime)
    {
        tracing::warn!(
            error = format!("{error:#}"),
            "could not renew the certificates; serving the current ones"
        );
    }
    // The TLS files, judged by the loader every reload uses: what a reload would refuse
    // (a key from another set, a certificate from another CA or expired, an empty file)
    // stops the start here, before the port is bound.
    let files = TlsFiles {
        paths: paths.clone(),
        require_client_cert: args.require_client_cert,
        renew_before: cli.lifetime.renew_before(),
    };
    let loaded = files.load().context("cannot use the TLS files")?;
    files.log_expiries(&loaded);

    let listener = listener::bind_port(args.bind, args.port)
        .with_context(|| format!("cannot listen on port {}", args.port))?;
    let expiries = loaded.expiries();
    let mut config = discount::Config::new(loaded.tls);
    for (certificate, expiry) in expiries {
        config.metrics.certificates.set(certificate, expiry);
    }
    if args.tls_reload_interval_secs > 0 {
        config.tls_reload = Some((
            files,
            std::time::Duration::from_secs(args.tls_reload_interval_secs),
        ));
    }
    config.health_listener = bind_optional(args.health_listen, "--health-listen")?;
    config.metrics_listener = bind_optional(args.metrics_listen, "--metrics-listen")?;
    config.shutdown_delay = args.shutdown.delay();
    config.max_request_bytes = args.max_message_bytes;
    config.fault_flags = args.fault_flags().map_err(anyhow::Error::msg)?;

    discount::run(listener, config, stop).await?;
    Ok(())
}

fn bind_optional(
    addr: Option<SocketAddr>,
    flag: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    addr.map(|addr| {
        listener::bind(addr).with_context(|| format!("cannot listen on {addr} ({flag})"))
    })
    .transpose()
}
