//! An OTLP/gRPC receiver on loopback: a tonic server implementing `opentelemetry-proto`'s
//! generated `TraceService`, accepting gzip, answering as told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// `google.rpc.Status`, `google.rpc.RetryInfo` and `google.protobuf.Duration`, declared here
/// (not taken from the exporter) so the test builds its error details independently.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// What the server answers with.
#[derive(Debug, Clone, Default)]
pub enum Answer {
    #[default]
    Ok,
    PartialSuccess(i64),
    Error(Code, Option<Duration>),
}

#[derive(Debug, Default)]
pub struct Receiver {
    received: Mutex<Vec<(MetadataMap, ExportTraceServiceRequest)>>,
    answer: Mutex<Answer>,
}

impl Receiver {
    pub fn answer_with(&self, answer: Answer) {
        *self.answer.lock().expect("answer lock") = answer;
    }

    pub fn take(&self) -> Vec<(MetadataMap, ExportTraceServiceRequest)> {
        std::mem::take(&mut *self.received.lock().expect("received lock"))
    }
}

#[derive(Debug, Clone)]
struct Service(Arc<Receiver>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.0
            .received
            .lock()
            .expect("received lock")
            .push((metadata, message));
        let answer = self.0.answer.lock().expect("answer lock").clone();
        match answer {
            Answer::Ok => Ok(Response::new(ExportTraceServiceResponse::default())),
            Answer::PartialSuccess(rejected) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: "too old".to_owned(),
                }),
            })),
            Answer::Error(code, delay) => {
                let details = delay.map(|delay| {
                    let info = RetryInfo {
                        retry_delay: Some(ProtoDuration {
                            seconds: delay.as_secs() as i64,
                            nanos: delay.subsec_nanos() as i32,
                        }),
                    };
                    RpcStatus {
                        code: code as i32,
                        message: "busy".to_owned(),
                        details: vec![ProtoAny {
                            type_url: "type.googleapis.com/google.rpc.RetryInfo".to_owned(),
                            value: info.encode_to_vec(),
                        }],
                    }
                    .encode_to_vec()
                });
                Err(match details {
                    Some(details) => Status::with_details(code, "busy", details.into()),
                    None => Status::new(code, "refused"),
                })
            }
        }
    }
}

/// A `TraceService` server on 127.0.0.1 accepting gzip; returns it and its URL.
pub async fn start() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    let service = TraceServiceServer::new(Service(receiver.clone()))
        .accept_compressed(CompressionEncoding::Gzip);
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await;
    });
    (receiver, format!("http://{address}"))
}
