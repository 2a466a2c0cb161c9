//! Reaching the current request's [`SpanContext`](trace_core::SpanContext) without passing it
//! through every function.
//!
//! The server layer puts the context in the request extensions (read it there, or with the
//! [`RequestContext`] extractor under the `axum` feature) and also makes it *current* while the
//! handler's future is being polled: [`current_context`] returns it from anywhere in that call
//! tree, and the client layer uses it as the parent of outgoing calls. (The mechanism lives in
//! [`trace_core::current`], so the `tracing` bridge can read it too; it is re-exported here.)
//!
//! # Spawned tasks
//!
//! The current context belongs to the future the layer wraps. A task started with
//! `tokio::spawn` is polled on its own, outside that future, so it does not see it. Carry it over
//! explicitly:
//!
//! ```
//! use trace_http::context::{current_context, in_context};
//!
//! async fn handler() {
//!     if let Some(context) = current_context() {
//!         let work = async { /* current_context() is Some(..) in here too */ };
//!         // tokio::spawn(in_context(context, work));
//!         # drop(in_context(context, work));
//!     }
//! }
//! ```

pub use trace_core::current::{WithContext, current_context, in_context};

#[cfg(feature = "axum")]
mod extractor {
    use axum::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum::response::{IntoResponse, Response};
    use http::StatusCode;
    use http::request::Parts;
    use trace_core::SpanContext;

    /// Extracts the request's [`SpanContext`] in an axum handler.
    ///
    /// ```
    /// use trace_http::context::RequestContext;
    ///
    /// async fn get_user(RequestContext(context): RequestContext) -> &'static str {
    ///     let mut query = context.child("load user");
    ///     query.set_attribute("db.system", "postgresql");
    ///     "alice"
    /// }
    /// ```
    ///
    /// Use `Option<RequestContext>` where the handler may run without the trace layer.
    #[derive(Debug, Clone)]
    pub struct RequestContext(pub SpanContext);

    /// The rejection when a handler asks for [`RequestContext`] on a route without the trace
    /// layer: a configuration mistake, answered with a 500 that says so.
    #[derive(Debug, Clone, Copy, thiserror::Error)]
    #[error("no span context in the request: is TraceLayer installed on this route?")]
    pub struct MissingRequestContext;

    impl IntoResponse for MissingRequestContext {
        fn into_response(self) -> Response {
            (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
        type Rejection = MissingRequestContext;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<SpanContext>()
                .cloned()
                .map(Self)
                .ok_or(MissingRequestContext)
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestContext {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<SpanContext>().cloned().map(Self))
        }
    }
}

#[cfg(feature = "axum")]
pub use extractor::{MissingRequestContext, RequestContext};
