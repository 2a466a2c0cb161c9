//! Route templates, kept once for the life of the program, with the span names made from them.
//!
//! A route is one of the router's templates (`/users/{id}`), so there are few; each is copied
//! once into a table every thread shares, and then found per request through a small per-thread
//! cache keyed by the address of the router's own text: no lock, no hash of the text, no
//! reference count. (A router that makes a new text per request, as one nested with
//! `nest_service` does, is found by a hash of the text in a second per-thread map instead.) Both layers use the kept copy: the
//! metrics as the `http_route` label (keyed by its address), the trace layer for the span name
//! `{METHOD} {route}`, made once per method and route rather than formatted per request.

// Without axum no request has a route; the table is kept for the tests.
#![cfg_attr(not(feature = "axum"), allow(dead_code))]

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock, PoisonError};

#[cfg(feature = "axum")]
use axum::extract::MatchedPath;
use rustc_hash::FxHashMap;

use crate::metrics::{KeptText, OVERFLOW_TEXT};
use crate::semconv::{METHOD_NAMES, method_index};

/// The most routes kept. Only routes made per request (a misuse: a route is a template) could
/// reach it; routes beyond it are not kept (see [`known_route`]).
const MAX_ROUTES: usize = 4096;

/// A kept route template and the span names made from it so far.
#[derive(Debug)]
pub(crate) struct KnownRoute {
    /// The template, kept for the life of the program: its address identifies it.
    pub(crate) template: &'static str,
    /// `{METHOD} {template}` for each of [`METHOD_NAMES`] (with `HTTP` for `_OTHER`), made the
    /// first time it is needed.
    names: [OnceLock<&'static str>; METHOD_NAMES.len()],
}

impl KnownRoute {
    /// `{METHOD} {template}` for a name [`method_name`](crate::semconv::method_name) gave.
    fn span_name(&'static self, method: &'static str) -> Option<&'static str> {
        let index = method_index(method)?;
        Some(
            self.names
                .get(index)?
                .get_or_init(|| leak(format!("{} {}", method_for_name(method), self.template))),
        )
    }
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Every route kept so far, shared by all threads; locked only when a thread meets a route
/// its cache does not hold.
fn kept() -> &'static Mutex<FxHashMap<&'static str, &'static KnownRoute>> {
    static KEPT: OnceLock<Mutex<FxHashMap<&'static str, &'static KnownRoute>>> = OnceLock::new();
    KEPT.get_or_init(Default::default)
}

/// Slots in each thread's cache, chosen by the route text's address.
#[cfg(feature = "axum")]
const CACHE_SLOTS: usize = 16;

#[cfg(feature = "axum")]
thread_local! {
    /// The routes this thread met last, with the router's own copy of each. A router hands out
    /// the same shared text for a route on every request; holding a reference to it here means
    /// its address cannot be reused for another text, so the address alone identifies it.
    static RECENT: std::cell::RefCell<[Option<(MatchedPath, &'static KnownRoute)>; CACHE_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; CACHE_SLOTS]) };
}

/// The route a request was routed by, as the router's text and the kept copy.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestRoute<'a> {
    /// The template axum matched (`MatchedPath`), such as `/users/{id}`: bounded cardinality,
    /// unlike the path.
    pub(crate) text: Option<&'a str>,
    /// Its kept copy; `None` without a route, or when the table is full.
    pub(crate) known: Option<&'static KnownRoute>,
}

impl<'a> RequestRoute<'a> {
    /// The route of `request`, from axum's `MatchedPath`.
    pub(crate) fn of<B>(request: &'a http::Request<B>) -> Self {
        #[cfg(feature = "axum")]
        if let Some(path) = request.extensions().get::<MatchedPath>() {
            return Self {
                text: Some(path.as_str()),
                known: known_matched_path(path),
            };
        }
        let _ = request;
        Self::default()
    }

    /// The `http_route` label: the kept copy, or the overflow value when the table is full (a
    /// series per unkept route would defeat the series cap no less than the table's).
    pub(crate) fn label(&self) -> Option<KeptText> {
        self.text.map(|_| {
            self.known
                .map_or(&OVERFLOW_TEXT, |known: &'static KnownRoute| &known.template)
        })
    }

    /// The span name `{METHOD} {route}`, or the method alone; `HTTP` stands for a method the
    /// conventions do not know, as they ask (`_OTHER` is for the attribute only). Borrowed from
    /// the route table for a kept route.
    pub(crate) fn span_name(&self, method: &'static str) -> Cow<'static, str> {
        let Some(route) = self.text else {
            return method_for_name(method).into();
        };
        match self.known.and_then(|known| known.span_name(method)) {
            Some(name) => name.into(),
            None => format!("{} {route}", method_for_name(method)).into(),
        }
    }
}

/// The method as a span name writes it.
pub(crate) fn method_for_name(method: &'static str) -> &'static str {
    if method == "_OTHER" { "HTTP" } else { method }
}

/// The kept route for axum's `path`, through this thread's cache.
#[cfg(feature = "axum")]
fn known_matched_path(path: &MatchedPath) -> Option<&'static KnownRoute> {
    let text = path.as_str();
    // Shared texts are allocations aligned to at least 8 bytes.
    let slot = (text.as_ptr() as usize >> 3) % CACHE_SLOTS;
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let entry = recent.get_mut(slot)?;
        if let Some((held, known)) = entry
            && std::ptr::eq(held.as_str(), text)
        {
            return Some(*known);
        }
        let known = seen_route(text)?;
        *entry = Some((path.clone(), known));
        Some(known)
    })
}

#[cfg(feature = "axum")]
thread_local! {
    /// Every route this thread has met, by its text: the second place to look, for a router
    /// that makes a new text per request (a `Router` under `nest_service` prefixes the outer
    /// route into a fresh string each time), so that it costs a hash rather than the lock.
    static SEEN: std::cell::RefCell<FxHashMap<Box<str>, &'static KnownRoute>> =
        std::cell::RefCell::default();
}

/// The kept route for `text`, through this thread's map of the routes it met.
#[cfg(feature = "axum")]
fn seen_route(text: &str) -> Option<&'static KnownRoute> {
    if let Some(known) = SEEN.with(|seen| seen.borrow().get(text).copied()) {
        return Some(known);
    }
    let known = known_route(text)?;
    SEEN.with(|seen| seen.borrow_mut().insert(text.into(), known));
    Some(known)
}

/// The kept copy of `route`, kept now if no thread has kept it; `None` once [`MAX_ROUTES`] are
/// kept and `route` is not one of them. Takes a lock: per request, go through
/// [`RequestRoute::of`] and its per-thread caches.
#[cold]
pub(crate) fn known_route(route: &str) -> Option<&'static KnownRoute> {
    let mut kept = kept().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = kept.get(route) {
        return Some(known);
    }
    if kept.len() >= MAX_ROUTES {
        return None;
    }
    let template = leak(route.to_owned());
    let known: &'static KnownRoute = Box::leak(Box::new(KnownRoute {
        template,
        names: Default::default(),
    }));
    kept.insert(template, known);
    Some(known)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn a_route_is_kept_once_for_every_thread() {
        let first = known_route("/kept/{id}").expect("room in the table");
        assert_eq!(first.template, "/kept/{id}");
        let other_copy = String::from("/kept/{id}");
        let again = std::thread::spawn(move || known_route(&other_copy).map(|k| k.template))
            .join()
            .expect("no panic")
            .expect("kept");
        assert!(std::ptr::eq(first.template, again), "one copy for all");
    }

    fn route(text: &'static str) -> RequestRoute<'static> {
        RequestRoute {
            text: Some(text),
            known: known_route(text),
        }
    }

    #[test]
    fn span_names_are_made_once_and_shared() {
        let first = route("/names/{id}").span_name("GET");
        assert_eq!(first, "GET /names/{id}");
        let Cow::Borrowed(first) = first else {
            panic!("a kept route's name is borrowed");
        };
        let again = std::thread::spawn(|| route("/names/{id}").span_name("GET"))
            .join()
            .expect("no panic");
        let Cow::Borrowed(again) = again else {
            panic!("a kept route's name is borrowed");
        };
        assert!(std::ptr::eq(first, again), "one copy for every thread");
        let (post, _) = crate::semconv::method_name(&http::Method::POST);
        assert_eq!(route("/names/{id}").span_name(post), "POST /names/{id}");
        assert_eq!(route("/names/{id}").span_name("_OTHER"), "HTTP /names/{id}");
        assert_eq!(RequestRoute::default().span_name("GET"), "GET");
        assert_eq!(RequestRoute::default().span_name("_OTHER"), "HTTP");
        // A route the table could not keep is named per request, and labelled as overflow.
        let unkept = RequestRoute {
            text: Some("/full"),
            known: None,
        };
        assert_eq!(unkept.span_name("GET"), "GET /full");
        assert_eq!(unkept.label().copied(), Some(crate::metrics::OVERFLOW));
        assert_eq!(route("/names/{id}").label().copied(), Some("/names/{id}"));
        assert_eq!(RequestRoute::default().label(), None);
    }

    /// A `Router` nested with `nest_service` hands its handler a new matched-path text on every
    /// request (the outer route prefixed): each still finds the one kept route.
    #[cfg(feature = "axum")]
    #[test]
    fn a_router_that_makes_its_route_text_per_request_finds_the_kept_route() {
        use std::convert::Infallible;
        use std::future::{Future, ready};
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};
        use tower_service::Service;

        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let slot = seen.clone();
        let inner: axum::Router = axum::Router::new().route_service(
            "/items/{id}",
            tower::service_fn(move |request: http::Request<axum::body::Body>| {
                let label = RequestRoute::of(&request).label();
                slot.lock().expect("not poisoned").push(label);
                ready(Ok::<_, Infallible>(http::Response::new(
                    axum::body::Body::empty(),
                )))
            }),
        );
        let mut router: axum::Router = axum::Router::new().nest_service("/shop", inner);
        for id in ["1", "2", "3"] {
            let request = http::Request::get(format!("/shop/items/{id}"))
                .body(axum::body::Body::empty())
                .expect("valid");
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(_) = pin!(router.call(request)).poll(&mut cx) else {
                panic!("answers at once");
            };
        }
        let seen = seen.lock().expect("not poisoned");
        assert_eq!(seen.len(), 3);
        let first = seen[0].expect("labelled");
        assert_eq!(*first, "/shop/items/{id}");
        assert!(
            seen.iter()
                .all(|label| label.is_some_and(|l| std::ptr::eq(l, first))),
            "one kept copy: {seen:?}"
        );
    }

    #[cfg(feature = "axum")]
    #[test]
    fn routers_made_and_dropped_in_turn_keep_their_own_routes() {
        use std::convert::Infallible;
        use std::future::{Future, ready};
        use std::pin::pin;
        use std::task::{Context, Poll, Waker};
        use tower_service::Service;

        // Same length, same allocation size: the allocator may well hand a dropped router's
        // address to the next one's template.
        for template in ["/aaaa/{id}", "/bbbb/{id}", "/aaaa/{id}", "/cccc/{id}"] {
            let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
            let slot = seen.clone();
            let mut router: axum::Router = axum::Router::new().route_service(
                template,
                tower::service_fn(move |request: http::Request<axum::body::Body>| {
                    let route = RequestRoute::of(&request);
                    *slot.lock().expect("not poisoned") = route.label();
                    ready(Ok::<_, Infallible>(http::Response::new(
                        axum::body::Body::empty(),
                    )))
                }),
            );
            let path = template.replace("{id}", "1");
            let request = http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("valid");
            let mut cx = Context::from_waker(Waker::noop());
            let Poll::Ready(_) = pin!(router.call(request)).poll(&mut cx) else {
                panic!("answers at once");
            };
            drop(router);
            assert_eq!(seen.lock().expect("not poisoned").copied(), Some(template));
        }
    }
}
