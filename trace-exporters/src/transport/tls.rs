//! TLS settings shared by the HTTP and gRPC exporters, and the rustls client configuration made
//! from them.

use std::path::PathBuf;

/// How an exporter checks the server it sends to over `https://`.
///
/// The default trusts the web PKI roots (Mozilla's list, compiled in through `webpki-roots`, so the
/// result does not depend on the host's certificate store). A [CA file](Self::with_ca_file)
/// replaces those roots with the certificates it holds: a private collector's CA.
///
/// ```
/// use trace_exporters::TlsConfig;
///
/// let tls = TlsConfig::new().with_ca_file("/etc/otel/ca.pem");
/// assert!(!tls.insecure_skip_verify);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// A PEM file with one or more CA certificates to trust instead of the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// **DANGER: accept any server certificate.** With this set, the certificate chain and the
    /// host name are not checked at all (only the handshake signature is), so anyone on the path
    /// can read and alter the exported spans. Meant for a test collector with a throwaway
    /// self-signed certificate; never for production.
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Web PKI roots, full verification.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificates in this PEM file (instead of the web PKI roots).
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// **DANGER:** turns server certificate verification off (see
    /// [`insecure_skip_verify`](Self::insecure_skip_verify)).
    #[must_use]
    pub fn with_insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }
}

/// Why a TLS client configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("cannot read the CA file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA file held no usable certificate.
    #[error("the CA file {path} holds no usable PEM certificate{detail}")]
    BadCaFile {
        /// The file.
        path: PathBuf,
        /// What was wrong, if known (starts with `: `).
        detail: String,
    },
    /// TLS was asked for, but the crate was built without its `tls` feature.
    #[error("TLS needs trace-exporters' `tls` feature")]
    NotCompiled,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

// Only the exporters that make TLS connections themselves need a rustls configuration.
#[cfg(all(
    feature = "tls",
    any(feature = "http-transport", feature = "otlp-grpc")
))]
pub(crate) use with_rustls::client_config;

#[cfg(all(
    feature = "tls",
    any(feature = "http-transport", feature = "otlp-grpc")
))]
mod with_rustls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    use std::path::Path;

    use super::{TlsConfig, TlsError};

    /// A rustls client configuration for `config`, with the ring provider chosen explicitly so
    /// that it works whichever process-wide default provider (if any) the application installed.
    /// ALPN is left to the connector.
    pub(crate) fn client_config(config: &TlsConfig) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rustls(error.to_string()))?;
        if config.insecure_skip_verify {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth());
        }
        let mut roots = RootCertStore::empty();
        match &config.ca_file {
            Some(path) => add_ca_file(&mut roots, path)?,
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }

    fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
        let pem = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
            path: path.to_owned(),
            source,
        })?;
        let bad = |detail: String| TlsError::BadCaFile {
            path: path.to_owned(),
            detail,
        };
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(&pem) {
            let certificate = certificate.map_err(|error| bad(format!(": {error}")))?;
            roots
                .add(certificate)
                .map_err(|error| bad(format!(": {error}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(String::new()));
        }
        Ok(())
    }

    /// **DANGER:** accepts every server certificate, whoever issued it and whatever name it
    /// carries. Only the handshake signatures are still checked (against the certificate
    /// presented), which proves nothing about who the server is. Used only when
    /// [`TlsConfig::insecure_skip_verify`] is set.
    #[derive(Debug)]
    struct AcceptAnyServerCertificate {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for AcceptAnyServerCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}
