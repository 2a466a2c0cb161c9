//! The gRPC back service: users, which asks the HTTP profiles service for each user's plan.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Response, Status};
use tower::ServiceExt;

use crate::proto::users_server::{Users, UsersServer};
use crate::proto::{GetUserRequest, User};
use crate::telemetry::{HttpClient, Telemetry};

const NAMES: [&str; 8] = [
    "ada", "grace", "edsger", "barbara", "ken", "radia", "donald", "frances",
];

#[derive(Debug, Clone)]
struct UsersService {
    profiles: SocketAddr,
    client: HttpClient,
}

#[tonic::async_trait]
impl Users for UsersService {
    async fn get_user(
        &self,
        request: tonic::Request<GetUserRequest>,
    ) -> Result<Response<User>, Status> {
        let GetUserRequest { id, fail } = request.into_inner();
        if id == 404 {
            return Err(Status::not_found(format!("no user {id}")));
        }
        let uri = format!("http://{}/profiles/{id}?fail={fail}", self.profiles);
        let request = Request::get(uri)
            .body(Empty::<Bytes>::new())
            .map_err(|error| Status::internal(error.to_string()))?;
        // The client layer makes a client span, a child of this call's server span, and puts its
        // context into the request headers.
        let response = self
            .client
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| Status::unavailable(format!("profiles: {error}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| Status::unavailable(format!("profiles: {error}")))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(Status::internal(format!(
                "profiles answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let plan = if body.windows(5).any(|w| w == b"\"pro\"") {
            "pro"
        } else {
            "free"
        };
        let name = NAMES[(id % NAMES.len() as u64) as usize];
        Ok(Response::new(User {
            id,
            name: name.to_owned(),
            plan: plan.to_owned(),
        }))
    }
}

/// Serves the users service until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    profiles: SocketAddr,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let service = UsersService {
        profiles,
        client: telemetry.http_client(),
    };
    tonic::transport::Server::builder()
        .layer(telemetry.grpc_server_layer())
        .add_service(UsersServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
