//! What a delivery sends. Standard format: the body is `{type, timestamp, data}`.
//! CloudEvents (binary mode): the attributes are `ce-*` headers and the body is
//! `data`. Both carry the Standard Webhooks headers; the signature covers the body as
//! sent, and is made afresh at each attempt (a retry days later must still pass the
//! receivers' five-minute timestamp check).

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{webhook_endpoint, webhook_event};
use serde_json::{Value, json};

use super::{signing, transport::Outgoing};

pub const FORMAT_STANDARD: &str = "standard";
pub const FORMAT_CLOUDEVENTS: &str = "cloudevents";

/// The `webhook-id` of every delivery of the event (retries and replays alike), which
/// receivers use to drop duplicates.
pub fn webhook_id(event: &webhook_event::Model) -> String {
    format!("evt_{}", event.id.replace('-', ""))
}

/// The Standard Webhooks payload.
pub fn payload(event: &webhook_event::Model, data: &Value) -> Value {
    json!({
        "type": event.event_type,
        "timestamp": event.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
}

/// The secrets that sign now: the current one, and the previous one until it expires.
pub fn signing_secrets(endpoint: &webhook_endpoint::Model, now: DateTime<Utc>) -> Vec<&str> {
    let mut secrets = vec![endpoint.secret.as_str()];
    if let (Some(previous), Some(until)) = (
        endpoint.previous_secret.as_deref(),
        endpoint.previous_secret_expires_at,
    ) && until > now
    {
        secrets.push(previous);
    }
    secrets
}

pub fn outgoing(
    endpoint: &webhook_endpoint::Model,
    event: &webhook_event::Model,
    data: &Value,
    source: &str,
    now: DateTime<Utc>,
) -> Outgoing {
    let id = webhook_id(event);
    let mut headers: Vec<(String, String)> = Vec::new();
    let body = if endpoint.format == FORMAT_CLOUDEVENTS {
        headers.extend([
            ("ce-specversion".to_string(), "1.0".to_string()),
            ("ce-id".to_string(), id.clone()),
            (
                "ce-source".to_string(),
                format!("{source}/{}", event.tenant_id),
            ),
            ("ce-type".to_string(), event.event_type.clone()),
            (
                "ce-time".to_string(),
                event
                    .created_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            ("ce-subject".to_string(), event.ordering_key.clone()),
        ]);
        data.to_string().into_bytes()
    } else {
        payload(event, data).to_string().into_bytes()
    };
    let timestamp = now.timestamp();
    let signature =
        signing::signature_header(&signing_secrets(endpoint, now), &id, timestamp, &body);
    headers.extend([
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), id),
        ("webhook-timestamp".to_string(), timestamp.to_string()),
        ("webhook-signature".to_string(), signature),
    ]);
    Outgoing { headers, body }
}
