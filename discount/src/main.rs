//! `discount [PORT]`: see `discount --help`.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use discount::config::Cli;
use ecommerce::keys::{self, KeyPaths, KeysOrigin};
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

    let paths = KeyPaths::new(&cli.keys_dir);
    let origin = keys::ensure_keys(&paths, &cli.tls_names)
        .with_context(|| format!("cannot prepare TLS keys in {}", paths.dir().display()))?;
    if origin == KeysOrigin::Generated {
        tracing::info!(dir = %paths.dir().display(), "generated a local CA and server certificate");
    }
    let identity = keys::read_server_identity(&paths)?;

    let listener = match cli.bind {
        Some(ip) => listener::bind(SocketAddr::new(ip, cli.port)),
        None => listener::bind_all_interfaces(cli.port),
    }
    .with_context(|| format!("cannot listen on port {}", cli.port))?;

    discount::run(listener, discount::Config::new(identity), stop).await?;
    Ok(())
}
