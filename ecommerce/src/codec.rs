//! The protobuf codec of the generated client and server: prost, with small buffers.
//!
//! tonic's default codec starts every call with an 8 KiB encode buffer and an 8 KiB decode
//! buffer. An `ecommerce` message is under 200 bytes, and at tens of thousands of calls a
//! second those blocks went through glibc's slow paths for mid-size allocations (a tenth of
//! the CPU time in the catalog's profile; see BENCHMARKS.md). 512-byte buffers come from its
//! fast per-thread cache and still grow on demand for a larger message. This follows tonic's
//! own `codec_buffers` example; `build.rs` points the generated code here.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Initial size of each call's encode and decode buffer.
const BUFFER_SIZE: usize = 512;

/// tonic's default: how much an encoder buffers before it yields to the runtime.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`BUFFER_SIZE`]-byte buffers.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD))
    }
}
