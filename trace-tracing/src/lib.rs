//! A bridge from the `tracing` crate to tracewire.
//!
//! This crate will hold a `tracing-subscriber` layer that turns spans from `#[instrument]` into
//! child spans of the current tracewire trace, and puts trace ids into log lines. Nothing is
//! public yet: it arrives with its issue, built on [`trace_core`].

#![forbid(unsafe_code)]
