//! The JSON forms of Axon messages on the REST API, as Axon Server writes them: serialized objects
//! as `{type, revision, data}` with `data` the payload's UTF-8 text (bytes that are not UTF-8 are
//! base64, marked `encoding: "base64"`, where Axon would mangle them), metadata as plain JSON
//! values, events as Axon's JsonEvent; and the reverse for what scripts send in.

use std::collections::HashMap;

use base64::Engine;
use myelin_protocol::grpc::event::Event;
use myelin_protocol::grpc::{meta_data_value, MetaDataValue, SerializedObject};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api_error::ApiError;

/// A payload's bytes as text, and how they were encoded (`None` for UTF-8 as is).
pub(super) fn payload_text(bytes: &[u8]) -> (String, Option<&'static str>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64"),
        ),
    }
}

/// Metadata as a JSON object: text, numbers and booleans as they are, serialized objects as
/// `{type, revision, data}`.
pub(super) fn metadata_json(meta_data: &HashMap<String, MetaDataValue>) -> Value {
    let mut object = Map::new();
    let mut keys: Vec<&String> = meta_data.keys().collect();
    keys.sort();
    for key in keys {
        let value = match &meta_data[key].data {
            Some(meta_data_value::Data::TextValue(t)) => json!(t),
            Some(meta_data_value::Data::NumberValue(n)) => json!(n),
            Some(meta_data_value::Data::BooleanValue(b)) => json!(b),
            Some(meta_data_value::Data::DoubleValue(d)) => json!(d),
            Some(meta_data_value::Data::BytesValue(object)) => serialized_json(object),
            None => Value::Null,
        };
        object.insert(key.clone(), value);
    }
    Value::Object(object)
}

/// A serialized object (a command's or query's payload, a metadata value) as JSON.
pub(super) fn serialized_json(object: &SerializedObject) -> Value {
    let (data, encoding) = payload_text(&object.data);
    let mut value = json!({ "type": object.r#type, "revision": object.revision, "data": data });
    if let Some(encoding) = encoding {
        value["encoding"] = json!(encoding);
    }
    value
}

/// JSON metadata sent in by a script: strings, integers, floats and booleans.
pub(super) fn metadata_from_json(
    meta_data: &Map<String, Value>,
) -> Result<HashMap<String, MetaDataValue>, ApiError> {
    meta_data
        .iter()
        .map(|(key, value)| {
            let data = match value {
                Value::String(s) => meta_data_value::Data::TextValue(s.clone()),
                Value::Bool(b) => meta_data_value::Data::BooleanValue(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => meta_data_value::Data::NumberValue(i),
                    None => meta_data_value::Data::DoubleValue(n.as_f64().unwrap_or_default()),
                },
                other => {
                    return Err(ApiError::InvalidRequest(format!(
                        "metadata {key} must be a string, number or boolean, not {other}"
                    )))
                }
            };
            Ok((key.clone(), MetaDataValue { data: Some(data) }))
        })
        .collect()
}

/// A payload sent in as JSON: a string is taken as it is, anything else as its JSON text.
pub(super) fn payload_bytes(payload: &Value) -> Vec<u8> {
    match payload {
        Value::String(text) => text.clone().into_bytes(),
        Value::Null => Vec::new(),
        other => other.to_string().into_bytes(),
    }
}

/// An event as the REST API shows it (Axon's JsonEvent); `token` is its global position when it
/// has one.
pub(super) fn event_json(event: &Event, token: Option<u64>) -> Value {
    let mut value = json!({
        "messageIdentifier": event.message_identifier,
        "aggregateIdentifier": event.aggregate_identifier,
        "aggregateSequenceNumber": event.aggregate_sequence_number,
        "aggregateType": event.aggregate_type,
        "payload": event.payload.as_ref().map(serialized_json),
        "timestamp": event.timestamp,
        "metaData": metadata_json(&event.meta_data),
    });
    if let Some(token) = token {
        value["token"] = json!(token);
    }
    if event.snapshot {
        value["snapshot"] = json!(true);
    }
    value
}

/// A payload sent in: Axon's `{type, data, revision}`, or (Myelin's shorthand) any JSON value
/// with its type in `payloadType`.
pub(super) fn serialized_object(
    payload: &Value,
    payload_type: Option<String>,
    revision: Option<String>,
) -> SerializedObject {
    match payload {
        Value::Object(object) if object.contains_key("type") && object.contains_key("data") => {
            let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
            SerializedObject {
                r#type: text("type").to_string(),
                revision: text("revision").to_string(),
                data: payload_bytes(&object["data"]),
            }
        }
        other => SerializedObject {
            r#type: payload_type.unwrap_or_default(),
            revision: revision.unwrap_or_default(),
            data: payload_bytes(other),
        },
    }
}

/// An event (or snapshot) sent in by a script.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JsonEvent {
    message_identifier: Option<String>,
    aggregate_identifier: Option<String>,
    aggregate_sequence_number: Option<i64>,
    aggregate_type: Option<String>,
    #[serde(default)]
    payload: Value,
    payload_type: Option<String>,
    payload_revision: Option<String>,
    timestamp: Option<i64>,
    #[serde(default)]
    meta_data: Map<String, Value>,
}

impl JsonEvent {
    /// The protobuf event; a missing identifier is generated and a missing timestamp is now.
    pub fn into_event(self, snapshot: bool) -> Result<Event, ApiError> {
        let payload = serialized_object(&self.payload, self.payload_type, self.payload_revision);
        if payload.r#type.is_empty() {
            return Err(ApiError::InvalidEvent(
                "the payload needs a type: payload {type, data, revision}".to_string(),
            ));
        }
        Ok(Event {
            message_identifier: self
                .message_identifier
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            aggregate_identifier: self.aggregate_identifier.unwrap_or_default(),
            aggregate_sequence_number: self.aggregate_sequence_number.unwrap_or(0),
            aggregate_type: self.aggregate_type.unwrap_or_default(),
            timestamp: self
                .timestamp
                .filter(|t| *t > 0)
                .unwrap_or_else(crate::scheduler::now_ms),
            payload: Some(payload),
            meta_data: metadata_from_json(&self.meta_data)?,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_text_when_they_can_be() {
        assert_eq!(payload_text(b"{\"a\":1}"), ("{\"a\":1}".to_string(), None));
        assert_eq!(
            payload_text(&[0xff, 0x00]),
            ("/wA=".to_string(), Some("base64"))
        );
    }

    #[test]
    fn a_json_event_round_trips() {
        let sent: JsonEvent = serde_json::from_value(json!({
            "aggregateIdentifier": "card-1",
            "aggregateSequenceNumber": 2,
            "aggregateType": "GiftCard",
            "payload": {"type": "Redeemed", "data": "{\"amount\":5}"},
            "metaData": {"tenant": "t1", "attempt": 3, "trusted": true}
        }))
        .expect("parses");
        let event = sent.into_event(false).expect("valid");
        let shown = event_json(&event, Some(7));
        assert_eq!(shown["token"], 7);
        assert_eq!(shown["payload"]["type"], "Redeemed");
        assert_eq!(shown["payload"]["data"], "{\"amount\":5}");
        assert_eq!(shown["metaData"]["attempt"], 3);
        assert_eq!(shown["metaData"]["trusted"], true);
        assert_eq!(shown["aggregateSequenceNumber"], 2);
        assert!(!shown["messageIdentifier"].as_str().unwrap_or("").is_empty());
    }

    #[test]
    fn the_flat_shorthand_takes_any_json_payload() {
        let sent: JsonEvent =
            serde_json::from_value(json!({"payloadType": "Noted", "payload": {"n": 1}}))
                .expect("parses");
        let event = sent.into_event(false).expect("valid");
        let payload = event.payload.expect("payload");
        assert_eq!(payload.r#type, "Noted");
        assert_eq!(payload.data, b"{\"n\":1}".to_vec());
    }

    #[test]
    fn an_event_needs_a_payload_type() {
        let sent: JsonEvent = serde_json::from_value(json!({"payload": "x"})).expect("parses");
        assert!(matches!(
            sent.into_event(false),
            Err(ApiError::InvalidEvent(_))
        ));
    }
}
