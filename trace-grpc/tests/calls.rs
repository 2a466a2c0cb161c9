//! Server and client spans of every call shape, over a real tonic server and client.

mod support;

use std::time::Duration;

use support::*;
use trace_core::sampler::AlwaysOn;
use trace_core::{Span, SpanKind, Status};
use trace_grpc::semconv::*;
use trace_grpc::{GrpcClientLayer, GrpcTraceLayer};
use trace_grpc_test_proto::EchoRequest;

/// A server traced into `collector` and a client that starts traces into it too.
async fn setup(
    collector: &std::sync::Arc<trace_core::InMemoryCollector>,
) -> (std::net::SocketAddr, TracedClient) {
    let address = start_server(
        GrpcTraceLayer::new(collector.clone()).legacy_attributes(true),
        GrpcClientLayer::new(),
    )
    .await;
    let client = connect(
        &address.to_string(),
        GrpcClientLayer::new()
            .root_traces(AlwaysOn, collector.clone())
            .legacy_attributes(true),
    )
    .await;
    (address, client)
}

fn one(spans: &[Span], kind: SpanKind) -> &Span {
    let matching: Vec<&Span> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(matching.len(), 1, "one {kind:?} span in {spans:#?}");
    matching[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_is_one_server_span_under_one_client_span() {
    let collector = collector();
    let (address, mut client) = setup(&collector).await;
    let response = client
        .unary(EchoRequest {
            message: "hello".into(),
            ..Default::default()
        })
        .await
        .expect("the call succeeds")
        .into_inner();
    let spans = wait_for(&collector, 2, |_| true).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);

    assert_eq!(server.name, UNARY);
    assert_eq!(client_span.name, UNARY);
    assert_eq!(server.trace_id, client_span.trace_id);
    assert_eq!(server.parent_span_id, Some(client_span.span_id));
    assert_eq!(
        response.trace_id,
        server.trace_id.to_string(),
        "the handler saw the context"
    );
    for span in [server, client_span] {
        assert_eq!(text(span, RPC_SYSTEM_NAME), Some("grpc"));
        assert_eq!(text(span, RPC_METHOD), Some(UNARY));
        assert_eq!(text(span, RPC_RESPONSE_STATUS_CODE), Some("OK"));
        assert_eq!(span.attribute(ERROR_TYPE), None);
        assert_eq!(span.status, Status::Unset);
        assert_eq!(text(span, SERVER_ADDRESS), Some("127.0.0.1"), "{span:#?}");
        assert_eq!(int(span, SERVER_PORT), Some(i64::from(address.port())));
        assert_eq!(int(span, RESPONSE_MESSAGES), Some(1));
        // The older names, on request.
        assert_eq!(text(span, LEGACY_RPC_SYSTEM), Some("grpc"));
        assert_eq!(
            text(span, LEGACY_RPC_SERVICE),
            Some("tracewire.test.v1.Echo")
        );
        assert_eq!(int(span, LEGACY_RPC_GRPC_STATUS_CODE), Some(0));
    }
    assert_eq!(int(server, REQUEST_MESSAGES), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_are_recorded_by_name_and_classified_per_side() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;
    for code in 1..=16 {
        collector.clear();
        let status = client
            .unary(EchoRequest {
                fail_with: code,
                ..Default::default()
            })
            .await
            .expect_err("the call fails on purpose");
        assert_eq!(status.code() as i32, code);
        let spans = wait_for(&collector, 2, |_| true).await;
        let name = trace_grpc::status::Code::from_i32(code).name();
        let server_error = matches!(
            name,
            "UNKNOWN"
                | "DEADLINE_EXCEEDED"
                | "UNIMPLEMENTED"
                | "INTERNAL"
                | "UNAVAILABLE"
                | "DATA_LOSS"
        );
        let server = one(&spans, SpanKind::Server);
        assert_eq!(text(server, RPC_RESPONSE_STATUS_CODE), Some(name));
        assert_eq!(
            int(server, LEGACY_RPC_GRPC_STATUS_CODE),
            Some(i64::from(code))
        );
        assert_eq!(
            server.status.is_error(),
            server_error,
            "server span for {name}"
        );
        assert_eq!(text(server, ERROR_TYPE), server_error.then_some(name));
        if server_error {
            assert_eq!(server.status, Status::error("failed on purpose"));
        }
        // The method is known even when the handler answers UNIMPLEMENTED for it.
        let expected_method = if name == "UNIMPLEMENTED" {
            OTHER_METHOD
        } else {
            UNARY
        };
        assert_eq!(text(server, RPC_METHOD), Some(expected_method));

        let client_span = one(&spans, SpanKind::Client);
        assert_eq!(text(client_span, RPC_RESPONSE_STATUS_CODE), Some(name));
        assert!(
            client_span.status.is_error(),
            "every non-OK code fails a client"
        );
        assert_eq!(text(client_span, ERROR_TYPE), Some(name));
        assert_eq!(client_span.status, Status::error("failed on purpose"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unimplemented_method_is_other() {
    let collector = collector();
    let (address, _client) = setup(&collector).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary::<EchoRequest, EchoRequest, _>(
            tonic::Request::new(EchoRequest::default()),
            http::uri::PathAndQuery::from_static("/tracewire.test.v1.Nope/Missing"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let spans = wait_for(&collector, 1, server_spans).await;
    let server = &spans[0];
    // The conventions: "If rpc.method is unavailable or set to _OTHER, the span name SHOULD be
    // {rpc.system.name}" (a name the caller chose is unbounded).
    assert_eq!(server.name, "grpc");
    assert_eq!(text(server, RPC_METHOD), Some(OTHER_METHOD));
    assert_eq!(
        text(server, RPC_METHOD_ORIGINAL),
        Some("tracewire.test.v1.Nope/Missing")
    );
    assert_eq!(
        text(server, RPC_RESPONSE_STATUS_CODE),
        Some("UNIMPLEMENTED")
    );
    assert!(server.status.is_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_span_ends_after_the_last_message_with_the_trailer_status() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;

    // OK after five messages.
    let mut stream = client
        .server_stream(EchoRequest {
            message: "m".into(),
            count: 5,
            delay_ms: 20,
            ..Default::default()
        })
        .await
        .expect("the call starts")
        .into_inner();
    let first = stream.message().await.expect("a message");
    assert!(first.is_some());
    assert!(
        collector.spans().iter().all(|s| s.kind != SpanKind::Server),
        "the server span is still open while the stream runs"
    );
    let mut received = 1;
    while stream.message().await.expect("no error").is_some() {
        received += 1;
    }
    assert_eq!(received, 5);
    let spans = wait_for(&collector, 2, |_| true).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);
    assert_eq!(server.name, SERVER_STREAM);
    for span in [server, client_span] {
        assert_eq!(text(span, RPC_RESPONSE_STATUS_CODE), Some("OK"));
        assert_eq!(int(span, RESPONSE_MESSAGES), Some(5));
        assert_eq!(span.status, Status::Unset);
    }
    assert_eq!(int(server, REQUEST_MESSAGES), Some(1));
    assert!(
        server.duration >= Duration::from_millis(80),
        "the span lasted the whole stream: {:?}",
        server.duration
    );

    // DATA_LOSS in the trailers after two messages.
    collector.clear();
    let mut stream = client
        .server_stream(EchoRequest {
            count: 2,
            fail_with: 15,
            ..Default::default()
        })
        .await
        .expect("the call starts")
        .into_inner();
    assert!(stream.message().await.expect("first").is_some());
    assert!(stream.message().await.expect("second").is_some());
    let status = stream.message().await.expect_err("then the failure");
    assert_eq!(status.code(), tonic::Code::DataLoss);
    let spans = wait_for(&collector, 2, |_| true).await;
    for span in &spans {
        assert_eq!(text(span, RPC_RESPONSE_STATUS_CODE), Some("DATA_LOSS"));
        assert_eq!(text(span, ERROR_TYPE), Some("DATA_LOSS"));
        assert_eq!(span.status, Status::error("failed on purpose"));
        assert_eq!(int(span, RESPONSE_MESSAGES), Some(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stream_counts_its_request_messages() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;
    let requests = (0..7).map(|i| EchoRequest {
        message: format!("{i}"),
        ..Default::default()
    });
    let response = client
        .client_stream(tokio_stream::iter(requests))
        .await
        .expect("the call succeeds")
        .into_inner();
    assert_eq!(response.message, "7 messages");
    let spans = wait_for(&collector, 2, |_| true).await;
    let server = one(&spans, SpanKind::Server);
    assert_eq!(server.name, CLIENT_STREAM);
    assert_eq!(int(server, REQUEST_MESSAGES), Some(7));
    assert_eq!(int(server, RESPONSE_MESSAGES), Some(1));
    assert_eq!(text(server, RPC_RESPONSE_STATUS_CODE), Some("OK"));
    assert_eq!(
        text(one(&spans, SpanKind::Client), RPC_RESPONSE_STATUS_CODE),
        Some("OK")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_stream_ends_after_both_directions() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut responses = client
        .bidi_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .expect("the call starts")
        .into_inner();
    for i in 0..4 {
        sender
            .send(EchoRequest {
                message: format!("ping {i}"),
                ..Default::default()
            })
            .await
            .expect("the stream is open");
        let echoed = responses
            .message()
            .await
            .expect("no error")
            .expect("an echo");
        assert_eq!(echoed.message, format!("ping {i}"));
    }
    assert!(
        collector.spans().iter().all(|s| s.kind != SpanKind::Server),
        "the server span is open while the client still sends"
    );
    drop(sender);
    assert!(responses.message().await.expect("clean end").is_none());
    let spans = wait_for(&collector, 2, |_| true).await;
    let server = one(&spans, SpanKind::Server);
    assert_eq!(server.name, BIDI_STREAM);
    assert_eq!(int(server, REQUEST_MESSAGES), Some(4));
    assert_eq!(int(server, RESPONSE_MESSAGES), Some(4));
    assert_eq!(text(server, RPC_RESPONSE_STATUS_CODE), Some("OK"));
    assert_eq!(
        int(one(&spans, SpanKind::Client), RESPONSE_MESSAGES),
        Some(4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exceeded_deadline_ends_both_spans() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;
    let mut request = tonic::Request::new(EchoRequest {
        delay_ms: 5_000,
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(100));
    let status = client
        .unary(request)
        .await
        .expect_err("the deadline passes");
    // tonic's server answers an expired deadline with CANCELLED.
    assert_eq!(status.code(), tonic::Code::Cancelled);
    let spans = wait_for(&collector, 2, |_| true).await;
    for span in &spans {
        assert_eq!(
            text(span, RPC_RESPONSE_STATUS_CODE),
            Some("DEADLINE_EXCEEDED"),
            "{:?} span",
            span.kind
        );
        assert!(span.status.is_error());
        assert!(
            span.duration < Duration::from_secs(4),
            "ended at the deadline"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cancelling_mid_stream_ends_the_server_span_as_cancelled() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;
    let mut stream = client
        .server_stream(EchoRequest {
            count: 1_000,
            delay_ms: 10,
            ..Default::default()
        })
        .await
        .expect("the call starts")
        .into_inner();
    for _ in 0..3 {
        assert!(stream.message().await.expect("no error").is_some());
    }
    drop(stream);
    drop(client);
    let spans = wait_for(&collector, 2, |_| true).await;
    for span in &spans {
        assert_eq!(
            text(span, RPC_RESPONSE_STATUS_CODE),
            Some("CANCELLED"),
            "{:?}",
            span.kind
        );
        assert_eq!(
            span.attribute(RESPONSE_ABORTED),
            Some(&trace_core::Value::Bool(true))
        );
        let messages = int(span, RESPONSE_MESSAGES).expect("counted");
        assert!((3..1_000).contains(&messages), "{messages} messages");
    }
    let server = one(&spans, SpanKind::Server);
    assert!(
        !server.status.is_error(),
        "CANCELLED is not the server's failure"
    );
    assert!(one(&spans, SpanKind::Client).status.is_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_works_on_a_tonic_service_inside_an_axum_router() {
    let collector = collector();
    let address = start_axum_server(GrpcTraceLayer::new(collector.clone())).await;
    let mut client = connect(&address.to_string(), GrpcClientLayer::new()).await;
    let response = client
        .unary(EchoRequest {
            message: "via axum".into(),
            ..Default::default()
        })
        .await
        .expect("the call succeeds")
        .into_inner();
    let spans = wait_for(&collector, 1, server_spans).await;
    assert_eq!(spans[0].name, UNARY);
    assert_eq!(text(&spans[0], RPC_RESPONSE_STATUS_CODE), Some("OK"));
    assert_eq!(response.trace_id, spans[0].trace_id.to_string());

    let status = client
        .unary(EchoRequest {
            fail_with: 14,
            ..Default::default()
        })
        .await
        .expect_err("fails on purpose");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let spans = wait_for(&collector, 2, server_spans).await;
    assert!(
        spans.iter().any(
            |s| text(s, RPC_RESPONSE_STATUS_CODE) == Some("UNAVAILABLE") && s.status.is_error()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_response_stream_is_the_servers_failure_not_a_cancel() {
    let collector = collector();
    let (_address, mut client) = setup(&collector).await;
    let mut stream = client
        .server_stream(EchoRequest {
            count: 2,
            delay_ms: 20,
            panic: true,
            ..Default::default()
        })
        .await
        .expect("the call starts")
        .into_inner();
    for _ in 0..2 {
        assert!(stream.message().await.expect("a message").is_some());
    }
    let status = stream.message().await.expect_err("the stream breaks off");
    // hyper resets the stream whose task panicked: the caller reads a cancel.
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    let spans = wait_for(&collector, 2, |_| true).await;
    let server = one(&spans, SpanKind::Server);
    assert_eq!(server.name, SERVER_STREAM);
    assert_eq!(text(server, RPC_RESPONSE_STATUS_CODE), Some("UNKNOWN"));
    assert_eq!(text(server, ERROR_TYPE), Some("UNKNOWN"));
    assert_eq!(
        server.status,
        Status::error("a panic dropped the response before its end")
    );
    assert_eq!(int(server, RESPONSE_MESSAGES), Some(2));
    assert_eq!(
        server.attribute(RESPONSE_ABORTED),
        Some(&trace_core::Value::Bool(true))
    );
    let client_span = one(&spans, SpanKind::Client);
    assert!(client_span.status.is_error(), "{status:?}");
    assert_eq!(int(client_span, RESPONSE_MESSAGES), Some(2));
}

/// A channel-wide timeout (`Endpoint::timeout`; the caller writes no `grpc-timeout`): tonic's
/// channel fails the call with its `TimeoutExpired`, which tonic reports as CANCELLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_timeout_is_recorded_as_tonic_reports_it() {
    let collector = collector();
    let address = start_server(
        GrpcTraceLayer::new(collector.clone()),
        GrpcClientLayer::new(),
    )
    .await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .timeout(Duration::from_millis(100))
        .connect()
        .await
        .expect("connect");
    let mut client = trace_grpc_test_proto::echo_client::EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(GrpcClientLayer::new().root_traces(AlwaysOn, collector.clone()))
            .service(channel),
    );
    let status = client
        .unary(EchoRequest {
            delay_ms: 2_000,
            ..Default::default()
        })
        .await
        .expect_err("times out");
    assert_eq!(status.code(), tonic::Code::Cancelled);
    assert_eq!(status.message(), "Timeout expired");
    let spans = wait_for(&collector, 1, client_spans).await;
    let client_span = &spans[0];
    assert_eq!(
        text(client_span, RPC_RESPONSE_STATUS_CODE),
        Some("CANCELLED")
    );
    assert_eq!(text(client_span, ERROR_TYPE), Some("CANCELLED"));
    assert_eq!(client_span.status, Status::error("Timeout expired"));
}

/// No server at the address: tonic reports the connect error as UNAVAILABLE, and so does the span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_recorded_as_tonic_reports_it() {
    let collector = collector();
    // A port that was free a moment ago, and nobody listens on now.
    let address = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("address");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect_lazy();
    let mut client = trace_grpc_test_proto::echo_client::EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(GrpcClientLayer::new().root_traces(AlwaysOn, collector.clone()))
            .service(channel),
    );
    let status = client
        .unary(EchoRequest::default())
        .await
        .expect_err("nobody listens");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let spans = wait_for(&collector, 1, client_spans).await;
    let client_span = &spans[0];
    assert_eq!(
        text(client_span, RPC_RESPONSE_STATUS_CODE),
        Some("UNAVAILABLE")
    );
    assert_eq!(
        client_span.status,
        Status::error(status.message().to_owned())
    );
}
