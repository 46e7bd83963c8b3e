//! Binding the services' TCP ports, and accepting connections on them.
//!
//! Both services listen "on all interfaces, IPv4 and IPv6", like the Go and Python services
//! they replace. On Linux one IPv6 socket with `IPV6_V6ONLY` off accepts both families, so a
//! client that resolves `localhost` to `::1` and one that uses `127.0.0.1` reach the same
//! server. Where the kernel has no IPv6 (some containers), we fall back to IPv4 only.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

/// How many connections the kernel queues before `accept`; the same as tokio's default.
const BACKLOG: i32 = 1024;

/// Binds `port` on every interface, IPv4 and IPv6 when the machine has IPv6.
///
/// Port 0 asks the OS for a free port; read it back with `local_addr`.
pub fn bind_all_interfaces(port: u16) -> io::Result<TcpListener> {
    match bind_dual_stack(port) {
        Ok(listener) => Ok(listener),
        // EAFNOSUPPORT / EADDRNOTAVAIL: no IPv6 here. Anything else (the port is taken,
        // permission denied) would fail the same way on IPv4, so report it as it is.
        Err(e) if is_ipv6_unavailable(&e) => {
            tracing::debug!(error = %e, "IPv6 unavailable, listening on IPv4 only");
            bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
        }
        Err(e) => Err(e),
    }
}

/// Binds `port` on `ip` when given (a `--bind` address), else on every interface.
pub fn bind_port(ip: Option<IpAddr>, port: u16) -> io::Result<TcpListener> {
    match ip {
        Some(ip) => bind(SocketAddr::new(ip, port)),
        None => bind_all_interfaces(port),
    }
}

/// Binds exactly `addr` (for instance `127.0.0.1:0` in tests, or a `--bind` address).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        // Be explicit rather than rely on the `net.ipv6.bindv6only` sysctl.
        socket.set_only_v6(!addr.ip().is_unspecified())?;
    }
    listen(socket, addr)
}

fn bind_dual_stack(port: u16) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    let socket = Socket::new(Domain::IPV6, Type::STREAM, None)?;
    socket.set_only_v6(false)?;
    listen(socket, addr)
}

fn listen(socket: Socket, addr: SocketAddr) -> io::Result<TcpListener> {
    // Lets a restarted service bind again while old connections sit in TIME_WAIT. On Linux
    // this never lets two live listeners share the port.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// The next connection on `listener`, with Nagle's algorithm off (answers are one write
/// each; Nagle would only delay them).
///
/// An error to accept (typically EMFILE: out of file descriptors) is logged, and accepting
/// resumes after a short pause: at once would spin, and the kernel keeps the queue
/// meanwhile. Cancel-safe: use it in a `select!` with a shutdown signal.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn is_ipv6_unavailable(e: &io::Error) -> bool {
    // Raw OS codes keep us off libc: EAFNOSUPPORT (97) and EADDRNOTAVAIL (99) on Linux.
    matches!(e.raw_os_error(), Some(97) | Some(99))
        || e.kind() == io::ErrorKind::AddrNotAvailable
        || e.kind() == io::ErrorKind::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dual_stack_listener_accepts_ipv4_clients() {
        let listener = bind_all_interfaces(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connect = TcpStream::connect((Ipv4Addr::LOCALHOST, port));
        let (accepted, connected) = tokio::join!(listener.accept(), connect);
        accepted.unwrap();
        connected.unwrap();
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error() {
        let first = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let taken = first.local_addr().unwrap();
        let err = bind(taken).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
