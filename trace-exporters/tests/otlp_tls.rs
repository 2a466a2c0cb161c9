//! TLS for both OTLP exporters against loopback receivers whose certificate is issued, at test
//! time, by a throwaway CA (rcgen): trusted through a CA file it works, with the default web PKI
//! roots it fails, and with verification skipped it works.

#![cfg(all(feature = "tls", feature = "otlp-http", feature = "otlp-grpc"))]

mod otlp_common;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use otlp_common::{export, temp_path};
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};
use trace_exporters::TlsConfig;
use trace_exporters::otlp::{OtlpError, OtlpGrpcExporter, OtlpHttpExporter};

/// A CA (its PEM in a file) and a server certificate it issued for 127.0.0.1.
struct Pki {
    ca_file: PathBuf,
    server_cert_pem: String,
    server_key_pem: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tracewire test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        let ca_file = temp_path(name);
        std::fs::write(&ca_file, ca.pem()).expect("write the CA file");
        Self {
            ca_file,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

/// An HTTPS OTLP receiver (hyper over tokio-rustls) that counts decodable requests; returns the
/// count and the traces URL.
async fn start_https_receiver(pki: &Pki) -> (Arc<AtomicUsize>, String) {
    let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("server key PEM");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                // A client that rejects our certificate ends the handshake: nothing to serve.
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let counter = counter.clone();
                    async move {
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|body| body.to_bytes())
                            .unwrap_or_default();
                        if ExportTraceServiceRequest::decode(body).is_ok() {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (received, format!("https://{address}/v1/traces"))
}

#[derive(Debug)]
struct CountingService(Arc<AtomicUsize>);

#[tonic::async_trait]
impl TraceService for CountingService {
    async fn export(
        &self,
        _: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A gRPC `TraceService` over TLS (tonic's rustls server); returns its call count and URL.
async fn start_grpcs_receiver(pki: &Pki) -> (Arc<AtomicUsize>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    let received = Arc::new(AtomicUsize::new(0));
    let identity = Identity::from_pem(&pki.server_cert_pem, &pki.server_key_pem);
    let mut server = tonic::transport::Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))
        .expect("server TLS config");
    let router = server.add_service(TraceServiceServer::new(CountingService(received.clone())));
    tokio::spawn(async move {
        let _ = router
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    (received, format!("https://{address}"))
}

/// The three TLS settings to try, and whether each must get through.
fn settings(pki: &Pki) -> [(&'static str, TlsConfig, bool); 3] {
    [
        (
            "custom CA",
            TlsConfig::new().with_ca_file(&pki.ca_file),
            true,
        ),
        ("web PKI roots", TlsConfig::new(), false),
        (
            "skip verify",
            TlsConfig::new().with_insecure_skip_verify(true),
            true,
        ),
    ]
}

#[tokio::test]
async fn https_trusts_the_ca_file_or_skips_verification_and_otherwise_fails() {
    let pki = Pki::new("http-ca.pem");
    let (received, url) = start_https_receiver(&pki).await;
    for (name, tls, accepted) in settings(&pki) {
        let before = received.load(Ordering::SeqCst);
        let mut exporter = OtlpHttpExporter::builder()
            .endpoint(&url)
            .tls(tls)
            .build_http()
            .expect("exporter");
        let result = export(&mut exporter).await;
        assert_eq!(result.is_ok(), accepted, "{name}: {result:?}");
        let arrived = received.load(Ordering::SeqCst) - before;
        assert_eq!(arrived, usize::from(accepted), "{name}");
    }
}

#[tokio::test]
async fn grpc_over_tls_trusts_the_ca_file_or_skips_verification_and_otherwise_fails() {
    let pki = Pki::new("grpc-ca.pem");
    let (received, url) = start_grpcs_receiver(&pki).await;
    for (name, tls, accepted) in settings(&pki) {
        let before = received.load(Ordering::SeqCst);
        let mut exporter = OtlpGrpcExporter::builder()
            .endpoint(&url)
            .tls(tls)
            .build_grpc()
            .expect("exporter");
        let result = export(&mut exporter).await;
        assert_eq!(result.is_ok(), accepted, "{name}: {result:?}");
        let arrived = received.load(Ordering::SeqCst) - before;
        assert_eq!(arrived, usize::from(accepted), "{name}");
    }
}

#[test]
fn an_unusable_ca_file_fails_the_build() {
    let path = temp_path("not-a-ca.pem");
    std::fs::write(&path, "no certificate here").expect("write");
    let result = OtlpHttpExporter::builder()
        .endpoint("https://127.0.0.1:1/v1/traces")
        .tls(TlsConfig::new().with_ca_file(&path))
        .build_http();
    let _ = std::fs::remove_file(&path);
    assert!(matches!(result, Err(OtlpError::Tls(_))), "{result:?}");
    let result = OtlpHttpExporter::builder()
        .tls(TlsConfig::new().with_ca_file(temp_path("no-such-ca.pem")))
        .build_http();
    assert!(matches!(result, Err(OtlpError::Tls(_))), "{result:?}");
}
