//! The protobuf codec of the generated service: prost's, except that a request body
//! that is not a valid message is the caller's error (`INVALID_ARGUMENT`, reason
//! `MALFORMED_PROTOBUF`), not `INTERNAL` as prost's codec reports it. `INTERNAL`
//! would tell the caller the server is broken and invite a retry of the same bytes.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt as _};

/// prost's codec with the decoding errors of [`ProtoDecoder`].
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// prost's decoder; a message that does not decode is `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(malformed)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The status of a message that does not decode (prost's decoder fails only so).
fn malformed(decode_error: Status) -> Status {
    let details = ErrorDetails::with_error_info(
        "MALFORMED_PROTOBUF",
        super::ERROR_DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!(
            "the request is not a valid protobuf message: {}",
            decode_error.message()
        ),
        details,
    )
}
