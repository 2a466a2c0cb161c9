//! The client-side trace layer: a span per outgoing request, and the trace context injected
//! into its headers.

mod layer;
mod service;

pub use layer::ClientTraceLayer;
pub use service::ClientTraceService;

use crate::trace::split_host_port;

/// Where a request is going, as its client span reports it: the host as `server.address` wants
/// it (an IPv6 address without its brackets: `::1`, not `[::1]`) and the port when one is given.
///
/// Host and port come together from one place: the URI's authority when it has one (the
/// absolute form hyper-util's client takes), else the `Host` header (the origin form that
/// hyper's connection-level `SendRequest` takes, `/path` with `Host: host:port`). `None` when
/// neither names a host.
pub(crate) fn server_target<B>(request: &http::Request<B>) -> Option<(&str, Option<u16>)> {
    let uri = request.uri();
    if let Some(host) = uri.host().filter(|host| !host.is_empty()) {
        let bare = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        return Some((bare, uri.port_u16()));
    }
    let host = request.headers().get(http::header::HOST)?.to_str().ok()?;
    // RFC 9110 allows no userinfo in Host; a hand-built one that has it must still not put
    // credentials into `url.full`.
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    split_host_port(host)
}

#[cfg(test)]
mod tests {
    use http::Request;
    use http::header::HOST;

    use super::server_target;

    fn request(uri: &str, host: Option<&[u8]>) -> Request<()> {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).expect("valid test request")
    }

    #[test]
    fn an_absolute_uri_gives_host_and_port_without_userinfo() {
        let r = request("http://user:secret@example.com:8080/x?q=1", None);
        assert_eq!(server_target(&r), Some(("example.com", Some(8080))));
        let r = request("https://example.com/x", None);
        assert_eq!(server_target(&r), Some(("example.com", None)));
    }

    #[test]
    fn an_ipv6_host_loses_its_brackets() {
        let r = request("http://[::1]:9000/x", None);
        assert_eq!(server_target(&r), Some(("::1", Some(9000))));
        let r = request("https://[2001:db8::1]/x", None);
        assert_eq!(server_target(&r), Some(("2001:db8::1", None)));
        let r = request("/x", Some(b"[::1]:9000"));
        assert_eq!(server_target(&r), Some(("::1", Some(9000))));
    }

    #[test]
    fn an_origin_form_request_takes_host_and_port_from_the_host_header() {
        let r = request("/items?x=1", Some(b"api.internal:8443"));
        assert_eq!(server_target(&r), Some(("api.internal", Some(8443))));
        let r = request("/items", Some(b"api.internal"));
        assert_eq!(server_target(&r), Some(("api.internal", None)));
        let r = request("/items", Some(b"user:secret@api.internal:8443"));
        assert_eq!(server_target(&r), Some(("api.internal", Some(8443))));
    }

    #[test]
    fn the_uri_authority_wins_whole_over_the_host_header() {
        let r = request("http://a.example:81/x", Some(b"b.example:82"));
        assert_eq!(server_target(&r), Some(("a.example", Some(81))));
        // No port mixed in from Host: the scheme's default applies to a.example.
        let r = request("http://a.example/x", Some(b"b.example:82"));
        assert_eq!(server_target(&r), Some(("a.example", None)));
    }

    #[test]
    fn no_usable_host_gives_none() {
        assert_eq!(server_target(&request("/items", None)), None);
        assert_eq!(server_target(&request("/items", Some(b""))), None);
        assert_eq!(
            server_target(&request("/items", Some(b"caf\xc3\xa9"))),
            None
        );
    }
}
