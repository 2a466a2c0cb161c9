//! Span names, `{METHOD} {route}`, made once per method and route rather than per request.
//!
//! A route is one of the router's templates, so the names are few; each is made once, kept for
//! the life of the program, and then costs a lookup in a per-thread table (no lock, no
//! allocation) instead of a formatted string per request.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Mutex, OnceLock, PoisonError};

use rustc_hash::FxHashMap;

/// The most names kept. Only routes made per request (a misuse: a route is a template) could
/// reach it; names beyond it are formatted per request, as they would be without this table.
const MAX_NAMES: usize = 4096;

/// The methods the conventions know, and `HTTP` for any other (see [`span_name`]).
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "HTTP",
];

/// Every name made so far, shared by all threads; locked only when a thread meets a name for
/// the first time.
fn made() -> &'static Mutex<FxHashMap<String, &'static str>> {
    static MADE: OnceLock<Mutex<FxHashMap<String, &'static str>>> = OnceLock::new();
    MADE.get_or_init(Default::default)
}

thread_local! {
    /// This thread's view: route -> the name for each method (in [`METHODS`] order).
    static SEEN: RefCell<FxHashMap<Box<str>, [Option<&'static str>; METHODS.len()]>> =
        RefCell::default();
}

/// `{METHOD} {route}`, or the method alone; `HTTP` stands for a method the conventions do not
/// know, as they ask (`_OTHER` is for the attribute only).
pub(crate) fn span_name(method: &'static str, route: Option<&str>) -> Cow<'static, str> {
    let method = if method == "_OTHER" { "HTTP" } else { method };
    let Some(route) = route else {
        return Cow::Borrowed(method);
    };
    let Some(index) = METHODS.iter().position(|known| *known == method) else {
        return Cow::Owned(format!("{method} {route}"));
    };
    let seen = SEEN.with(|seen| seen.borrow().get(route).and_then(|names| names[index]));
    if let Some(name) = seen {
        return Cow::Borrowed(name);
    }
    match keep(method, route) {
        Some(name) => {
            SEEN.with(|seen| {
                seen.borrow_mut()
                    .entry(route.into())
                    .or_insert([None; METHODS.len()])[index] = Some(name);
            });
            Cow::Borrowed(name)
        }
        None => Cow::Owned(format!("{method} {route}")),
    }
}

/// The kept name for `method` and `route`, made now if no thread has made it; `None` once
/// [`MAX_NAMES`] are kept.
fn keep(method: &str, route: &str) -> Option<&'static str> {
    let name = format!("{method} {route}");
    let mut made = made().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(kept) = made.get(&name) {
        return Some(kept);
    }
    if made.len() >= MAX_NAMES {
        return None;
    }
    let kept: &'static str = Box::leak(name.clone().into_boxed_str());
    made.insert(name, kept);
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_once_and_shared() {
        let first = span_name("GET", Some("/names/{id}"));
        assert_eq!(first, "GET /names/{id}");
        let Cow::Borrowed(first) = first else {
            panic!("a kept name is borrowed");
        };
        let again = std::thread::spawn(|| span_name("GET", Some("/names/{id}")))
            .join()
            .expect("no panic");
        let Cow::Borrowed(again) = again else {
            panic!("a kept name is borrowed");
        };
        assert!(std::ptr::eq(first, again), "one copy for every thread");
        assert_eq!(span_name("POST", Some("/names/{id}")), "POST /names/{id}");
        assert_eq!(span_name("_OTHER", Some("/names/{id}")), "HTTP /names/{id}");
        assert_eq!(span_name("GET", None), "GET");
        assert_eq!(span_name("_OTHER", None), "HTTP");
    }
}
