//! OTLP over gRPC: one `opentelemetry.proto.collector.trace.v1.TraceService/Export` call per
//! batch, through tonic, with the request body encoded by our own encoder.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::HeaderMap;
use http::header::AUTHORIZATION;
use http::uri::PathAndQuery;
use tonic::Code;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};
use trace_core::Span;

use super::auth::BearerTokenFile;
use super::protobuf::encode_span_field;
use super::response::{protobuf_outcome, retry_delay};
use super::{OtlpEncoder, OtlpError, OtlpExporterBuilder, OtlpProtocol};
use crate::{
    EncodedSpans, ExportError, ExportFuture, ExportOutcome, ExportResult, SpanEncodeFn,
    SpanExporter,
};

/// The gRPC `user-agent` prefix (tonic appends its own), as the HTTP exporters' `User-Agent`.
const USER_AGENT: &str = concat!("tracewire/", env!("CARGO_PKG_VERSION"));

/// The method every OTLP/gRPC trace export calls.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends batches to an OTLP/gRPC receiver (`TraceService/Export`), optionally gzip-compressed.
///
/// UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED, CANCELLED, OUT_OF_RANGE and
/// DATA_LOSS are retryable (after the `google.rpc.RetryInfo` delay when the server sends one);
/// every other error status is permanent. A partial success counts the rejected spans as dropped
/// (`rejected_by_collector`).
///
/// ```
/// use trace_exporters::SpanExporter;
/// use trace_exporters::otlp::OtlpGrpcExporter;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Connects lazily: building needs a Tokio runtime but no collector yet.
/// let exporter = OtlpGrpcExporter::builder()
///     .endpoint("http://localhost:4317")
///     .header("x-tenant", "shop")
///     .build_grpc()
///     .expect("valid settings");
/// assert_eq!(exporter.kind(), "otlp_grpc");
/// # }
/// ```
#[derive(Debug)]
pub struct OtlpGrpcExporter {
    grpc: tonic::client::Grpc<Channel>,
    endpoint: String,
    encoder: OtlpEncoder,
    /// The encoded request, reused between batches.
    body: Vec<u8>,
    /// Custom metadata sent with every call.
    headers: HeaderMap,
    token: Option<BearerTokenFile>,
}

impl OtlpGrpcExporter {
    /// Settings for an OTLP/gRPC exporter; finish with
    /// [`build_grpc`](OtlpExporterBuilder::build_grpc).
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::new(OtlpProtocol::Grpc)
    }
}

impl OtlpExporterBuilder {
    /// An [`OtlpGrpcExporter`] with these settings. The connection is made lazily, at the first
    /// export, so this needs no `.await` — but it must run inside a Tokio runtime (tonic spawns
    /// the channel's task here). Fails for an HTTP protocol, an endpoint that is not an absolute
    /// `http(s)://` URL, a bad header, an unreadable token file or CA file.
    pub fn build_grpc(self) -> Result<OtlpGrpcExporter, OtlpError> {
        if self.protocol != OtlpProtocol::Grpc {
            return Err(OtlpError::WrongProtocol {
                protocol: self.protocol,
                exporter: "OTLP/gRPC",
            });
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(OtlpError::NoRuntime);
        }
        let endpoint_url = self.endpoint_or_default();
        let invalid = |reason: String| OtlpError::InvalidEndpoint {
            endpoint: endpoint_url.clone(),
            reason,
        };
        let endpoint = Endpoint::from_shared(endpoint_url.clone())
            .map_err(|error| invalid(error.to_string()))?
            .user_agent(USER_AGENT)
            .map_err(|error| invalid(error.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let uri = endpoint.uri();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(invalid("not an http:// or https:// URL".to_owned())),
        };
        if uri.host().is_none() {
            return Err(invalid("no host".to_owned()));
        }
        // Everything that can fail is checked before the channel spawns its task.
        let headers = self.header_map()?;
        let token = self.open_token_file()?;
        let channel = if https {
            https_channel(&endpoint, &self)?
        } else {
            endpoint.connect_lazy()
        };
        let mut grpc =
            tonic::client::Grpc::new(channel).accept_compressed(CompressionEncoding::Gzip);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(OtlpGrpcExporter {
            grpc,
            endpoint: endpoint_url.clone(),
            encoder: self.encoder(),
            body: Vec::new(),
            headers,
            token,
        })
    }
}

/// A channel whose connections go through rustls with the builder's TLS settings. Our own
/// connector (rather than tonic's `ClientTlsConfig`) so that HTTP and gRPC share one TLS setup,
/// including the skip-verify option tonic does not offer.
///
/// When tonic's own TLS is compiled in (by us or any crate in the build), it refuses to hand an
/// `https` URI to a custom connector. So the channel gets the `http` form of the URI for
/// connecting, the real `https` origin for the requests' `:scheme` and `:authority`, and the
/// connector puts the `https` back before the TLS handshake.
#[cfg(feature = "tls")]
fn https_channel(endpoint: &Endpoint, builder: &OtlpExporterBuilder) -> Result<Channel, OtlpError> {
    let config = crate::transport::tls::client_config(&builder.tls)?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http2()
        .wrap_connector(http);
    let origin = endpoint.uri().clone();
    let invalid = |reason: String| OtlpError::InvalidEndpoint {
        endpoint: origin.to_string(),
        reason,
    };
    let plain = with_scheme(&origin, http::uri::Scheme::HTTP)
        .map_err(|error| invalid(error.to_string()))?;
    let endpoint = Endpoint::from(plain)
        .origin(origin.clone())
        .user_agent(USER_AGENT)
        .map_err(|error| invalid(error.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    Ok(endpoint.connect_with_connector_lazy(tls_connector::RestoreHttps(connector)))
}

/// `uri` with another scheme.
#[cfg(feature = "tls")]
fn with_scheme(uri: &http::Uri, scheme: http::uri::Scheme) -> Result<http::Uri, http::Error> {
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(scheme);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    Ok(http::Uri::from_parts(parts)?)
}

#[cfg(feature = "tls")]
mod tls_connector {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http::Uri;
    use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;
    use tonic::codegen::Service;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    /// Connects with TLS whatever the scheme of the URI it is given (see `https_channel`).
    #[derive(Debug, Clone)]
    pub(super) struct RestoreHttps(pub(super) HttpsConnector<HttpConnector>);

    impl Service<Uri> for RestoreHttps {
        type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, uri: Uri) -> Self::Future {
            match super::with_scheme(&uri, http::uri::Scheme::HTTPS) {
                Ok(uri) => Box::pin(self.0.call(uri)),
                Err(error) => Box::pin(std::future::ready(Err(error.into()))),
            }
        }
    }
}

#[cfg(not(feature = "tls"))]
fn https_channel(endpoint: &Endpoint, _: &OtlpExporterBuilder) -> Result<Channel, OtlpError> {
    Err(OtlpError::InvalidEndpoint {
        endpoint: endpoint.uri().to_string(),
        reason: "https needs trace-exporters' `tls` feature".to_owned(),
    })
}

impl SpanExporter for OtlpGrpcExporter {
    fn kind(&self) -> &'static str {
        "otlp_grpc"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(ExportOutcome::delivered());
            }
            self.body.clear();
            self.encoder.encode_protobuf(batch, &mut self.body);
            self.send(batch.len()).await
        })
    }

    fn span_encoder(&self) -> Option<SpanEncodeFn> {
        Some(encode_span_field)
    }

    fn export_encoded<'a>(&'a mut self, batch: &'a EncodedSpans) -> ExportFuture<'a> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(ExportOutcome::delivered());
            }
            self.body.clear();
            self.encoder.encode_protobuf_encoded(batch, &mut self.body);
            self.send(batch.spans()).await
        })
    }
}

impl OtlpGrpcExporter {
    /// Sends the request encoded in `self.body`, which holds `spans` spans.
    async fn send(&mut self, spans: usize) -> ExportResult {
        let body = super::take_body(&mut self.body);
        let mut headers = self.headers.clone();
        if let Some(token) = &mut self.token {
            headers.insert(AUTHORIZATION, token.authorization()?.clone());
        }
        let request = tonic::Request::from_parts(
            MetadataMap::from_headers(headers),
            http::Extensions::default(),
            body,
        );
        self.grpc
            .ready()
            .await
            .map_err(|error| ExportError::retryable(format!("gRPC {}: {error}", self.endpoint)))?;
        let response = self
            .grpc
            .unary(request, PathAndQuery::from_static(EXPORT_PATH), PreEncoded)
            .await
            .map_err(|status| classify_status(&self.endpoint, &status))?;
        Ok(protobuf_outcome(response.get_ref(), spans))
    }
}

/// The export error for a gRPC status, following the OTLP spec's list of retryable codes.
fn classify_status(endpoint: &str, status: &tonic::Status) -> ExportError {
    let message = format!(
        "gRPC export to {endpoint}: {:?}: {}",
        status.code(),
        status.message()
    );
    let retry_after = retry_delay(status.details());
    match status.code() {
        // Retryable only when the server says it can recover (a `RetryInfo`); otherwise a quota
        // that will not lift would hold the batch for the whole retry budget.
        Code::ResourceExhausted if retry_after.is_none() => ExportError::Permanent { message },
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::Retryable {
            message,
            retry_after,
        },
        _ => ExportError::Permanent { message },
    }
}

/// A codec whose requests are bytes we already encoded and whose responses stay raw bytes
/// (decoded afterwards, by hand): tonic frames, compresses and sends them.
#[derive(Debug, Clone, Copy, Default)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_follow_the_spec() {
        let retryable = |code| classify_status("x", &tonic::Status::new(code, "m")).is_retryable();
        assert!(retryable(Code::Unavailable));
        assert!(
            !retryable(Code::ResourceExhausted),
            "without RetryInfo a quota is not worth waiting for"
        );
        assert!(retryable(Code::DeadlineExceeded));
        assert!(!retryable(Code::InvalidArgument));
        assert!(!retryable(Code::Unauthenticated));
        assert!(!retryable(Code::PermissionDenied));
    }

    #[test]
    fn building_outside_a_runtime_is_an_error() {
        assert!(matches!(
            OtlpGrpcExporter::builder().build_grpc(),
            Err(OtlpError::NoRuntime)
        ));
    }
}
