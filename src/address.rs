//! Which addresses a webhook may be sent to (a leaf: the settings validate the
//! allow-list with it, the webhook guard applies it). Refused: loopback, private (10/8,
//! 172.16/12, 192.168/16, 100.64/10 shared, fc00::/7 unique local), link-local
//! (169.254/16 with the cloud metadata address, fe80::/10), unspecified (0/8, ::),
//! multicast, broadcast and reserved, and the IPv4-mapped, IPv4-compatible and NAT64
//! forms of all of these. An operator's allow-list opens chosen ranges.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// Why an address is refused (`None`: it may be used).
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 10 || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("private (shared address space)")
    } else if a == 169 && b == 254 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved or broadcast")
    } else {
        None
    }
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xff00 == 0xff00 {
        Some("multicast")
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, not `::` or `::1`) or NAT64 (`64:ff9b::a.b.c.d`) address: each
/// reaches that IPv4 address, so it gets that address's rules.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    None
}

/// An address range, `a.b.c.d/n` or `x::y/n` (a bare address is one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), self.prefix, 32)
                    == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            // An IPv4 range also holds the IPv4-mapped forms of its addresses.
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    bits >> (width - prefix)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address range (a.b.c.d/n or x::y/n)"))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The operator's allow-list (`UPLIFT_WEBHOOK_ALLOW_NETWORKS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    pub fn parse(ranges: &[String]) -> Result<Self, String> {
        ranges
            .iter()
            .flat_map(|r| r.split([',', ' ']))
            .filter(|r| !r.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList)
    }

    /// Why `ip` may not be used, or `None` when it may (allowed, or not refused).
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.0.iter().any(|range| range.contains(ip)) {
            return None;
        }
        refusal(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_private_link_local_unspecified_and_multicast_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
        ] {
            assert!(refusal(ip(refused)).is_some(), "{refused} must be refused");
        }
    }

    #[test]
    fn public_addresses_and_the_neighbours_of_the_refused_ranges_are_allowed() {
        for allowed in [
            "93.184.216.34",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "11.0.0.1",
            "2606:4700::1111",
            "fec0::1",
            "fbff::1",
        ] {
            assert_eq!(refusal(ip(allowed)), None, "{allowed} must be allowed");
        }
    }

    #[test]
    fn ipv4_mapped_compatible_and_nat64_forms_get_the_rules_of_their_ipv4_address() {
        for refused in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
        ] {
            assert!(refusal(ip(refused)).is_some(), "{refused} must be refused");
        }
        assert_eq!(refusal(ip("::ffff:93.184.216.34")), None);
        assert_eq!(refusal(ip("64:ff9b::808:808")), None);
    }

    #[test]
    fn the_allow_list_opens_only_its_ranges_and_an_ipv4_range_holds_its_mapped_forms() {
        let allow =
            AllowList::parse(&["127.0.0.1/32, 10.20.0.0/16".into(), "fd00::/8".into()]).unwrap();
        assert_eq!(allow.refusal(ip("127.0.0.1")), None);
        assert_eq!(allow.refusal(ip("::ffff:127.0.0.1")), None);
        assert!(allow.refusal(ip("127.0.0.2")).is_some());
        assert_eq!(allow.refusal(ip("10.20.99.1")), None);
        assert!(allow.refusal(ip("10.21.0.1")).is_some());
        assert_eq!(allow.refusal(ip("fd12::1")), None);
        assert!(allow.refusal(ip("fc00::1")).is_some());
        assert!(allow.refusal(ip("::1")).is_some());
    }

    #[test]
    fn a_malformed_range_is_refused_with_its_text() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0/8",
            "1.2.3.4/x",
        ] {
            let err = AllowList::parse(&[bad.into()]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        let zero: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(zero.contains(ip("10.0.0.1")));
        assert_eq!(zero.to_string(), "0.0.0.0/0");
    }
}
