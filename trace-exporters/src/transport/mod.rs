//! Transports shared by the exporters that speak HTTP.

#[cfg(feature = "http-transport")]
pub(crate) mod http;

pub(crate) mod tls;
