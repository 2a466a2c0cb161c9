//! The smallest traced tonic app: a gRPC server whose calls become spans (printed as JSON
//! lines), called once by a traced client. Uses the demo's `Users` service definition.
//!
//! `cargo run -p examples --bin tonic_minimal`

use std::time::Duration;

use tonic::{Request, Response, Status, transport::Server};
use trace_core::sampler::AlwaysOn;
use trace_exporters::{BatchExporter, Resource, stdout::StdoutExporter};
use trace_grpc::{GrpcClientLayer, GrpcTraceLayer};

#[allow(missing_docs, unreachable_pub, clippy::all)]
mod proto {
    tonic::include_proto!("demo.users.v1");
}
use proto::users_client::UsersClient;
use proto::users_server::{Users, UsersServer};
use proto::{GetUserRequest, User};

#[derive(Debug)]
struct MyUsers;

#[tonic::async_trait]
impl Users for MyUsers {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        let id = request.into_inner().id;
        Ok(Response::new(User {
            id,
            name: "ada".into(),
            plan: "free".into(),
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let spans = BatchExporter::builder(StdoutExporter::new(Resource::new("users"))).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::builder()
        .layer(GrpcTraceLayer::new(spans.clone()).sampler(AlwaysOn))
        .add_service(UsersServer::new(MyUsers))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);

    // A traced client: with no request being handled, it starts a trace of its own.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect_lazy();
    let layer = GrpcClientLayer::new().root_traces(AlwaysOn, spans.clone());
    let mut client = UsersClient::new(tower::Layer::layer(&layer, channel));
    let user = client
        .get_user(GetUserRequest { id: 7, fail: false })
        .await?;
    eprintln!("got {:?}", user.into_inner());
    spans.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
