//! OTLP over HTTP: one POST of a protobuf or JSON `ExportTraceServiceRequest` per batch.

use std::io::Write;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use trace_core::Span;

use super::auth::BearerTokenFile;
use super::protobuf::encode_span_field;
use super::response::{json_outcome, protobuf_outcome};
use super::{OtlpEncoder, OtlpError, OtlpExporterBuilder, OtlpProtocol};
use crate::transport::http::{HttpTransport, HttpTransportError, OTLP_RETRYABLE_STATUSES};
use crate::{
    EncodedSpans, ExportError, ExportFuture, ExportOutcome, ExportResult, SpanEncodeFn,
    SpanExporter,
};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Sends batches to an OTLP/HTTP receiver (`POST /v1/traces`), as protobuf or JSON, optionally
/// gzip-compressed. A partial success in the response counts the rejected spans as dropped
/// (`rejected_by_collector`); 429 and 502–504 are retryable, honouring `Retry-After`.
///
/// ```
/// use trace_exporters::{Resource, SpanExporter};
/// use trace_exporters::otlp::{OtlpHttpExporter, OtlpProtocol};
///
/// let exporter = OtlpHttpExporter::builder()
///     .endpoint("http://localhost:4318/v1/traces")
///     .protocol(OtlpProtocol::HttpJson)
///     .resource(Resource::new("checkout"))
///     .build_http()
///     .expect("valid settings");
/// assert_eq!(exporter.kind(), "otlp_http");
/// ```
#[derive(Debug)]
pub struct OtlpHttpExporter {
    transport: HttpTransport,
    encoder: OtlpEncoder,
    json: bool,
    gzip: bool,
    /// The encoded (uncompressed) request, reused between batches.
    body: Vec<u8>,
    token: Option<BearerTokenFile>,
    /// Per-request headers: the current `Authorization` when a token file is set.
    request_headers: HeaderMap,
}

impl OtlpHttpExporter {
    /// Settings for an OTLP/HTTP exporter (protobuf unless [changed](OtlpExporterBuilder::protocol)
    /// to JSON); finish with [`build_http`](OtlpExporterBuilder::build_http).
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::new(OtlpProtocol::HttpProtobuf)
    }

    /// Compresses the encoded request in `self.body` if asked to, and takes it as a body.
    fn finish_body(&mut self) -> Result<Bytes, ExportError> {
        if !self.gzip {
            return Ok(super::take_body(&mut self.body));
        }
        // Level 1: span batches compress well even at the fastest level, and the export task
        // shares its core with the application.
        let mut gzip = GzEncoder::new(
            Vec::with_capacity(self.body.len() / 4 + 64),
            Compression::fast(),
        );
        gzip.write_all(&self.body)
            .and_then(|()| gzip.finish())
            .map(Bytes::from)
            .map_err(|error| ExportError::permanent(format!("gzip: {error}")))
    }

    /// Posts the request encoded in `self.body`, which holds `spans` spans.
    async fn send(&mut self, spans: usize) -> ExportResult {
        let body = self.finish_body()?;
        let extra = match &mut self.token {
            Some(token) => {
                let value = token.authorization()?.clone();
                self.request_headers.insert(AUTHORIZATION, value);
                Some(&self.request_headers)
            }
            None => None,
        };
        let (content_type, decode): (_, fn(&[u8], usize) -> ExportOutcome) = if self.json {
            (JSON, json_outcome)
        } else {
            (PROTOBUF, protobuf_outcome)
        };
        let encoding = self.gzip.then_some("gzip");
        let response = self
            .transport
            .post_with_headers(content_type, encoding, body, extra)
            .await?;
        Ok(decode(&response.body, spans))
    }
}

impl OtlpExporterBuilder {
    /// An [`OtlpHttpExporter`] with these settings. Fails for the `grpc` protocol, an endpoint
    /// that is not an absolute `http(s)://` URL, a bad header, an unreadable token file or CA file.
    pub fn build_http(self) -> Result<OtlpHttpExporter, OtlpError> {
        if !self.protocol.is_http() {
            return Err(OtlpError::WrongProtocol {
                protocol: self.protocol,
                exporter: "OTLP/HTTP",
            });
        }
        let endpoint = self.endpoint_or_default();
        let headers = self.header_map()?;
        let transport =
            HttpTransport::with_tls(&endpoint, headers, &self.tls, OTLP_RETRYABLE_STATUSES)
                .map_err(|error| match error {
                    HttpTransportError::Tls(error) => OtlpError::Tls(error),
                    other => OtlpError::InvalidEndpoint {
                        endpoint: endpoint.clone(),
                        reason: other.to_string(),
                    },
                })?;
        Ok(OtlpHttpExporter {
            transport,
            encoder: self.encoder(),
            json: self.protocol == OtlpProtocol::HttpJson,
            gzip: self.gzip,
            body: Vec::new(),
            token: self.open_token_file()?,
            request_headers: HeaderMap::new(),
        })
    }
}

impl SpanExporter for OtlpHttpExporter {
    fn kind(&self) -> &'static str {
        "otlp_http"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(ExportOutcome::delivered());
            }
            self.body.clear();
            if self.json {
                self.encoder
                    .encode_json(batch, &mut self.body)
                    .map_err(|error| {
                        ExportError::permanent(format!("OTLP/JSON encoding: {error}"))
                    })?;
            } else {
                self.encoder.encode_protobuf(batch, &mut self.body);
            }
            self.send(batch.len()).await
        })
    }

    /// Protobuf only: OTLP/JSON has no per-span unit to write ahead (its ids and enums are
    /// spelled differently per field), so the JSON exporter takes whole batches of spans.
    fn span_encoder(&self) -> Option<SpanEncodeFn> {
        (!self.json).then_some(encode_span_field as SpanEncodeFn)
    }

    fn export_encoded<'a>(&'a mut self, batch: &'a EncodedSpans) -> ExportFuture<'a> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(ExportOutcome::delivered());
            }
            if self.json {
                return Err(ExportError::permanent(
                    "the OTLP/JSON exporter takes spans, not encoded spans",
                ));
            }
            self.body.clear();
            self.encoder.encode_protobuf_encoded(batch, &mut self.body);
            self.send(batch.spans()).await
        })
    }
}
