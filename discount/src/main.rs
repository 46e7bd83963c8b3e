//! `discount [PORT]`: see `discount --help`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use discount::config::{Cli, Command, ServeArgs};
use ecommerce::keys::{self, CertificateUse, KeyPaths, KeysOrigin};
use ecommerce::{listener, shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ecommerce::install_crypto_provider();
    let runtime = ecommerce::runtime::build().context("cannot start the tokio runtime")?;
    let paths = KeyPaths::new(&cli.keys_dir);
    if cli.command.is_some() {
        telemetry::init_logs(cli.log_format, "discount");
    }
    match &cli.command {
        // Tracing starts inside the runtime: the OTLP exporter's channel lives there.
        None => runtime.block_on(async {
            let telemetry = telemetry::init(cli.log_format, "discount", &cli.serve.tracing)?;
            let served = serve(&cli.serve, &paths, &cli.tls_names).await;
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
        Some(Command::GenKeys) => {
            let origin = prepare_keys(&paths, &cli.tls_names)?;
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

fn prepare_keys(paths: &KeyPaths, tls_names: &[String]) -> anyhow::Result<KeysOrigin> {
    let origin = keys::ensure_keys(paths, tls_names)
        .with_context(|| format!("cannot prepare TLS keys in {}", paths.dir().display()))?;
    if origin == KeysOrigin::Generated {
        tracing::info!(dir = %paths.dir().display(), "generated a local CA and server certificate");
    }
    Ok(origin)
}

async fn serve(args: &ServeArgs, paths: &KeyPaths, tls_names: &[String]) -> anyhow::Result<()> {
    // Before anything else can take time: a SIGTERM from now on stops the service cleanly.
    let stop = shutdown::signal();
    prepare_keys(paths, tls_names)?;
    let identity = keys::read_server_identity(paths)?;
    // Expired, or not from this directory's CA: say so now, not in every client's logs.
    // (A directory with no ca.pem, as the old openssl step made, is not checked.)
    if paths.ca_cert().exists() {
        let ca = keys::read_trust_roots(paths)?;
        keys::verify_identity(&identity, &ca, CertificateUse::Server, &paths.server_cert())?;
    }

    let listener = match args.bind {
        Some(ip) => listener::bind(SocketAddr::new(ip, args.port)),
        None => listener::bind_all_interfaces(args.port),
    }
    .with_context(|| format!("cannot listen on port {}", args.port))?;
    let mut config = discount::Config::new(identity);
    if args.require_client_cert {
        config.client_ca_pem = Some(keys::read_trust_roots(paths)?);
    }
    config.health_listener = bind_optional(args.health_listen, "--health-listen")?;
    config.metrics_listener = bind_optional(args.metrics_listen, "--metrics-listen")?;
    config.shutdown_delay = args.shutdown.delay();
    config.max_request_bytes = args.max_message_bytes;

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
