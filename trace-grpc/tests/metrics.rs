//! RPC metrics per method and status code, with exemplars, from a real tonic server and client.

mod support;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use support::*;
use trace_core::sampler::AlwaysOn;
use trace_grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcServerMetrics, GrpcTraceLayer};
use trace_grpc_test_proto::EchoRequest;

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_and_message_counts_per_method_and_status_with_exemplars() {
    let collector = collector();
    let mut registry = Registry::default();
    let server_metrics = GrpcServerMetrics::new(&mut registry);
    let client_metrics = GrpcClientMetrics::new(&mut registry);
    let address = start_server(
        GrpcTraceLayer::new(collector.clone()).metrics(server_metrics),
        GrpcClientLayer::new(),
    )
    .await;
    let mut client = connect(
        &address.to_string(),
        GrpcClientLayer::new()
            .root_traces(AlwaysOn, collector.clone())
            .metrics(client_metrics),
    )
    .await;
    for _ in 0..2 {
        client.unary(EchoRequest::default()).await.expect("ok");
    }
    client
        .unary(EchoRequest {
            fail_with: 5,
            ..Default::default()
        })
        .await
        .expect_err("NOT_FOUND");
    let mut stream = client
        .server_stream(EchoRequest {
            count: 3,
            ..Default::default()
        })
        .await
        .expect("starts")
        .into_inner();
    while stream.message().await.expect("no error").is_some() {}
    // Metrics are recorded just before each span ends.
    let spans = wait_for(&collector, 8, |_| true).await;

    let mut text = String::new();
    encode(&mut text, &registry).expect("encodes");
    let unary_ok = r#"{rpc_method="tracewire.test.v1.Echo/Unary",rpc_response_status_code="OK"}"#;
    let not_found =
        r#"{rpc_method="tracewire.test.v1.Echo/Unary",rpc_response_status_code="NOT_FOUND"}"#;
    let stream_ok =
        r#"{rpc_method="tracewire.test.v1.Echo/ServerStream",rpc_response_status_code="OK"}"#;
    for side in ["server", "client"] {
        let name = format!("rpc_{side}_call_duration_seconds");
        assert!(text.contains(&format!("# TYPE {name} histogram")), "{text}");
        assert!(text.contains(&format!("# UNIT {name} seconds")), "{text}");
        assert_eq!(
            line(&text, &format!("{name}_count{unary_ok}"))
                .split(' ')
                .nth(1),
            Some("2")
        );
        assert_eq!(
            line(&text, &format!("{name}_count{not_found}"))
                .split(' ')
                .nth(1),
            Some("1")
        );
        assert_eq!(
            line(&text, &format!("{name}_count{stream_ok}"))
                .split(' ')
                .nth(1),
            Some("1")
        );
        let responses = format!("rpc_{side}_responses_per_rpc_sum{stream_ok}");
        assert_eq!(line(&text, &responses).split(' ').nth(1), Some("3.0"));
        // The 14 advisory buckets and +Inf.
        let bounds: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{name}_bucket{{"))
                    && l.contains(unary_ok.trim_matches(['{', '}']))
            })
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(
            bounds,
            [
                "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0",
                "2.5", "5.0", "7.5", "10.0", "+Inf"
            ],
            "{text}"
        );
    }
    assert_eq!(
        line(&text, &format!("rpc_server_requests_per_rpc_sum{unary_ok}"))
            .split(' ')
            .nth(1),
        Some("2.0")
    );
    assert!(
        !text.contains("rpc_client_requests_per_rpc"),
        "clients do not count requests"
    );

    // Exemplars point at the spans: every exemplar's ids are those of a recorded span.
    let exemplars: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("rpc_server_call_duration_seconds_bucket") && l.contains(" # {"))
        .collect();
    assert!(
        !exemplars.is_empty(),
        "sampled calls leave exemplars:\n{text}"
    );
    for exemplar in exemplars {
        assert!(
            spans.iter().any(|s| s.kind == trace_core::SpanKind::Server
                && exemplar.contains(&format!(
                    r#"trace_id="{}",span_id="{}""#,
                    s.trace_id, s.span_id
                ))),
            "{exemplar} names a server span"
        );
    }
}

/// Calls `path`, a method the server does not implement, with a plain tonic client.
async fn call_unimplemented(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: String,
) -> tonic::Code {
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::try_from(path).expect("a valid path");
    grpc.unary::<EchoRequest, EchoRequest, _>(
        tonic::Request::new(EchoRequest::default()),
        path,
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("no such method")
    .code()
}

/// Callers choose the method names in their requests: more made-up names than the layer keeps
/// (2,000) must not take the places of the server's real methods, in the spans (whose method
/// names the layer keeps when it records no metrics) nor in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_method_names_do_not_crowd_out_real_methods() {
    const MADE_UP: usize = 2_001;
    for with_metrics in [true, false] {
        let collector = collector();
        let mut registry = Registry::default();
        let mut layer = GrpcTraceLayer::new(collector.clone()).sampler(AlwaysOn);
        if with_metrics {
            layer = layer.metrics(GrpcServerMetrics::new(&mut registry));
        }
        let address = start_server(layer, GrpcClientLayer::new()).await;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        for i in 0..MADE_UP {
            let code = call_unimplemented(&mut grpc, format!("/scanner.Probe{i}/Method{i}")).await;
            assert_eq!(code, tonic::Code::Unimplemented);
        }
        let probes = wait_for(&collector, MADE_UP, server_spans).await;
        assert!(probes.iter().all(
            |s| s.name == "grpc" && text(s, trace_grpc::semconv::RPC_METHOD) == Some("_OTHER")
        ));
        collector.clear();

        let mut client = connect(&address.to_string(), GrpcClientLayer::new()).await;
        client
            .unary(EchoRequest::default())
            .await
            .expect("a real method answers");
        let spans = wait_for(&collector, 1, server_spans).await;
        assert_eq!(spans[0].name, UNARY);
        assert_eq!(
            text(&spans[0], trace_grpc::semconv::RPC_METHOD),
            Some(UNARY)
        );

        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("rpc_server_call_duration_seconds_count"))
            .collect();
        series.sort_unstable();
        let expected: Vec<String> = if with_metrics {
            vec![
                format!(
                    r#"rpc_server_call_duration_seconds_count{{rpc_method="_OTHER",rpc_response_status_code="UNIMPLEMENTED"}} {MADE_UP}"#
                ),
                format!(
                    r#"rpc_server_call_duration_seconds_count{{rpc_method="{UNARY}",rpc_response_status_code="OK"}} 1"#
                ),
            ]
        } else {
            Vec::new()
        };
        assert_eq!(series, expected, "with metrics: {with_metrics}");
    }
}
