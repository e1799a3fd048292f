//! `Raw<H>`: a protobuf message kept as the bytes the client sent, with `H` the header type that
//! declares the few fields the server reads. The server's generated code uses these wherever the
//! protocol carries an `Event`, a `Command`, a `QueryRequest` or a response, so they are stored and
//! forwarded without decoding and re-encoding them, and fields this build does not know (from newer
//! clients) are never lost. Where the server must change a message it appends fields: for a scalar
//! the last occurrence wins, a repeated field gains an element.

use std::fmt;
use std::marker::PhantomData;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{decode_varint, encode_key, encode_varint, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::grpc::{meta_data_value, MetaDataValue, ProcessingInstruction, ProcessingKey};
use crate::headers::{
    CommandHeader, EventHeader, QueryHeader, ResponseHeader, SubscriptionResponseHeader,
};

/// Field numbers the server appends.
const EVENT_TIMESTAMP_FIELD: u32 = 5;
const EVENT_SNAPSHOT_FIELD: u32 = 8;
const QUERY_PROCESSING_INSTRUCTIONS_FIELD: u32 = 7;

/// An encoded message, field for field as received; `H` decodes the fields the server needs.
pub struct Raw<H> {
    bytes: Vec<u8>,
    header: PhantomData<fn() -> H>,
}

/// `io.axoniq.axonserver.grpc.event.Event`
pub type RawEvent = Raw<EventHeader>;
/// `io.axoniq.axonserver.grpc.command.Command`
pub type RawCommand = Raw<CommandHeader>;
/// `io.axoniq.axonserver.grpc.command.CommandResponse`
pub type RawCommandResponse = Raw<ResponseHeader>;
/// `io.axoniq.axonserver.grpc.query.QueryRequest`
pub type RawQuery = Raw<QueryHeader>;
/// `io.axoniq.axonserver.grpc.query.QueryResponse` (same header fields as a command response)
pub type RawQueryResponse = Raw<ResponseHeader>;
/// `io.axoniq.axonserver.grpc.query.SubscriptionQueryResponse`
pub type RawSubscriptionResponse = Raw<SubscriptionResponseHeader>;

impl<H> Raw<H> {
    /// Wraps encoded bytes without copying them.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Raw {
            bytes,
            header: PhantomData,
        }
    }

    /// Encodes a typed message (e.g. a `grpc::command::CommandResponse`) as a raw one.
    pub fn from_message(message: &impl Message) -> Self {
        Raw::from_vec(message.encode_to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes it as a full typed message (tests and tools).
    pub fn decode_as<M: Message + Default>(&self) -> Result<M, DecodeError> {
        M::decode(self.as_bytes())
    }
}

impl<H: Message + Default> Raw<H> {
    /// Decodes only the fields the server needs, skipping payloads and metadata.
    pub fn header(&self) -> Result<H, DecodeError> {
        H::decode(self.as_bytes())
    }
}

impl RawEvent {
    /// Sets `timestamp` by appending the field.
    pub fn set_timestamp(&mut self, timestamp_ms: i64) {
        prost::encoding::int64::encode(EVENT_TIMESTAMP_FIELD, &timestamp_ms, &mut self.bytes);
    }

    /// Marks the event as a snapshot (appending `snapshot = true`).
    pub fn mark_snapshot(&mut self) {
        prost::encoding::bool::encode(EVENT_SNAPSHOT_FIELD, &true, &mut self.bytes);
    }
}

impl RawQuery {
    /// Adds a processing instruction (appending one element to `processing_instructions`).
    pub fn add_instruction(&mut self, key: ProcessingKey, value: meta_data_value::Data) {
        let instruction = ProcessingInstruction {
            key: key as i32,
            value: Some(MetaDataValue { data: Some(value) }),
        };
        prost::encoding::message::encode(
            QUERY_PROCESSING_INSTRUCTIONS_FIELD,
            &instruction,
            &mut self.bytes,
        );
    }
}

/// The value of the first instruction with `key`, if any.
pub fn instruction(
    instructions: &[ProcessingInstruction],
    key: ProcessingKey,
) -> Option<&meta_data_value::Data> {
    instructions
        .iter()
        .find(|i| i.key == key as i32)
        .and_then(|i| i.value.as_ref())
        .and_then(|v| v.data.as_ref())
}

/// A numeric instruction (numbers, or text holding a number), if present.
pub fn number_instruction(
    instructions: &[ProcessingInstruction],
    key: ProcessingKey,
) -> Option<i64> {
    match instruction(instructions, key)? {
        meta_data_value::Data::NumberValue(n) => Some(*n),
        meta_data_value::Data::TextValue(t) => t.trim().parse().ok(),
        meta_data_value::Data::DoubleValue(d) => Some(*d as i64),
        meta_data_value::Data::BooleanValue(b) => Some(i64::from(*b)),
        meta_data_value::Data::BytesValue(_) => None,
    }
}

/// A text instruction (text, or a number rendered as text), if present.
pub fn text_instruction(
    instructions: &[ProcessingInstruction],
    key: ProcessingKey,
) -> Option<String> {
    match instruction(instructions, key)? {
        meta_data_value::Data::TextValue(t) => Some(t.clone()),
        meta_data_value::Data::NumberValue(n) => Some(n.to_string()),
        meta_data_value::Data::DoubleValue(d) => Some(d.to_string()),
        meta_data_value::Data::BooleanValue(b) => Some(b.to_string()),
        meta_data_value::Data::BytesValue(_) => None,
    }
}

/// A boolean instruction, if present.
pub fn bool_instruction(
    instructions: &[ProcessingInstruction],
    key: ProcessingKey,
) -> Option<bool> {
    match instruction(instructions, key)? {
        meta_data_value::Data::BooleanValue(b) => Some(*b),
        meta_data_value::Data::TextValue(t) => t.trim().parse().ok(),
        meta_data_value::Data::NumberValue(n) => Some(*n != 0),
        _ => None,
    }
}

impl<H> Clone for Raw<H> {
    fn clone(&self) -> Self {
        Raw::from_vec(self.bytes.clone())
    }
}

impl<H> PartialEq for Raw<H> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<H> Eq for Raw<H> {}

impl<H> Default for Raw<H> {
    fn default() -> Self {
        Raw::from_vec(Vec::new())
    }
}

impl<H> fmt::Debug for Raw<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raw({} bytes)", self.bytes.len())
    }
}

impl<H> Message for Raw<H> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        _ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encode_key(tag, wire_type, &mut self.bytes);
        match wire_type {
            WireType::Varint => {
                let value = decode_varint(buf)?;
                encode_varint(value, &mut self.bytes);
            }
            WireType::SixtyFourBit => copy_exact(buf, 8, &mut self.bytes)?,
            WireType::ThirtyTwoBit => copy_exact(buf, 4, &mut self.bytes)?,
            WireType::LengthDelimited => {
                let len = decode_varint(buf)?;
                let len =
                    usize::try_from(len).map_err(|_| decode_error("field length overflows"))?;
                encode_varint(len as u64, &mut self.bytes);
                copy_exact(buf, len, &mut self.bytes)?;
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(decode_error("protobuf groups are not supported in events"));
            }
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }
}

/// prost offers no other public way to describe a decode failure of a hand-written `Message`.
#[allow(deprecated)]
fn decode_error(description: &'static str) -> DecodeError {
    DecodeError::new(description)
}

fn copy_exact(buf: &mut impl Buf, len: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if buf.remaining() < len {
        return Err(decode_error("buffer underflow"));
    }
    out.reserve(len);
    let mut left = len;
    while left > 0 {
        let chunk = buf.chunk();
        let take = chunk.len().min(left);
        out.put_slice(&chunk[..take]);
        buf.advance(take);
        left -= take;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::event::Event;
    use crate::grpc::{meta_data_value, MetaDataValue, SerializedObject};

    fn sample() -> Event {
        Event {
            message_identifier: "m1".into(),
            aggregate_identifier: "a1".into(),
            aggregate_sequence_number: 7,
            aggregate_type: "Order".into(),
            timestamp: -12,
            payload: Some(SerializedObject {
                r#type: "OrderPlaced".into(),
                revision: "2".into(),
                data: vec![0, 1, 2, 255],
            }),
            meta_data: [(
                "k".to_string(),
                MetaDataValue {
                    data: Some(meta_data_value::Data::DoubleValue(1.5)),
                },
            )]
            .into_iter()
            .collect(),
            snapshot: false,
        }
    }

    #[test]
    fn the_wire_types_carry_events_byte_for_byte() {
        let event = sample();
        let typed = crate::grpc::event::EventWithToken {
            token: 3,
            event: Some(event.clone()),
        };
        let bytes = typed.encode_to_vec();
        let wire =
            crate::wire::event::EventWithToken::decode(bytes.as_slice()).expect("decode wire");
        let raw = wire.event.clone().expect("raw event");
        assert_eq!(raw.as_bytes(), event.encode_to_vec().as_slice());
        assert_eq!(wire.encode_to_vec(), bytes, "re-encoding changes nothing");
        assert_eq!(Event::decode(raw.as_bytes()).expect("typed"), event);
    }

    #[test]
    fn unknown_fields_survive() {
        let mut bytes = sample().encode_to_vec();
        // Field 42 (length-delimited) that no definition of Event has.
        prost::encoding::string::encode(42, &"from the future".to_string(), &mut bytes);
        let raw = RawEvent::decode(bytes.as_slice()).expect("decode");
        assert_eq!(raw.as_bytes(), bytes.as_slice());
    }

    #[test]
    fn header_and_rewrites() {
        let mut raw = RawEvent::from_message(&sample());
        let header = raw.header().expect("header");
        assert_eq!(header.aggregate_identifier, "a1");
        assert_eq!(header.aggregate_sequence_number, 7);
        assert_eq!(
            header.payload.map(|p| p.r#type).as_deref(),
            Some("OrderPlaced")
        );
        raw.set_timestamp(99);
        raw.mark_snapshot();
        let typed = Event::decode(raw.as_bytes()).expect("typed");
        assert_eq!(typed.timestamp, 99);
        assert!(typed.snapshot);
        assert_eq!(typed.payload, sample().payload);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = sample().encode_to_vec();
        for cut in 1..bytes.len() {
            let _ = RawEvent::decode(&bytes[..cut]);
        }
        assert!(RawEvent::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
