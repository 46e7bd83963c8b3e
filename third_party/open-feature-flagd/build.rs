// ecommerce: this build script is changed from open-feature-flagd 0.3.0's, which runs
// `protoc` and needs its well-known types installed: it compiles the same protos, for the
// same features, with protox (a protobuf compiler in Rust that carries the well-known
// types), so that a machine with only the Rust toolchain builds it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut protos = Vec::new();

    // Check for features via CARGO_FEATURE_* environment variables
    if std::env::var("CARGO_FEATURE_RPC").is_ok() {
        protos.push("flagd/evaluation/v1/evaluation.proto");
    }

    if std::env::var("CARGO_FEATURE_IN_PROCESS").is_ok() {
        protos.push("flagd/sync/v1/sync.proto");
    }

    if !protos.is_empty() {
        println!("cargo:rerun-if-changed=schemas/protobuf");
        let mut compiler = protox::Compiler::new(["schemas/protobuf/"])?;
        compiler.include_imports(true);
        compiler.open_files(&protos)?;
        tonic_prost_build::configure()
            .build_server(true)
            .compile_fds(compiler.file_descriptor_set())?;
    }
    Ok(())
}
