//! The SSRF guard: an endpoint URL is checked when it is registered (scheme, host,
//! an address literal's rules) and again before every delivery, when its host is
//! resolved once and every address it resolves to must pass the rules
//! (`domain::address`). The delivery then connects only to those addresses
//! (`transport.rs` pins them), so a DNS answer that changes between the check and the
//! connection (rebinding) cannot send it anywhere else.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use futures_util::future::BoxFuture;
use reqwest::Url;

use crate::address::AllowList;

/// Resolves a host name; a stub replaces it in tests.
pub trait Lookup: Send + Sync {
    fn lookup(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>>;
}

/// The system resolver.
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String, port: u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Where a delivery may connect: the URL and the vetted addresses of its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Why a delivery was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An address the rules refuse (recorded as `blocked_address`).
    Blocked(String),
    /// The host did not resolve.
    Resolve(String),
    /// The URL itself is unusable.
    Url(String),
}

impl Refusal {
    /// The attempt's error as recorded.
    pub fn recorded(&self) -> String {
        match self {
            Refusal::Blocked(why) => format!("blocked_address: {why}"),
            Refusal::Resolve(why) => format!("dns: {why}"),
            Refusal::Url(why) => format!("url: {why}"),
        }
    }
}

#[derive(Clone)]
pub struct Guard {
    lookup: Arc<dyn Lookup>,
    allow: AllowList,
    allow_http: bool,
}

impl Guard {
    pub fn new(lookup: Arc<dyn Lookup>, allow: AllowList, allow_http: bool) -> Self {
        Guard {
            lookup,
            allow,
            allow_http,
        }
    }

    /// The rules an endpoint's URL must meet to be registered: absolute `https` (or
    /// `http` when the operator allows it), a host, no credentials, and a host that is
    /// not an address the rules refuse. A name is checked at each delivery instead.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw.trim()).map_err(|e| format!("url {raw:?} is not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(
                    "url must be https:// (this server does not allow http:// endpoints)".into(),
                );
            }
            other => return Err(format!("url must be https://, not {other}://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url must not carry credentials (user:password@)".into());
        }
        if url.fragment().is_some() {
            return Err("url must not have a #fragment".into());
        }
        if url.as_str().len() > 2048 {
            return Err("url must be at most 2048 characters".into());
        }
        match url.host() {
            None => return Err("url must name a host".into()),
            Some(url::Host::Ipv4(ip)) => self.check_literal(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_literal(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }

    fn check_literal(&self, ip: IpAddr) -> Result<(), String> {
        match self.allow.refusal(ip) {
            None => Ok(()),
            Some(why) => Err(format!(
                "url names {ip}, a {why} address, which webhooks may not be sent to"
            )),
        }
    }

    /// Resolves the URL's host once and checks every address: one refused address
    /// refuses the delivery (a receiver's name must not point inside).
    pub async fn vet(&self, url: &Url) -> Result<Target, Refusal> {
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Refusal::Url("no port".into()))?;
        let (host, addrs) = match url.host() {
            None => return Err(Refusal::Url("no host".into())),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), vec![SocketAddr::new(ip.into(), port)]),
            Some(url::Host::Domain(name)) => {
                let addrs = self
                    .lookup
                    .lookup(name.to_string(), port)
                    .await
                    .map_err(|e| Refusal::Resolve(format!("{name}: {e}")))?;
                (name.to_string(), addrs)
            }
        };
        if addrs.is_empty() {
            return Err(Refusal::Resolve(format!("{host} has no address")));
        }
        for addr in &addrs {
            if let Some(why) = self.allow.refusal(addr.ip()) {
                return Err(Refusal::Blocked(format!(
                    "{host} resolves to {}, a {why} address",
                    addr.ip()
                )));
            }
        }
        Ok(Target {
            url: url.clone(),
            host,
            addrs,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{
        collections::HashMap,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// Answers from a fixed table and counts the lookups; never touches the network.
    pub(crate) struct StubLookup {
        pub table: HashMap<String, Vec<IpAddr>>,
        pub calls: AtomicUsize,
    }

    impl StubLookup {
        pub(crate) fn new(entries: &[(&str, &[&str])]) -> Arc<Self> {
            Arc::new(StubLookup {
                table: entries
                    .iter()
                    .map(|(host, ips)| {
                        (
                            host.to_string(),
                            ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                        )
                    })
                    .collect(),
                calls: AtomicUsize::new(0),
            })
        }
    }

    impl Lookup for StubLookup {
        fn lookup(
            &self,
            host: String,
            port: u16,
        ) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let found = self.table.get(&host).cloned();
            Box::pin(async move {
                found
                    .map(|ips| {
                        ips.into_iter()
                            .map(|ip| SocketAddr::new(ip, port))
                            .collect()
                    })
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
            })
        }
    }

    fn guard(lookup: Arc<StubLookup>, allow: &[&str], http: bool) -> Guard {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Guard::new(lookup, AllowList::parse(&allow).unwrap(), http)
    }

    #[test]
    fn registration_refuses_refused_address_literals_plain_http_and_credentials() {
        let g = guard(StubLookup::new(&[]), &[], false);
        for (url, words) in [
            ("https://127.0.0.1/hook", "loopback"),
            ("https://10.0.0.8/hook", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[::1]/hook", "loopback"),
            ("https://[::ffff:10.0.0.1]/hook", "private"),
            ("https://[fe80::1]/hook", "link-local"),
            ("https://0.0.0.0/hook", "unspecified"),
            ("http://hooks.example.com/", "https"),
            ("ftp://hooks.example.com/", "https"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let err = g.check_url(url).unwrap_err();
            assert!(err.contains(words), "{url}: {err}");
        }
        assert!(g.check_url("https://hooks.example.com/uplift").is_ok());
        assert!(g.check_url("https://93.184.216.34/uplift").is_ok());
        let open = guard(StubLookup::new(&[]), &["127.0.0.1/32"], true);
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
    }

    #[tokio::test]
    async fn a_name_is_refused_when_any_of_its_addresses_is_refused() {
        let lookup = StubLookup::new(&[
            ("inside.example", &["93.184.216.34", "10.1.1.1"]),
            ("metadata.example", &["169.254.169.254"]),
            ("mapped.example", &["::ffff:127.0.0.1"]),
            ("public.example", &["93.184.216.34", "2606:2800:220:1::1"]),
        ]);
        let g = guard(lookup.clone(), &[], false);
        for host in ["inside.example", "metadata.example", "mapped.example"] {
            let url = Url::parse(&format!("https://{host}/hook")).unwrap();
            match g.vet(&url).await {
                Err(Refusal::Blocked(why)) => assert!(why.contains(host), "{why}"),
                other => panic!("{host}: {other:?}"),
            }
        }
        let url = Url::parse("https://public.example:8443/hook").unwrap();
        let target = g.vet(&url).await.unwrap();
        assert_eq!(target.host, "public.example");
        assert_eq!(
            target.addrs,
            vec![
                "93.184.216.34:8443".parse().unwrap(),
                "[2606:2800:220:1::1]:8443".parse().unwrap()
            ]
        );
        let unknown = Url::parse("https://nowhere.example/").unwrap();
        assert!(matches!(g.vet(&unknown).await, Err(Refusal::Resolve(_))));
        assert_eq!(lookup.calls.load(Ordering::SeqCst), 5, "one lookup per vet");
    }

    #[tokio::test]
    async fn the_allow_list_opens_a_name_that_resolves_inside_it() {
        let lookup = StubLookup::new(&[("receiver.internal", &["10.20.0.5"])]);
        let url = Url::parse("https://receiver.internal/hook").unwrap();
        assert!(matches!(
            guard(lookup.clone(), &[], false).vet(&url).await,
            Err(Refusal::Blocked(_))
        ));
        let target = guard(lookup, &["10.20.0.0/16"], false)
            .vet(&url)
            .await
            .unwrap();
        assert_eq!(target.addrs, vec!["10.20.0.5:443".parse().unwrap()]);
    }
}
