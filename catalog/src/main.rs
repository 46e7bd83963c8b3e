//! `catalog [PORT]`: see `catalog --help`.

use std::process::ExitCode;

use anyhow::Context;
use catalog::config::{Cli, Command, ServeArgs};
use catalog::data::Catalog;
use catalog::discounts::Discounts;
use catalog::tls::TlsFiles;
use clap::Parser;
use ecommerce::keys::{self, KeyPaths};
use ecommerce::{listener, report, shutdown, telemetry};

/// mimalloc rather than the system's allocator: see BENCHMARKS.md, "Fewer instructions per
/// request".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    report::exit_code("catalog", run(cli))
}

fn run(cli: Cli) -> anyhow::Result<()> {
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
    let prepare = || -> Result<(), keys::KeyError> {
        keys::ensure_trust_roots(paths)?;
        if args.client_cert {
            keys::ensure_client_keys(paths)?;
        }
        Ok(())
    };
    prepare().with_context(|| format!("cannot prepare TLS keys in {}", paths.dir().display()))?;
    // The TLS files, judged by the loader every reload uses: what a reload would refuse
    // stops the start here.
    let files = TlsFiles {
        paths: paths.clone(),
        client_cert: args.client_cert,
    };
    let tls = files.load().context("cannot use the TLS files")?;
    // When the certificates it relies on expire: logged (a warning within 30 days) and
    // exported, for an alert. Renewing them is their issuer's job (discount renews the
    // demo's own at its start).
    files.log_expiries(&tls);
    let metrics = catalog::metrics::Metrics::new();
    for (certificate, expiry) in tls.expiries() {
        metrics.certificates.set(certificate, expiry);
    }
    let settings = args.discount_settings(tls.trust_roots_pem, tls.identity);
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
