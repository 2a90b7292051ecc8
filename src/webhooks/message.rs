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

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn endpoint(format: &str, previous_until: Option<DateTime<Utc>>) -> webhook_endpoint::Model {
        let now = Utc::now();
        webhook_endpoint::Model {
            id: "e".into(),
            tenant_id: "t".into(),
            url: "https://h.example/".into(),
            description: String::new(),
            event_types: "[]".into(),
            folder_keys: "[]".into(),
            format: format.into(),
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            secret: signing::new_secret(),
            previous_secret: previous_until.map(|_| signing::new_secret()),
            previous_secret_expires_at: previous_until,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn event() -> webhook_event::Model {
        webhook_event::Model {
            seq: 1,
            id: "6f1c2b9e-0000-4000-8000-000000000001".into(),
            tenant_id: "t".into(),
            event_type: "deployment.upgraded".into(),
            ordering_key: "d1".into(),
            deployment_id: Some("d1".into()),
            folder_id: None,
            from_version: Some(1),
            to_version: Some(2),
            actor: "a".into(),
            request_id: None,
            operation_id: None,
            data: None,
            created_at: Utc::now(),
            dispatched: true,
        }
    }

    fn header<'a>(out: &'a Outgoing, name: &str) -> Option<&'a str> {
        out.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_previous_secret_signs_only_until_it_expires() {
        let now = Utc::now();
        assert_eq!(signing_secrets(&endpoint("standard", None), now).len(), 1);
        let overlapping = endpoint("standard", Some(now + Duration::hours(1)));
        assert_eq!(signing_secrets(&overlapping, now).len(), 2);
        let expired = endpoint("standard", Some(now - Duration::seconds(1)));
        assert_eq!(
            signing_secrets(&expired, now),
            vec![expired.secret.as_str()]
        );
    }

    #[test]
    fn the_standard_body_wraps_data_and_cloudevents_puts_the_attributes_in_headers() {
        let data = serde_json::json!({"deploymentId": "d1"});
        let now = Utc::now();
        let standard = outgoing(
            &endpoint("standard", None),
            &event(),
            &data,
            "/uplift/o",
            now,
        );
        let body: Value = serde_json::from_slice(&standard.body).unwrap();
        assert_eq!(body["type"], "deployment.upgraded");
        assert_eq!(body["data"], data);
        assert_eq!(
            header(&standard, "webhook-id"),
            Some("evt_6f1c2b9e000040008000000000000001")
        );
        assert_eq!(header(&standard, "ce-type"), None);
        let ce = outgoing(
            &endpoint("cloudevents", None),
            &event(),
            &data,
            "/uplift/o",
            now,
        );
        let body: Value = serde_json::from_slice(&ce.body).unwrap();
        assert_eq!(body, data);
        assert_eq!(header(&ce, "ce-specversion"), Some("1.0"));
        assert_eq!(header(&ce, "ce-id"), header(&ce, "webhook-id"));
        assert_eq!(header(&ce, "ce-source"), Some("/uplift/o/t"));
        assert_eq!(
            header(&ce, "webhook-timestamp"),
            Some(now.timestamp().to_string().as_str())
        );
    }
}
