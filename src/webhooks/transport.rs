//! Sending one delivery: the guard vets the URL's addresses (`guard.rs`), then the
//! transport connects to exactly those addresses. The HTTP transport pins them with
//! reqwest's `resolve_to_addrs` on a client made for that host and those addresses
//! (kept for reuse), so reqwest never looks the name up itself; it follows no
//! redirect (a 3xx is a failure), uses no proxy from the environment (a proxy would
//! connect on its own terms), and gives up after the timeout.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;

use super::guard::{Guard, Refusal, Target};

/// What is sent: headers and body (the URL comes from the endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
}

/// Why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Refused(Refusal),
    Timeout,
    Connect(String),
    Other(String),
}

impl Failure {
    pub fn recorded(&self) -> String {
        match self {
            Failure::Refused(refusal) => refusal.recorded(),
            Failure::Timeout => "timeout".into(),
            Failure::Connect(why) => format!("connect: {why}"),
            Failure::Other(why) => format!("request: {why}"),
        }
    }
}

/// Connects to a vetted target and sends; tests replace it with a recorder.
pub trait Transport: Send + Sync {
    fn send(&self, target: Target, outgoing: Outgoing) -> BoxFuture<'_, Result<Answer, Failure>>;
}

/// Vets, then sends through `transport`; the time it took, and the answer or why not.
pub async fn deliver(
    guard: &Guard,
    transport: &dyn Transport,
    url: &reqwest::Url,
    outgoing: Outgoing,
) -> (Duration, Result<Answer, Failure>) {
    let started = Instant::now();
    let result = match guard.vet(url).await {
        Ok(target) => transport.send(target, outgoing).await,
        Err(refusal) => Err(Failure::Refused(refusal)),
    };
    (started.elapsed(), result)
}

/// Clients kept per (host, pinned addresses); bounded, cleared when full.
const MAX_CLIENTS: usize = 256;

pub struct HttpTransport {
    timeout: Duration,
    clients: Mutex<HashMap<(String, Vec<SocketAddr>), reqwest::Client>>,
}

impl HttpTransport {
    pub fn new(timeout: Duration) -> Self {
        HttpTransport {
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client_for(&self, target: &Target) -> Result<reqwest::Client, Failure> {
        let key = (target.host.clone(), target.addrs.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .resolve_to_addrs(&target.host, &target.addrs)
            .user_agent(concat!("uplift-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Other(e.to_string()))?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }
}

impl Transport for HttpTransport {
    fn send(&self, target: Target, outgoing: Outgoing) -> BoxFuture<'_, Result<Answer, Failure>> {
        Box::pin(async move {
            let client = self.client_for(&target)?;
            let mut request = client.post(target.url.clone()).body(outgoing.body);
            for (name, value) in &outgoing.headers {
                request = request.header(name, value);
            }
            let response = request.send().await.map_err(|e| {
                if e.is_timeout() {
                    Failure::Timeout
                } else if e.is_connect() {
                    Failure::Connect(root_cause(&e))
                } else {
                    Failure::Other(root_cause(&e))
                }
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // The body is not read beyond what arrives within the timeout: a receiver
            // that answers and then trickles its body does not hold the sender.
            let _ = tokio::time::timeout(Duration::from_secs(1), response.bytes()).await;
            Ok(Answer {
                status,
                retry_after,
            })
        })
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{address::AllowList, webhooks::guard::tests::StubLookup};

    /// Records what it was asked to connect to and never connects.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<Target>>,
    }

    impl Transport for Recorder {
        fn send(&self, target: Target, _: Outgoing) -> BoxFuture<'_, Result<Answer, Failure>> {
            self.sent.lock().unwrap().push(target);
            Box::pin(async {
                Ok(Answer {
                    status: 204,
                    retry_after: None,
                })
            })
        }
    }

    fn outgoing() -> Outgoing {
        Outgoing {
            headers: vec![],
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn the_transport_is_given_exactly_the_vetted_addresses_from_one_lookup() {
        let lookup = StubLookup::new(&[("hooks.example", &["93.184.216.34"])]);
        let guard = Guard::new(lookup.clone(), AllowList::default(), false);
        let recorder = Recorder::default();
        let url = reqwest::Url::parse("https://hooks.example/in").unwrap();

        let (_, result) = deliver(&guard, &recorder, &url, outgoing()).await;

        assert_eq!(result.unwrap().status, 204);
        let sent = recorder.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].host, "hooks.example");
        assert_eq!(sent[0].addrs, vec!["93.184.216.34:443".parse().unwrap()]);
        assert_eq!(lookup.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_name_that_rebinds_to_a_refused_address_is_never_handed_to_the_transport() {
        // The name passed at registration (names are not resolved then); at delivery
        // it resolves to the metadata address, and nothing is sent.
        let lookup = StubLookup::new(&[("rebound.example", &["169.254.169.254"])]);
        let guard = Guard::new(lookup, AllowList::default(), false);
        let url = guard.check_url("https://rebound.example/in").unwrap();
        let recorder = Recorder::default();

        let (_, result) = deliver(&guard, &recorder, &url, outgoing()).await;

        match result {
            Err(failure @ Failure::Refused(Refusal::Blocked(_))) => {
                assert!(failure.recorded().starts_with("blocked_address: "));
            }
            other => panic!("{other:?}"),
        }
        assert!(recorder.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_http_transport_connects_to_the_pinned_address_not_to_what_the_name_resolves_to() {
        // A receiver on loopback; the URL's name does not exist in any DNS, so the
        // request can only arrive through the pinned address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let lookup = StubLookup::new(&[("receiver.invalid", &["127.0.0.1"])]);
        let guard = Guard::new(
            lookup,
            AllowList::parse(&["127.0.0.1/32".into()]).unwrap(),
            true,
        );
        let transport = Arc::new(HttpTransport::new(Duration::from_secs(5)));
        let url = reqwest::Url::parse(&format!("http://receiver.invalid:{port}/in")).unwrap();

        let (_, result) = deliver(&guard, transport.as_ref(), &url, outgoing()).await;

        assert_eq!(result.unwrap().status, 202);
        let request = served.await.unwrap();
        assert!(request.starts_with("POST /in HTTP/1.1"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("host: receiver.invalid")
        );
    }
}
