//! One raw HTTP/1.1 exchange: the request as bytes on the wire, the whole response as
//! text, so that tests see exactly what a client gets (status line, header spelling).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` (which should ask to close the connection) and reads the whole
/// response.
pub async fn http_request(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the response");
    response
}

/// `GET path` with `headers`, and the whole response.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"),
    )
    .await
}
