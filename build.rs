//! Compiles the protobuf API with protox (pure Rust, so no system `protoc` is needed),
//! generates the tonic service, the proto3 JSON mapping used by the REST API, and the
//! descriptor set served by gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // sqlx::migrate! embeds the migrations; a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(["licensefacade/v1/license_service.proto"], ["proto"])?;
    let descriptor_path = out_dir.join("licensefacade_descriptor.bin");
    std::fs::write(&descriptor_path, fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Our own Timestamp: the same message, with the exact proto3 JSON text (`Z`,
        // 0/3/6/9 fraction digits), which pbjson-types' does not write (src/api/timestamp.rs).
        .extern_path(".google.protobuf.Timestamp", "crate::api::Timestamp")
        // prost's codec, except that a malformed request is INVALID_ARGUMENT.
        .codec_path("crate::grpc::codec::ProtoCodec")
        .compile_fds(fds)?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .emit_fields()
        .build(&[".licensefacade"])?;
    Ok(())
}
