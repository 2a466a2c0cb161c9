//! The built-in traffic generator, so the viewer and `/metrics` have content at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// At most this many generated requests in flight; a tick that finds them all busy is skipped.
const MAX_IN_FLIGHT: usize = 64;

/// The path of generated request number `n`: mostly users, now and then slow, failing,
/// unknown or streaming requests.
fn path_of(n: u64) -> String {
    if n.is_multiple_of(29) {
        "/stream".to_owned()
    } else if n.is_multiple_of(11) {
        "/fail".to_owned()
    } else if n.is_multiple_of(13) {
        "/users/404".to_owned()
    } else if n.is_multiple_of(7) {
        format!("/slow?ms={}", 50 + fastrand::u64(0..350))
    } else {
        format!("/users/{}", 1 + fastrand::u64(0..50))
    }
}

/// Sends `rate` requests a second to the front service until `stop` resolves. Every
/// `debug_every`th request carries `jaeger-debug-id: load-{n}`.
pub(crate) async fn generate(
    front: SocketAddr,
    rate: f64,
    debug_every: u64,
    stop: impl Future<Output = ()>,
) {
    if !(rate.is_finite() && rate > 0.0) {
        return;
    }
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stop = std::pin::pin!(stop);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticks.tick() => {}
        }
        n += 1;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let mut request = Request::get(format!("http://{front}{}", path_of(n)));
        if debug_every != 0 && n.is_multiple_of(debug_every) {
            request = request.header("jaeger-debug-id", format!("load-{n}"));
        }
        let Ok(request) = request.body(Empty::new()) else {
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            if let Ok(response) = client.request(request).await {
                let _ = response.into_body().collect().await;
            }
            drop(permit);
        });
    }
}
