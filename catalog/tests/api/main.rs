//! Black-box tests of the catalog's HTTP API, with the real discount service behind it.

mod faults;
mod flags;
mod helpers;
mod operability;
mod overload;
mod products;
mod rotation;
mod security;
mod shop;
