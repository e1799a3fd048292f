//! `RawEvent`: an Axon `Event` kept as the bytes the client sent. The server's generated code uses
//! it wherever the protocol carries an `Event`, so events are stored and served without decoding
//! and re-encoding them, and fields this build does not know (from newer clients) are never lost.
//! Only the header fields the server needs are ever decoded (`EventHeader`).

use prost::bytes::{Buf, BufMut};
use prost::encoding::{decode_varint, encode_key, encode_varint, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::log::EventHeader;

/// Field numbers of `io.axoniq.axonserver.grpc.event.Event` that the server rewrites.
const TIMESTAMP_FIELD: u32 = 5;
const SNAPSHOT_FIELD: u32 = 8;

/// An encoded `io.axoniq.axonserver.grpc.event.Event`, field for field as received.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct RawEvent {
    bytes: Vec<u8>,
}

impl RawEvent {
    /// Wraps stored bytes (an encoded `Event`) without copying them.
    pub fn from_vec(bytes: Vec<u8>) -> RawEvent {
        RawEvent { bytes }
    }

    /// Encodes a typed message (an `Event`) as a raw event.
    pub fn from_message(event: &impl Message) -> RawEvent {
        RawEvent {
            bytes: event.encode_to_vec(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.bytes
    }

    /// Decodes the fields routing and the sequence check need, skipping payload and metadata.
    pub fn header(&self) -> Result<EventHeader, DecodeError> {
        EventHeader::decode(self.as_bytes())
    }

    /// Sets `timestamp` by appending the field: for a scalar the last occurrence wins.
    pub fn set_timestamp(&mut self, timestamp_ms: i64) {
        prost::encoding::int64::encode(TIMESTAMP_FIELD, &timestamp_ms, &mut self.bytes);
    }

    /// Marks the event as a snapshot (appending `snapshot = true`).
    pub fn mark_snapshot(&mut self) {
        prost::encoding::bool::encode(SNAPSHOT_FIELD, &true, &mut self.bytes);
    }
}

impl Message for RawEvent {
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
