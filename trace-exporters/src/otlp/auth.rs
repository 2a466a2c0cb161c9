//! A bearer token kept in a file that something else rotates (a Kubernetes projected service
//! account token, a sidecar's output).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use http::HeaderValue;

use crate::ExportError;

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// The `Authorization: Bearer <token>` value read from a file, read again only when the file's
/// modification time or size changed since the last read (one `stat` per export otherwise).
#[derive(Debug)]
pub(crate) struct BearerTokenFile {
    path: PathBuf,
    stamp: FileStamp,
    value: HeaderValue,
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token file {path} is empty or holds characters not allowed in a header")]
    Invalid { path: PathBuf },
}

impl BearerTokenFile {
    /// Reads the token now, so that a wrong path fails when the exporter is built.
    pub(crate) fn open(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        let path = path.into();
        let (stamp, value) = read(&path)?;
        Ok(Self { path, stamp, value })
    }

    /// The header value for the next request: the token as of now. A file that cannot be read
    /// right now (removed during a rotation) fails the export as retryable, rather than sending
    /// a token that may have been revoked.
    pub(crate) fn authorization(&mut self) -> Result<&HeaderValue, ExportError> {
        let stamp = std::fs::metadata(&self.path)
            .map(|metadata| stamp(&metadata))
            .map_err(|source| {
                ExportError::retryable(TokenFileError::Read {
                    path: self.path.clone(),
                    source,
                })
            })?;
        if stamp != self.stamp {
            let (stamp, value) = read(&self.path).map_err(ExportError::retryable)?;
            self.stamp = stamp;
            self.value = value;
        }
        Ok(&self.value)
    }
}

fn stamp(metadata: &std::fs::Metadata) -> FileStamp {
    FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    }
}

fn read(path: &Path) -> Result<(FileStamp, HeaderValue), TokenFileError> {
    let read_error = |source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    };
    // The stamp is taken before the contents: if the file changes in between, the next export
    // sees a newer stamp and reads it again.
    let stamp = stamp(&std::fs::metadata(path).map_err(read_error)?);
    let contents = std::fs::read_to_string(path).map_err(read_error)?;
    let token = contents.trim();
    let invalid = || TokenFileError::Invalid {
        path: path.to_owned(),
    };
    if token.is_empty() {
        return Err(invalid());
    }
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| invalid())?;
    value.set_sensitive(true);
    Ok((stamp, value))
}
