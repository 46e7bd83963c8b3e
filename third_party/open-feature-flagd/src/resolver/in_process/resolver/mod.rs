mod file;
mod grpc;

pub use file::FileResolver;
pub use grpc::InProcessResolver;
