//! Client addresses (spec §3.1): which IP a request comes from, normalized the
//! way Better Auth stores and keys it (IPv4 as is, IPv6 masked to its /64).

use std::net::IpAddr;

/// An address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.trim().parse::<IpAddr>().ok()?, Some(p.trim().parse::<u8>().ok()?)),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, unmap(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net) as u128, self.prefix, 32) == masked(u32::from(ip) as u128, self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// IPv4 as is; IPv4-mapped IPv6 as IPv4; other IPv6 fully expanded, lower-case, masked to /64.
pub fn normalize(ip: IpAddr) -> String {
    match unmap(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:04x}:{:04x}:{:04x}:{:04x}:0000:0000:0000:0000", s[0], s[1], s[2], s[3])
        }
    }
}

/// The client's address. `X-Forwarded-For` is believed only when the TCP peer
/// is a configured trusted proxy; the chain is then walked from the right,
/// skipping trusted hops. Without trusted proxies the peer address is the client,
/// so a spoofed header cannot choose a rate-limit bucket.
pub fn client_ip(peer: Option<&str>, forwarded_for: Option<&str>, trusted: &[IpNet]) -> Option<String> {
    let peer_ip = peer.and_then(|p| p.parse::<IpAddr>().ok());
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    match (peer_ip, forwarded_for) {
        (Some(p), Some(xff)) if is_trusted(p) => {
            for hop in xff.rsplit(',') {
                let ip = hop.trim().parse::<IpAddr>().ok()?;
                if !is_trusted(ip) {
                    return Some(normalize(ip));
                }
            }
            Some(normalize(p))
        }
        (Some(p), _) => Some(normalize(p)),
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_better_auth() {
        assert_eq!(normalize("2001:db8::1".parse().unwrap()), "2001:0db8:0000:0000:0000:0000:0000:0000");
        assert_eq!(normalize("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(normalize("192.168.1.9".parse().unwrap()), "192.168.1.9");
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        assert_eq!(client_ip(Some("10.0.0.5"), Some("1.2.3.4"), &[]).as_deref(), Some("10.0.0.5"));
    }

    #[test]
    fn forwarded_for_is_walked_through_trusted_proxies() {
        let trusted = [IpNet::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(Some("10.0.0.5"), Some("9.9.9.9, 1.2.3.4, 10.1.1.1"), &trusted).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(client_ip(Some("10.0.0.5"), Some("garbage"), &trusted), None);
        assert_eq!(client_ip(Some("10.0.0.5"), None, &trusted).as_deref(), Some("10.0.0.5"));
    }

    #[test]
    fn cidr_matching() {
        let net = IpNet::parse("2001:db8::/32").unwrap();
        assert!(net.contains("2001:db8:1::9".parse().unwrap()));
        assert!(!net.contains("2001:db9::1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("1.2.3.4/33").is_none());
    }
}
