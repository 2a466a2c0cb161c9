//! What `TraceLayer` allocates on the unsampled path: one request through the layer (call, poll,
//! body drained to its end, everything dropped), counted against the same request through the
//! bare service.
//!
//! `allocation-counter` replaces the global allocator in this test binary and counts the
//! allocations made by the measuring thread only, so tests running in parallel do not disturb
//! each other.

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;

use allocation_counter::AllocationInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower::{Layer, Service, service_fn};
use trace_core::sampler::AlwaysOff;
use trace_core::{NoopCollector, SpanContext, TraceFlags};
use trace_http::TraceLayer;

mod drive;
#[path = "../../trace-core/tests/support/mod.rs"]
mod support;

use drive::serve;

/// An extension a server or router put there before the trace layer runs (axum's `MatchedPath`,
/// `ConnectInfo`, hyper's connection info...).
#[derive(Debug, Clone)]
struct ConnectionId(#[allow(dead_code)] u64);

#[derive(Debug, Clone)]
struct Route(#[allow(dead_code)] &'static str);

#[derive(Debug, Clone)]
struct Peer(#[allow(dead_code)] [u8; 4]);

/// The inner service: checks what the layer handed it (without allocating) and answers at once
/// with a static body.
fn handler(
    expect_context: bool,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> {
    service_fn(move |request: Request<Full<Bytes>>| {
        let context = request.extensions().get::<SpanContext>();
        assert_eq!(context.is_some(), expect_context);
        assert!(context.is_none_or(|c| !c.is_sampled()));
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    })
}

/// Allocations of one request through `service`, after a warm-up request (first use of the
/// thread-local RNG, clocks and current-context slot is not the steady state).
fn allocations<S, B>(mut service: S, prototype: &Request<Full<Bytes>>) -> AllocationInfo
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    serve(&mut service, prototype.clone());
    let request = prototype.clone();
    allocation_counter::measure(|| serve(&mut service, request))
}

/// Allocations the unsampled layer adds to `prototype`'s request. Checks that the layer frees
/// all it allocates, and that it allocates exactly (count and bytes) what inserting a
/// `SpanContext` into a copy of the request's extensions allocates on its own.
fn added_allocations(prototype: &Request<Full<Bytes>>) -> u64 {
    let layer = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
    let bare = allocations(handler(false), prototype);
    let traced = allocations(layer.layer(handler(true)), prototype);
    // The request was allocated before the measurement and is freed inside it (negative
    // current counts): the layer must free all it allocated, no more, no less.
    assert_eq!(
        (traced.count_current, traced.bytes_current),
        (bare.count_current, bare.bytes_current),
        "traced {traced:?}, bare {bare:?}"
    );
    let added = (
        traced.count_total - bare.count_total,
        traced.bytes_total - bare.bytes_total,
    );

    let mut extensions = prototype.extensions().clone();
    let context = SpanContext::new_root(TraceFlags::EMPTY).with_collector(Arc::new(NoopCollector));
    let insert = allocation_counter::measure(|| {
        extensions.insert(context);
    });
    assert_eq!(
        added,
        (insert.count_total, insert.bytes_total),
        "(count, bytes) added by the layer, then by `Extensions::insert` alone"
    );
    added.0
}

fn request(traceparent: Option<&'static str>, extensions: usize) -> Request<Full<Bytes>> {
    let mut request = Request::get("/users/42")
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    *request.headers_mut() = support::realistic_headers();
    if let Some(traceparent) = traceparent {
        request
            .headers_mut()
            .insert("traceparent", HeaderValue::from_static(traceparent));
    }
    let existing = request.extensions_mut();
    match extensions {
        0 => {}
        1 => {
            existing.insert(ConnectionId(7));
        }
        3 => {
            existing.insert(ConnectionId(7));
            existing.insert(Route("/users/{id}"));
            existing.insert(Peer([203, 0, 113, 7]));
        }
        _ => unreachable!("no such test request"),
    }
    request
}

const UNSAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

// The request's `SpanContext` must be in the extensions even when unsampled (handlers read it
// there, and client calls made from them propagate the "not sampled" decision). Inserting it
// costs, in `http::Extensions::insert`:
// - when the request has no extensions yet:
//   1. `Box::<AnyMap>::default()`: the extensions map is an `Option<Box<HashMap>>`, created on
//      first insert;
//   2. the hash table of that map (hashbrown allocates its buckets on the first insert: an empty
//      map owns no memory);
//   3. `Box::new(context)`: every extension is boxed as `Box<dyn AnyClone>`.
// - when the request already has an extension and room in its table (hashbrown's smallest table
//   holds three): only the boxed context (3. above).
// - when the request's extensions table is full (three entries: say axum's `MatchedPath`, its
//   path parameters and `ConnectInfo`): the boxed context and the table regrown to hold seven,
//   2 in all.
// Everything else on the unsampled path (extraction, sampling, the disabled recorder, the
// current-context swap, the response-body wrapper) allocates nothing.

#[test]
fn no_extensions_no_trace_headers() {
    assert_eq!(added_allocations(&request(None, 0)), 3);
}

#[test]
fn no_extensions_unsampled_parent() {
    assert_eq!(added_allocations(&request(Some(UNSAMPLED_PARENT), 0)), 3);
}

#[test]
fn existing_extensions_no_trace_headers() {
    assert_eq!(added_allocations(&request(None, 1)), 1);
}

#[test]
fn existing_extensions_unsampled_parent() {
    assert_eq!(added_allocations(&request(Some(UNSAMPLED_PARENT), 1)), 1);
}

#[test]
fn full_extensions_table() {
    assert_eq!(added_allocations(&request(None, 3)), 2);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests above against a counter that counts nothing.
    let info = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(7_u64));
    });
    assert_eq!(info.count_total, 1);
}
