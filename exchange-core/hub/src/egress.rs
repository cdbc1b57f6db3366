//! Where the hub may send data: the guard on outbound connections to subscriber-named hosts (webhooks).
//!
//! A webhook URL is chosen by an agency, so without a guard it could point the hub at its own network — the
//! admin API on loopback, a database on a private address, a cloud metadata service on `169.254.169.254` —
//! and turn the hub into a proxy (server-side request forgery). [`EgressPolicy`] refuses every address that is
//! loopback, link-local, private (RFC 1918, unique-local IPv6, carrier-grade NAT), unspecified, multicast or
//! broadcast, unless `[delivery] webhook_allow_cidrs` allows its network. It is checked
//!
//! - when a subscription is requested and when it is approved ([`EgressPolicy::check_url`], which resolves the
//!   host and checks every address it resolves to), and
//! - at every connection the webhook client opens ([`GuardedResolver`], the client's DNS resolver, plus a check
//!   of IP-literal hosts before each delivery), so a name that resolved to a public address at approval and to
//!   an internal one later (DNS rebinding) is refused then too.
//!
//! Errors name the address class, so an operator knows why and what to allow.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Why an address is not a public one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), carrier-grade NAT `100.64/10`, unique-local `fc00::/7`.
    Private,
    /// `0.0.0.0`, `::` (and the rest of `0.0.0.0/8`).
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
}

impl AddressClass {
    /// The class in words, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::LinkLocal => "a link-local address (cloud metadata services live there)",
            Self::Private => "a private-network address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
        }
    }
}

/// The class of a non-public address; `None` for a public one.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some(AddressClass::Loopback)
            } else if v4.is_link_local() {
                Some(AddressClass::LinkLocal)
            } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xC0) == 64) {
                Some(AddressClass::Private)
            } else if o[0] == 0 {
                Some(AddressClass::Unspecified)
            } else if v4.is_multicast() {
                Some(AddressClass::Multicast)
            } else if v4.is_broadcast() {
                Some(AddressClass::Broadcast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some(AddressClass::Loopback)
            } else if v6.is_unspecified() {
                Some(AddressClass::Unspecified)
            } else if (first & 0xffc0) == 0xfe80 {
                Some(AddressClass::LinkLocal)
            } else if (first & 0xfe00) == 0xfc00 {
                Some(AddressClass::Private)
            } else if v6.is_multicast() {
                Some(AddressClass::Multicast)
            } else {
                None
            }
        }
    }
}

/// A refused destination.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The host is or resolves to a non-public address the policy does not allow.
    #[error("webhook host `{host}` resolves to {ip}, {}; webhook targets must be public addresses (an operator can allow a network with [delivery] webhook_allow_cidrs)", class.describe())]
    Refused {
        /// The host as named in the URL.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// The host could not be resolved.
    #[error("webhook host `{host}` does not resolve: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The URL has no host.
    #[error("webhook url has no host")]
    NoHost,
}

/// Which non-public networks outbound deliveries may still reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

/// An entry of `webhook_allow_cidrs` that is not a network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("webhook_allow_cidrs: `{0}` is not a network such as 10.8.0.0/16")]
pub struct NotANetwork(pub String);

impl EgressPolicy {
    /// A policy allowing these networks (`"10.8.0.0/16"`, `"127.0.0.1/32"`, `"::1/128"`) besides public
    /// addresses. Errors name the entry that is not a network.
    pub fn new(allow_cidrs: &[String]) -> Result<Self, NotANetwork> {
        let allow = allow_cidrs
            .iter()
            .map(|c| {
                c.trim()
                    .parse::<IpNet>()
                    .map_err(|_| NotANetwork(c.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allow })
    }

    /// Whether `ip` may be connected to; `host` names it in the error.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        let Some(class) = classify(ip) else {
            return Ok(());
        };
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.allow.iter().any(|n| n.contains(&canonical)) {
            return Ok(());
        }
        Err(EgressError::Refused {
            host: host.to_owned(),
            ip,
            class,
        })
    }

    /// The IP literal a URL names, if its host is one.
    pub fn literal_host(url: &reqwest::Url) -> Option<IpAddr> {
        let host = url.host_str()?;
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()
    }

    /// Checks a URL's host: an IP literal directly, a name by resolving it and checking every address.
    pub async fn check_url(&self, raw: &str) -> Result<(), EgressError> {
        let url = reqwest::Url::parse(raw).map_err(|_| EgressError::NoHost)?;
        let host = url.host_str().ok_or(EgressError::NoHost)?.to_owned();
        if let Some(ip) = Self::literal_host(&url) {
            return self.check_ip(&host, ip);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| EgressError::Unresolvable {
                host: host.clone(),
                reason: e.to_string(),
            })?;
        for addr in addrs {
            self.check_ip(&host, addr.ip())?;
        }
        Ok(())
    }
}

/// The webhook client's DNS resolver: resolves with the system resolver and refuses a name if any address it
/// resolves to is refused by the policy (so a mix of public and internal answers cannot slip through).
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl GuardedResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                policy.check_ip(&host, addr.ip())?;
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_classified() {
        for (addr, class) in [
            ("127.0.0.1", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("169.254.169.254", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("10.1.2.3", AddressClass::Private),
            ("172.16.0.1", AddressClass::Private),
            ("192.168.1.1", AddressClass::Private),
            ("100.64.0.1", AddressClass::Private),
            ("fd00::1", AddressClass::Private),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("224.0.0.1", AddressClass::Multicast),
            ("ff02::1", AddressClass::Multicast),
            ("255.255.255.255", AddressClass::Broadcast),
        ] {
            assert_eq!(classify(ip(addr)), Some(class), "{addr}");
        }
        for public in [
            "8.8.8.8",
            "202.96.128.86",
            "2001:4860:4860::8888",
            "100.128.0.1",
        ] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[tokio::test]
    async fn urls_to_internal_hosts_are_refused_unless_allowed() {
        let strict = EgressPolicy::default();
        let err = strict
            .check_url("http://127.0.0.1:9/hook")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = strict
            .check_url("https://169.254.169.254/latest/meta-data")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("link-local"), "{err}");
        let err = strict.check_url("https://localhost/x").await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = strict
            .check_url("https://[::ffff:10.0.0.1]/")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("private"), "{err}");

        let allowing = EgressPolicy::new(&["127.0.0.0/8".into()]).unwrap();
        allowing.check_url("http://127.0.0.1:9/hook").await.unwrap();
        assert!(allowing
            .check_url("https://169.254.169.254/")
            .await
            .is_err());
        assert!(EgressPolicy::new(&["not-a-net".into()])
            .unwrap_err()
            .to_string()
            .contains("not-a-net"));
    }
}
