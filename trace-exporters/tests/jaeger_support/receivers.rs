//! Jaeger receivers on loopback: an agent (UDP, compact Thrift `emitBatch`) and a collector
//! (HTTP `POST /api/traces`, binary Thrift `Batch`), each decoded with the `thrift` crate.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use thrift::protocol::{
    TBinaryInputProtocol, TCompactInputProtocol, TInputProtocol, TMessageType, TType,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{Batch, read_batch};

/// Generous guard against a hung test; never what a test measures.
const WAIT: Duration = Duration::from_secs(10);

/// A UDP socket on loopback whose datagrams are read by a task as they come, so the kernel's
/// receive buffer never holds more than a few.
pub struct AgentReceiver {
    pub address: SocketAddr,
    datagrams: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl AgentReceiver {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind receiver");
        let address = socket.local_addr().expect("receiver address");
        let (sender, datagrams) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 70_000];
            while let Ok(len) = socket.recv(&mut buffer).await {
                if sender.send(buffer[..len].to_vec()).is_err() {
                    break;
                }
            }
        });
        Self { address, datagrams }
    }

    pub async fn next(&mut self) -> Vec<u8> {
        tokio::time::timeout(WAIT, self.datagrams.recv())
            .await
            .expect("a datagram within 10 s")
            .expect("receiver task alive")
    }

    /// Every datagram already received, waiting briefly for stragglers (only used to prove that
    /// nothing more came).
    pub async fn rest(&mut self) -> Vec<Vec<u8>> {
        let mut rest = Vec::new();
        while let Ok(Some(datagram)) =
            tokio::time::timeout(Duration::from_millis(200), self.datagrams.recv()).await
        {
            rest.push(datagram);
        }
        rest
    }
}

/// Decodes one datagram as a oneway `Agent.emitBatch` call, insisting it holds nothing more.
pub fn decode_agent_datagram(datagram: &[u8]) -> Batch {
    let mut rest = datagram;
    let batch = {
        let mut protocol = TCompactInputProtocol::new(&mut rest);
        let message = protocol.read_message_begin().expect("message header");
        assert_eq!(message.name, "emitBatch");
        assert_eq!(message.message_type, TMessageType::OneWay);
        protocol.read_struct_begin().expect("arguments");
        let field = protocol.read_field_begin().expect("argument field");
        assert_eq!((field.id, field.field_type), (Some(1), TType::Struct));
        let batch = read_batch(&mut protocol).expect("a jaeger.Batch");
        protocol.read_field_end().expect("argument field end");
        let stop = protocol.read_field_begin().expect("arguments stop");
        assert_eq!(stop.field_type, TType::Stop);
        protocol.read_struct_end().expect("arguments end");
        protocol.read_message_end().expect("message end");
        batch
    };
    assert!(rest.is_empty(), "{} bytes after the message", rest.len());
    batch
}

/// One request the receiver got.
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A Jaeger collector: an axum server on loopback answering `POST /api/traces` with `status`.
pub struct CollectorReceiver {
    pub address: SocketAddr,
    requests: mpsc::UnboundedReceiver<Received>,
}

#[derive(Clone)]
struct Reply {
    status: StatusCode,
    requests: mpsc::UnboundedSender<Received>,
}

async fn receive(State(reply): State<Reply>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = reply.requests.send(Received { headers, body });
    reply.status
}

impl CollectorReceiver {
    pub async fn start(status: StatusCode) -> Self {
        let (sender, requests) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/api/traces", post(receive))
            .with_state(Reply {
                status,
                requests: sender,
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind collector");
        let address = listener.local_addr().expect("collector address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, requests }
    }

    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("collector alive")
    }
}

pub fn decode_collector_body(body: &[u8]) -> Batch {
    let mut rest = body;
    let batch = {
        let mut protocol = TBinaryInputProtocol::new(&mut rest, true);
        read_batch(&mut protocol).expect("a jaeger.Batch")
    };
    assert!(rest.is_empty(), "{} bytes after the batch", rest.len());
    batch
}
