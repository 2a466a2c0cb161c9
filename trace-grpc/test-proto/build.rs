//! Compiles the test service's .proto with the vendored protocol compiler, so the build needs no
//! `protoc` on the machine (a `PROTOC` variable, such as Debian's `protobuf-compiler`, wins).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_with_config(config, &["proto/echo.proto"], &["proto"])?;
    Ok(())
}
