//! `catalog [PORT]`: see `catalog --help`.

use anyhow::Context;
use catalog::config::{Cli, Command, ServeArgs};
use catalog::data::Catalog;
use catalog::discounts::Discounts;
use clap::Parser;
use ecommerce::keys::{self, CertificateUse, KeyPaths};
use ecommerce::{listener, shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ecommerce::install_crypto_provider();
    let runtime = ecommerce::runtime::build().context("cannot start the tokio runtime")?;
    match cli.command {
        // Tracing starts inside the runtime: the OTLP exporter's channel lives there.
        None => runtime.block_on(async {
            let telemetry = telemetry::init(cli.common.log_format, "catalog", &cli.serve.tracing)?;
            let served = serve(&cli.serve, &KeyPaths::new(&cli.common.keys_dir)).await;
            telemetry.shutdown().await;
            served
        }),
        Some(Command::Healthcheck { port }) => {
            telemetry::init_logs(cli.common.log_format, "catalog");
            runtime.block_on(catalog::healthcheck::check(port))?;
            println!("ready");
            Ok(())
        }
    }
}

async fn serve(args: &ServeArgs, paths: &KeyPaths) -> anyhow::Result<()> {
    // Before anything else can take time: a SIGTERM from now on stops the service cleanly.
    let stop = shutdown::signal();

    // Everything is checked before the port is bound.
    let data = match &args.data {
        Some(path) => Catalog::from_file(path)?,
        None => Catalog::embedded(),
    };
    let trust_roots_pem = keys::read_or_generate_trust_roots(paths)
        .with_context(|| format!("cannot prepare TLS keys in {}", paths.dir().display()))?;
    let client_identity = if args.client_cert {
        keys::ensure_client_keys(paths)?;
        let identity = keys::read_client_identity(paths)?;
        let path = paths.client_cert();
        keys::verify_identity(&identity, &trust_roots_pem, CertificateUse::Client, &path)?;
        Some(identity)
    } else {
        None
    };
    // When the certificates it relies on expire: logged (a warning within 30 days) and
    // exported, for an alert. Renewing them is their issuer's job (discount renews the
    // demo's own at its start).
    let metrics = catalog::metrics::Metrics::new();
    metrics.certificates.set(
        "ca",
        keys::log_expiry("ca", &paths.trust_roots(), keys::DEFAULT_RENEW_BEFORE)?,
    );
    if args.client_cert {
        metrics.certificates.set(
            "client",
            keys::log_expiry("client", &paths.client_cert(), keys::DEFAULT_RENEW_BEFORE)?,
        );
    }
    let settings = args.discount_settings(trust_roots_pem, client_identity);
    let discounts = Discounts::start(&settings).await?;

    let listener = listener::bind_port(args.bind, args.port)
        .with_context(|| format!("cannot listen on port {}", args.port))?;
    tracing::info!(
        discount = %settings.address,
        replicas = ?discounts.replica_addresses(),
        timeout = ?settings.call_timeout,
        keys = %paths.dir().display(),
        "discount service settings"
    );

    let mut config = catalog::Config::new(data, discounts);
    config.metrics = metrics;
    if args.tls_reload_interval_secs > 0 {
        let files = catalog::tls_reload::TlsFiles {
            paths: paths.clone(),
            client_cert: args.client_cert,
        };
        config.tls_reload = Some((
            files,
            std::time::Duration::from_secs(args.tls_reload_interval_secs),
        ));
    }
    config.shutdown_delay = args.shutdown.delay();
    config.max_connections = args.max_connections as usize;
    config.admission = args.admission();
    catalog::run(listener, config, stop).await?;
    Ok(())
}
