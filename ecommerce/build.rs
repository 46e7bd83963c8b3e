//! Compiles `../ecommerce.proto` with protox, a pure-Rust protobuf compiler, so that a fresh
//! machine (or a container build) needs no `protoc` binary.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("..");
    let proto = proto_dir.join("ecommerce.proto");
    // protox prints no rerun-if-changed lines of its own: without this, editing the proto
    // would not regenerate the code.
    println!("cargo:rerun-if-changed={}", proto.display());

    let mut compiler = protox::Compiler::new([&proto_dir])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(["ecommerce.proto"])?;

    // Kept for gRPC server reflection: `compile_fds` does not write the descriptor set itself.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("ecommerce_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        // Small per-call buffers: see src/codec.rs.
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
