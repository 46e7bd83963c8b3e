//! Black-box tests of the discount service over real TLS sockets.

mod grpc;
mod helpers;
mod hostile;
mod mtls;
mod operability;
mod reload;
