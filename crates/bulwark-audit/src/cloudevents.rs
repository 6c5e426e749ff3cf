//! The export as a CloudEvents 1.0 batch (`application/cloudevents-batch+json`): a JSON array of
//! structured-mode events a SIEM ingests as is, and that still verifies offline.
//!
//! In the order of the JSON Lines export:
//! - each audit event becomes `{"specversion":"1.0","id":<event id>,"source":<log origin>,
//!   "type":"dev.bulwark.event.<action>","time":<event time>,"subject":"<resource type>/<resource
//!   id>","datacontenttype":"application/json","bulwarkseq":<seq>,"data":<the event>}`;
//! - each signed checkpoint `{"specversion":"1.0","id":"<origin>@<size>","source":<origin>,
//!   "type":"dev.bulwark.checkpoint","datacontenttype":"text/plain","data":<signed note>}`;
//! - each event whose body retention pruned `{…,"type":"dev.bulwark.pruned","time":<event time>,
//!   "data":{"seq":N,"time":<event time>,"leaf_hash":"<base64>"}}`.
//!
//! Verification converts the batch back to JSON Lines (an event's canonical bytes are re-derived
//! from `data`) and checks that every envelope attribute agrees with its data, so neither the
//! data nor the envelope a SIEM displays can be edited without detection.

use serde_json::{Value, json};

use crate::event::Event;
use crate::export::{Pruned, checkpoint_line, header_line};

/// The `type` of a checkpoint element.
pub const CHECKPOINT_TYPE: &str = "dev.bulwark.checkpoint";
/// The `type` of an element standing for an event whose body retention pruned.
pub const PRUNED_TYPE: &str = "dev.bulwark.pruned";
const TYPE_PREFIX: &str = "dev.bulwark.event.";

/// A batch that cannot be converted; `element` is 1-based (0 for the batch itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("element {element}: {message}")]
pub struct CloudEventsError {
    /// Which element.
    pub element: usize,
    /// What is wrong.
    pub message: String,
}

fn err(element: usize, message: impl Into<String>) -> CloudEventsError {
    CloudEventsError {
        element,
        message: message.into(),
    }
}

/// Converts a JSON Lines export to a CloudEvents batch.
///
/// # Errors
/// When `jsonl` is not a well-formed export (never for one this crate rendered).
pub fn to_cloudevents(jsonl: &str) -> Result<String, CloudEventsError> {
    let mut lines = jsonl.lines();
    let header: Value = lines
        .next()
        .and_then(|h| serde_json::from_str(h).ok())
        .ok_or_else(|| err(0, "not an export header"))?;
    let origin = header
        .get("origin")
        .and_then(Value::as_str)
        .ok_or_else(|| err(0, "header without origin"))?;
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let value: Value = serde_json::from_str(line).map_err(|e| err(i + 1, e.to_string()))?;
        if let Some(note) = value.get("checkpoint").and_then(Value::as_str) {
            let size = note.lines().nth(1).unwrap_or("0");
            out.push(json!({
                "specversion": "1.0",
                "id": format!("{origin}@{size}"),
                "source": origin,
                "type": CHECKPOINT_TYPE,
                "datacontenttype": "text/plain",
                "data": note,
            }));
        } else if let Some(pruned) = value.get("pruned") {
            let p: Pruned =
                serde_json::from_value(pruned.clone()).map_err(|e| err(i + 1, e.to_string()))?;
            out.push(pruned_element(origin, &p));
        } else {
            let event =
                Event::from_canonical(line.as_bytes()).map_err(|e| err(i + 1, e.to_string()))?;
            out.push(envelope(&event, origin, value));
        }
    }
    serde_json::to_string(&out).map_err(|e| err(0, e.to_string()))
}

fn pruned_element(origin: &str, p: &Pruned) -> Value {
    json!({
        "specversion": "1.0",
        "id": format!("{origin}#{}", p.seq),
        "source": origin,
        "type": PRUNED_TYPE,
        "time": p.time,
        "datacontenttype": "application/json",
        "bulwarkseq": p.seq,
        "data": p,
    })
}

fn envelope(event: &Event, origin: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": event.id.to_string(),
        "source": origin,
        "type": format!("{TYPE_PREFIX}{}", event.payload.name()),
        "time": data.get("time"),
        "subject": format!("{}/{}", event.resource.kind, event.resource.id),
        "datacontenttype": "application/json",
        "bulwarkseq": event.seq,
        "data": data,
    })
}

/// Converts a CloudEvents batch back to the JSON Lines export it was made from, refusing any
/// element whose envelope disagrees with its data.
///
/// # Errors
/// The first element that is malformed or inconsistent.
pub fn from_cloudevents(text: &str) -> Result<String, CloudEventsError> {
    let batch: Vec<Value> =
        serde_json::from_str(text).map_err(|e| err(0, format!("not a JSON array: {e}")))?;
    let origin = batch
        .first()
        .and_then(|e| e.get("source"))
        .and_then(Value::as_str)
        .ok_or_else(|| err(0, "empty batch or no `source`: nothing to verify"))?
        .to_owned();
    let mut out = format!("{}\n", header_line(&origin));
    for (i, element) in batch.iter().enumerate() {
        let n = i + 1;
        if element.get("specversion").and_then(Value::as_str) != Some("1.0") {
            return Err(err(n, "`specversion` is not 1.0"));
        }
        if element.get("source").and_then(Value::as_str) != Some(origin.as_str()) {
            return Err(err(n, "`source` differs from the first element's"));
        }
        if element.get("type").and_then(Value::as_str) == Some(CHECKPOINT_TYPE) {
            let note = element
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| err(n, "checkpoint `data` is not a string"))?;
            out.push_str(&checkpoint_line(note));
        } else if element.get("type").and_then(Value::as_str) == Some(PRUNED_TYPE) {
            let p: Pruned = element
                .get("data")
                .and_then(|d| serde_json::from_value(d.clone()).ok())
                .ok_or_else(|| err(n, "pruned `data` is not `{seq, time, leaf_hash}`"))?;
            if pruned_element(&origin, &p) != *element {
                return Err(err(n, "the envelope disagrees with its `data`"));
            }
            out.push_str(&serde_json::json!({ "pruned": p }).to_string());
        } else {
            let data = element
                .get("data")
                .ok_or_else(|| err(n, "no `data`"))?
                .clone();
            let event: Event = serde_json::from_value(data.clone())
                .map_err(|e| err(n, format!("`data` is not an audit event: {e}")))?;
            let bytes = event.canonical_bytes().map_err(|e| err(n, e.to_string()))?;
            let canonical: Value =
                serde_json::from_slice(&bytes).map_err(|e| err(n, e.to_string()))?;
            if canonical != data {
                return Err(err(
                    n,
                    "`data` holds fields or values outside the event schema",
                ));
            }
            if envelope(&event, &origin, data) != *element {
                return Err(err(n, "the envelope disagrees with its `data`"));
            }
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
        out.push('\n');
    }
    Ok(out)
}
