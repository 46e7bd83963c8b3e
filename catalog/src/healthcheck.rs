//! `catalog healthcheck`: `GET /readyz` on this host, for containers whose image has no
//! shell and no curl.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// No connection, or no complete answer.
    #[error("no answer from {0}")]
    NoAnswer(
        SocketAddr,
        #[source] Box<dyn std::error::Error + Send + Sync>,
    ),
    /// No answer within [`TIMEOUT`].
    #[error("no answer from {0} within {TIMEOUT:?}")]
    Timeout(SocketAddr),
    /// The catalog answered, but not 200.
    #[error("{0} answered /readyz with {1}")]
    NotReady(SocketAddr, hyper::StatusCode),
}

/// Ok when `http://127.0.0.1:port/readyz` answers 200.
pub async fn check(port: u16) -> Result<(), HealthcheckError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let status = tokio::time::timeout(TIMEOUT, readyz_status(addr))
        .await
        .map_err(|_| HealthcheckError::Timeout(addr))?
        .map_err(|e| HealthcheckError::NoAnswer(addr, e))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(HealthcheckError::NotReady(addr, status))
    }
}

async fn readyz_status(
    addr: SocketAddr,
) -> Result<hyper::StatusCode, Box<dyn std::error::Error + Send + Sync>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/readyz")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    Ok(sender.send_request(request).await?.status())
}
