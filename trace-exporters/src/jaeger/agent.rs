//! The Jaeger agent exporter: `Agent.emitBatch` in Thrift compact, one batch per datagram.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use tokio::net::UdpSocket;
use trace_core::Span;

use super::thrift::{self, Compact, Protocol as _, Type};
use super::{JaegerError, ProcessTags, agent_endpoint};
use crate::export::{ExportError, ExportFuture, ExportOutcome, ExportResult, SpanExporter};
use crate::resource::Resource;

/// Where spans go when no endpoint is set: a local agent's compact Thrift port.
pub const DEFAULT_AGENT_ENDPOINT: &str = "127.0.0.1:6831";
/// The largest datagram sent unless told otherwise: the Jaeger agent's own default.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 65_000;
/// The smallest settable maximum datagram size.
pub const MIN_PACKET_SIZE: usize = 512;
/// The largest settable maximum datagram size: the largest UDP payload over IPv4.
pub const MAX_PACKET_SIZE: usize = 65_507;

/// The `reason` for spans too large for one datagram even on their own.
const TOO_LARGE: &str = "too_large";
/// The `reason` for spans not sent because a datagram of the batch could not be sent.
const SEND_FAILED: &str = "send_failed";

/// The Thrift compact protocol's message header: protocol id `0x82`, then version 1 with message
/// type 4 (oneway) in the top three bits.
const MESSAGE_HEADER: [u8; 2] = [0x82, (4 << 5) | 1];
/// The most bytes the message's sequence id takes as a varint.
const MAX_SEQ_ID_LEN: usize = 5;
/// The stops that end the `Batch` struct and the `emitBatch` argument struct.
const TRAILER: [u8; 2] = [0, 0];

/// Sends spans to a Jaeger agent over UDP as Thrift compact `Agent.emitBatch` calls.
///
/// A batch larger than the maximum datagram size is split over as many datagrams as it needs,
/// each carrying the process. A span that cannot fit in a datagram even alone is dropped and
/// counted as `too_large`. UDP send errors (the agent is not listening, no route) are retryable.
///
/// Building needs no runtime and does no I/O beyond opening the socket: an address literal is
/// bound and connected with a standard socket right away (and handed to tokio at the first
/// export); a host name is resolved at the first export, and again after a send error, so an
/// agent that moves to a new address is found again.
///
/// ```
/// use trace_exporters::{Resource, SpanExporter};
/// use trace_exporters::jaeger::JaegerAgentExporter;
///
/// let exporter = JaegerAgentExporter::builder()
///     .endpoint("127.0.0.1:6831")
///     .resource(Resource::new("checkout"))
///     .build()?;
/// assert_eq!(exporter.kind(), "jaeger_agent");
/// # Ok::<(), trace_exporters::jaeger::JaegerError>(())
/// ```
pub struct JaegerAgentExporter {
    endpoint: String,
    socket: AgentSocket,
    process: ProcessTags,
    max_packet_size: usize,
    /// The message after its sequence id, up to the span list's element count: the method name,
    /// the argument header, the process and the span list's field header.
    head: Vec<u8>,
    /// The batch's spans, encoded one after another.
    spans: Vec<u8>,
    /// Where each span of `spans` ends.
    span_ends: Vec<usize>,
    /// The spans of the datagram being filled.
    group: Vec<Range<usize>>,
    /// The datagram being sent.
    packet: Vec<u8>,
    seq_id: u32,
}

enum AgentSocket {
    /// Bound and connected at build time, not yet registered with the runtime.
    Std(std::net::UdpSocket),
    /// Ready.
    Tokio(UdpSocket),
    /// To be resolved and connected at the next export.
    Closed,
}

impl JaegerAgentExporter {
    /// A builder with the defaults: [`DEFAULT_AGENT_ENDPOINT`], [`DEFAULT_MAX_PACKET_SIZE`],
    /// `Resource::default()`.
    pub fn builder() -> JaegerAgentExporterBuilder {
        JaegerAgentExporterBuilder::default()
    }

    /// The agent's `host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The largest datagram this exporter sends.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    fn encode_head(&mut self) {
        self.head.clear();
        thrift::varint(&mut self.head, "emitBatch".len() as u64);
        self.head.extend_from_slice(b"emitBatch");
        let mut last = 0;
        Compact::field(&mut self.head, &mut last, 1, Type::Struct);
        thrift::write_batch_head::<Compact>(
            &mut self.head,
            self.process.service_name(),
            self.process.tags(),
        );
    }

    fn learn_ip(&mut self, local: Option<SocketAddr>) {
        if let Some(ip) = local.map(|address| address.ip())
            && self.process.wants_ip()
            && !ip.is_unspecified()
        {
            self.process.set_ip(ip);
            self.encode_head();
        }
    }

    /// The socket, registered with the runtime, resolving and connecting first if need be.
    async fn ready_socket(&mut self) -> Result<(), ExportError> {
        match std::mem::replace(&mut self.socket, AgentSocket::Closed) {
            AgentSocket::Tokio(socket) => self.socket = AgentSocket::Tokio(socket),
            AgentSocket::Std(socket) => {
                let socket = UdpSocket::from_std(socket).map_err(|error| {
                    ExportError::retryable(format!("UDP socket to {}: {error}", self.endpoint))
                })?;
                self.socket = AgentSocket::Tokio(socket);
            }
            AgentSocket::Closed => {
                let addresses: Vec<SocketAddr> = tokio::net::lookup_host(self.endpoint.as_str())
                    .await
                    .map_err(|error| {
                        ExportError::retryable(format!("resolving {}: {error}", self.endpoint))
                    })?
                    .collect();
                // IPv4 first, as Jaeger's own clients do: agents commonly listen on IPv4 only,
                // while `localhost` may resolve to `::1` first.
                let address = addresses
                    .iter()
                    .find(|address| address.is_ipv4())
                    .or_else(|| addresses.first())
                    .copied()
                    .ok_or_else(|| {
                        ExportError::retryable(format!("{} has no address", self.endpoint))
                    })?;
                let socket = UdpSocket::bind(unspecified_for(address))
                    .await
                    .map_err(|error| {
                        ExportError::retryable(format!("UDP socket to {}: {error}", self.endpoint))
                    })?;
                socket.connect(address).await.map_err(|error| {
                    ExportError::retryable(format!("UDP socket to {address}: {error}"))
                })?;
                self.learn_ip(socket.local_addr().ok());
                self.socket = AgentSocket::Tokio(socket);
            }
        }
        Ok(())
    }

    async fn send_batch(&mut self, batch: &[Span]) -> ExportResult {
        if batch.is_empty() {
            return Ok(ExportOutcome::delivered());
        }
        self.ready_socket().await?;

        self.spans.clear();
        self.span_ends.clear();
        for span in batch {
            thrift::write_span::<Compact>(&mut self.spans, span);
            self.span_ends.push(self.spans.len());
        }

        let fixed = MESSAGE_HEADER.len() + MAX_SEQ_ID_LEN + self.head.len() + TRAILER.len();
        let limit = self.max_packet_size;
        let mut too_large = 0u64;
        let mut sent_spans = 0usize;
        let mut datagrams = 0usize;
        self.group.clear();
        let mut group_bytes = 0usize;
        let mut start = 0;
        for index in 0..self.span_ends.len() {
            let end = self.span_ends[index];
            let span = start..end;
            start = end;
            let len = span.len();
            if fixed + list_header_len(1) + len > limit {
                too_large += 1;
                continue;
            }
            if !self.group.is_empty()
                && fixed + list_header_len(self.group.len() + 1) + group_bytes + len > limit
            {
                if let Err(error) = self.send_group().await {
                    return self.send_failed(error, datagrams, batch.len() - sent_spans);
                }
                datagrams += 1;
                sent_spans += self.group.len();
                self.group.clear();
                group_bytes = 0;
            }
            self.group.push(span);
            group_bytes += len;
        }
        if !self.group.is_empty()
            && let Err(error) = self.send_group().await
        {
            return self.send_failed(error, datagrams, batch.len() - sent_spans);
        }
        Ok(if too_large > 0 {
            ExportOutcome::with_dropped(too_large, TOO_LARGE)
        } else {
            ExportOutcome::delivered()
        })
    }

    /// Sends the spans of `self.group` as one datagram.
    async fn send_group(&mut self) -> std::io::Result<()> {
        self.packet.clear();
        self.packet.extend_from_slice(&MESSAGE_HEADER);
        thrift::varint(&mut self.packet, u64::from(self.seq_id));
        self.seq_id = (self.seq_id + 1) & 0x7fff_ffff;
        self.packet.extend_from_slice(&self.head);
        Compact::list(&mut self.packet, Type::Struct, self.group.len());
        for span in &self.group {
            self.packet.extend_from_slice(&self.spans[span.clone()]);
        }
        self.packet.extend_from_slice(&TRAILER);
        debug_assert!(self.packet.len() <= self.max_packet_size);
        match &self.socket {
            AgentSocket::Tokio(socket) => socket.send(&self.packet).await.map(drop),
            AgentSocket::Std(_) | AgentSocket::Closed => {
                Err(std::io::ErrorKind::NotConnected.into())
            }
        }
    }

    /// What a failed datagram means for the batch: nothing sent yet is worth a retry of the
    /// whole batch; after the first datagram went out, a retry would duplicate those spans, so
    /// the rest are counted as dropped instead.
    fn send_failed(
        &mut self,
        error: std::io::Error,
        datagrams_sent: usize,
        unsent_spans: usize,
    ) -> ExportResult {
        if self.endpoint.parse::<SocketAddr>().is_err() {
            // Resolve the host name again next time: the agent may have moved.
            self.socket = AgentSocket::Closed;
        }
        if datagrams_sent == 0 {
            return Err(ExportError::retryable(format!(
                "UDP send to Jaeger agent {}: {error}",
                self.endpoint
            )));
        }
        Ok(ExportOutcome::with_dropped(
            unsent_spans as u64,
            SEND_FAILED,
        ))
    }
}

/// The bytes of a compact list header for `len` elements.
fn list_header_len(len: usize) -> usize {
    if len < 15 {
        1
    } else {
        1 + thrift::varint_len(len as u64)
    }
}

fn unspecified_for(address: SocketAddr) -> SocketAddr {
    let ip: IpAddr = if address.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

impl SpanExporter for JaegerAgentExporter {
    fn kind(&self) -> &'static str {
        "jaeger_agent"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(self.send_batch(batch))
    }

    fn shutdown(&mut self) -> ExportFuture<'_> {
        self.socket = AgentSocket::Closed;
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }
}

impl fmt::Debug for JaegerAgentExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaegerAgentExporter")
            .field("endpoint", &self.endpoint)
            .field("service_name", &self.process.service_name())
            .field("max_packet_size", &self.max_packet_size)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`JaegerAgentExporter`].
#[derive(Debug, Clone)]
pub struct JaegerAgentExporterBuilder {
    endpoint: String,
    max_packet_size: usize,
    resource: Option<Resource>,
}

impl Default for JaegerAgentExporterBuilder {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_AGENT_ENDPOINT.to_owned(),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            resource: None,
        }
    }
}

impl JaegerAgentExporterBuilder {
    /// The agent's `host:port` (a bare host means port 6831); see [`agent_endpoint`].
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// The largest datagram to send, [`MIN_PACKET_SIZE`]..=[`MAX_PACKET_SIZE`] bytes; lower it
    /// where the system's UDP limit is smaller (macOS allows 9,216 bytes by default: use 8,192).
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// The service and process the spans come from.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// The exporter. Needs no runtime: see [`JaegerAgentExporter`] for when the socket is made.
    pub fn build(self) -> Result<JaegerAgentExporter, JaegerError> {
        if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&self.max_packet_size) {
            return Err(JaegerError::BadPacketSize {
                size: self.max_packet_size,
                min: MIN_PACKET_SIZE,
                max: MAX_PACKET_SIZE,
            });
        }
        let endpoint = agent_endpoint(&self.endpoint)?;
        let resource = self.resource.unwrap_or_default();
        let socket_error = |source| JaegerError::Socket {
            endpoint: endpoint.clone(),
            source,
        };
        let (socket, local) = match endpoint.parse::<SocketAddr>() {
            Ok(address) => {
                let socket =
                    std::net::UdpSocket::bind(unspecified_for(address)).map_err(socket_error)?;
                socket.set_nonblocking(true).map_err(socket_error)?;
                socket.connect(address).map_err(socket_error)?;
                let local = socket.local_addr().ok();
                (AgentSocket::Std(socket), local)
            }
            Err(_) => (AgentSocket::Closed, None),
        };
        let mut exporter = JaegerAgentExporter {
            endpoint,
            socket,
            process: ProcessTags::new(&resource),
            max_packet_size: self.max_packet_size,
            head: Vec::new(),
            spans: Vec::new(),
            span_ends: Vec::new(),
            group: Vec::new(),
            packet: Vec::with_capacity(self.max_packet_size),
            seq_id: 0,
        };
        exporter.encode_head();
        exporter.learn_ip(local);
        Ok(exporter)
    }
}
