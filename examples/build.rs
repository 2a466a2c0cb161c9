//! Compiles the demo's gRPC service definition with a vendored `protoc`, so no system protobuf
//! compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/users.proto"],
        &["proto"],
    )?;
    Ok(())
}
