//! Runnable examples of tracewire (the demo, axum, tonic and client apps).
//!
//! The binaries arrive with the issues that build the layers they show; this library holds
//! nothing yet.

#![forbid(unsafe_code)]
