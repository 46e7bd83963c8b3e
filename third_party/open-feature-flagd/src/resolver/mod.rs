#[cfg(any(feature = "rpc", feature = "in-process"))]
pub mod common;
#[cfg(feature = "in-process")]
pub mod in_process;
#[cfg(feature = "rest")]
pub mod rest;
#[cfg(feature = "rpc")]
pub mod rpc;
