//! Driving a layered service whose inner service answers at once, without a runtime (shared by
//! the allocation tests).

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower::Service;

/// One request: ready check, call, one poll, the body drained to its end, everything dropped.
pub(crate) fn serve<S, B>(service: &mut S, request: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(ready) = service.poll_ready(&mut cx) else {
        panic!("the service is always ready");
    };
    ready.expect("the service never fails");
    let Poll::Ready(response) = pin!(service.call(request)).poll(&mut cx) else {
        panic!("the inner service answers at once");
    };
    let mut body = pin!(response.expect("the service never fails").into_body());
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(frame)) => drop(frame.expect("the body never fails")),
            Poll::Ready(None) => break,
            Poll::Pending => panic!("the body is ready at once"),
        }
    }
}
