//! `discount healthcheck`: a gRPC health check over TLS, for containers whose image has no
//! shell and no curl.

use std::time::Duration;

use ecommerce::keys::PemIdentity;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The address or TLS settings are not usable.
    #[error("cannot set up the connection to {0}")]
    Setup(String, #[source] tonic::transport::Error),
    /// No connection, or no answer within the timeout.
    #[error("no answer from {0}")]
    NoAnswer(String, #[source] tonic::Status),
    /// The service answered, but is not serving.
    #[error("{0} reports {1:?}")]
    NotServing(String, ServingStatus),
}

/// Checks the overall health of the discount service at `https://host:port`, trusting
/// `trust_roots_pem` and presenting `identity` if given (for mutual TLS). Ok when it reports
/// SERVING.
pub async fn check(
    host: &str,
    port: u16,
    trust_roots_pem: &[u8],
    identity: Option<&PemIdentity>,
) -> Result<(), HealthcheckError> {
    let uri = format!("https://{host}:{port}");
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(trust_roots_pem));
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(
            &identity.cert_chain_pem,
            &identity.private_key_pem,
        ));
    }
    let endpoint = Endpoint::from_shared(uri.clone())
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| HealthcheckError::Setup(uri.clone(), e))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    let mut client = HealthClient::new(endpoint.connect_lazy());
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| HealthcheckError::NoAnswer(uri.clone(), status))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(HealthcheckError::NotServing(uri, other)),
    }
}
