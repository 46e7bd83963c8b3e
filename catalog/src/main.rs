//! `catalog [PORT]`: see `catalog --help`.

use std::net::SocketAddr;

use anyhow::Context;
use catalog::config::Cli;
use catalog::data::Catalog;
use catalog::discounts::DiscountClient;
use clap::Parser;
use ecommerce::keys::{self, KeyPaths};
use ecommerce::{listener, shutdown, telemetry};

fn main() -> anyhow::Result<()> {
    ecommerce::runtime::build()
        .context("cannot start the tokio runtime")?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing();
    ecommerce::install_crypto_provider();
    // Before anything else can take time: a SIGTERM from now on stops the service cleanly.
    let stop = shutdown::signal();

    // Everything is checked before the port is bound.
    let data = match &cli.data {
        Some(path) => Catalog::from_file(path)?,
        None => Catalog::embedded(),
    };
    let paths = KeyPaths::new(&cli.keys_dir);
    let trust_roots_pem = keys::read_or_generate_trust_roots(&paths)
        .with_context(|| format!("cannot prepare TLS keys in {}", paths.dir().display()))?;
    let settings = cli.discount_settings(trust_roots_pem);
    let discounts = DiscountClient::start(&settings).await?;

    let listener = match cli.bind {
        Some(ip) => listener::bind(SocketAddr::new(ip, cli.port)),
        None => listener::bind_all_interfaces(cli.port),
    }
    .with_context(|| format!("cannot listen on port {}", cli.port))?;
    tracing::info!(
        discount = %settings.address,
        replicas = ?discounts.replica_addresses(),
        timeout = ?settings.call_timeout,
        keys = %paths.dir().display(),
        "discount service settings"
    );

    catalog::run(listener, catalog::Config::new(data, discounts), stop).await?;
    Ok(())
}
