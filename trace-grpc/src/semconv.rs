//! The OpenTelemetry RPC semantic-convention names the gRPC layers record (checked against the
//! conventions' registry: `rpc.system.name`, a fully qualified `rpc.method`, the string
//! `rpc.response.status_code`), the older names some dashboards still query, and tracewire's own.

/// `rpc.system.name`: always `grpc` here.
pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
/// `rpc.method`: the fully qualified method, `package.Service/Method`, or `_OTHER` for a method
/// the server does not implement (or a path that is not a gRPC method). Method names are shared
/// per layer and bounded: past 2000 distinct ones, `_overflow` (a server stores only methods it
/// did not answer `UNIMPLEMENTED`, so callers cannot fill the store with made-up names).
pub const RPC_METHOD: &str = "rpc.method";
/// `rpc.method_original`: the method as called, when `rpc.method` is `_OTHER` (the span is then
/// named `grpc`).
pub const RPC_METHOD_ORIGINAL: &str = "rpc.method_original";
/// `rpc.response.status_code`: the status code's name, such as `DEADLINE_EXCEEDED`.
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
/// `error.type`: the status code's name, when the code is a failure for this side of the call.
pub const ERROR_TYPE: &str = "error.type";
/// `server.address`.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`.
pub const SERVER_PORT: &str = "server.port";
/// `network.protocol.version`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";

/// Older name: `rpc.system` (`grpc`).
pub const LEGACY_RPC_SYSTEM: &str = "rpc.system";
/// Older name: `rpc.service`, the fully qualified service (`package.Service`).
pub const LEGACY_RPC_SERVICE: &str = "rpc.service";
/// Older name: `rpc.grpc.status_code`, the status code as an integer.
pub const LEGACY_RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";

/// Request messages of the call (read by the server; on a client, not recorded).
pub const REQUEST_MESSAGES: &str = "tracewire.rpc.request.messages";
/// Response messages of the call (sent by the server, received by the client).
pub const RESPONSE_MESSAGES: &str = "tracewire.rpc.response.messages";
/// Set (to `true`) when the response stream was dropped before its end.
pub const RESPONSE_ABORTED: &str = trace_http::semconv::RESPONSE_ABORTED;

/// The `rpc.method` value for methods that are not recognised.
pub const OTHER_METHOD: &str = "_OTHER";
