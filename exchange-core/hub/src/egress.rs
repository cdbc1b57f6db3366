//! Where the hub may send data: one egress policy for every outbound connection to a subscriber-named host —
//! webhooks, SQL databases and Kafka clusters ([`EgressPolicy::check_channel`]).
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
//! SQL and Kafka targets are checked the same way, at request, at approval and whenever their sink is opened
//! (activation and every worker start); a SQL URL must name a network host — never a Unix socket (`?host=/…`,
//! `socket=`) — and a Kafka copy is checked against every broker its cluster's metadata names, not only the
//! bootstrap servers. Deliveries never use a proxy from the environment.
//!
//! Errors name the address class, so an operator knows why and what to allow (`[delivery]
//! egress_allow_cidrs`; `webhook_allow_cidrs` is its older name).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use unsilo_policy::model::Channel;

/// Why an address is not a public one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `169.254.0.0/16` (cloud metadata services live here), `fe80::/10`.
    LinkLocal,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), carrier-grade NAT `100.64/10`, unique-local `fc00::/7`,
    /// deprecated site-local `fec0::/10`.
    Private,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation ranges (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`).
    Documentation,
    /// Benchmarking (`198.18.0.0/15`, `2001:2::/48`).
    Benchmarking,
    /// Every other entry of the IANA special-purpose registries: IETF protocol assignments (`192.0.0/24`,
    /// `2001::/23`, Teredo included), reserved `240.0.0.0/4`, AS112, AMT, the 6to4 relay anycast, discard-only
    /// `100::/64`, local-use NAT64 `64:ff9b:1::/48`, SRv6 `5f00::/16`, and IPv4-compatible IPv6 (`::/96`).
    Reserved,
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
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => {
                "a reserved or special-purpose address (IANA special-purpose registry)"
            }
        }
    }
}

/// The IANA IPv4 special-purpose address registry (RFC 6890 and its updates), as `(network, class)`: every
/// network no delivery may reach unless `[delivery] egress_allow_cidrs` opens it. Rules as data: the docs print
/// this table (`docs/security.md`).
pub const IPV4_SPECIAL: &[(&str, AddressClass)] = &[
    ("0.0.0.0/8", AddressClass::Unspecified),
    ("10.0.0.0/8", AddressClass::Private),
    ("100.64.0.0/10", AddressClass::Private),
    ("127.0.0.0/8", AddressClass::Loopback),
    ("169.254.0.0/16", AddressClass::LinkLocal),
    ("172.16.0.0/12", AddressClass::Private),
    ("192.0.0.0/24", AddressClass::Reserved),
    ("192.0.2.0/24", AddressClass::Documentation),
    ("192.31.196.0/24", AddressClass::Reserved),
    ("192.52.193.0/24", AddressClass::Reserved),
    ("192.88.99.0/24", AddressClass::Reserved),
    ("192.168.0.0/16", AddressClass::Private),
    ("192.175.48.0/24", AddressClass::Reserved),
    ("198.18.0.0/15", AddressClass::Benchmarking),
    ("198.51.100.0/24", AddressClass::Documentation),
    ("203.0.113.0/24", AddressClass::Documentation),
    ("224.0.0.0/4", AddressClass::Multicast),
    ("255.255.255.255/32", AddressClass::Broadcast),
    ("240.0.0.0/4", AddressClass::Reserved),
];

/// The IANA IPv6 special-purpose address registry, as `(network, class)`. The prefixes that embed an IPv4
/// address (IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are not here: their IPv4
/// address is taken out and checked against [`IPV4_SPECIAL`] ([`embedded_ipv4`]).
pub const IPV6_SPECIAL: &[(&str, AddressClass)] = &[
    ("::/128", AddressClass::Unspecified),
    ("::1/128", AddressClass::Loopback),
    ("::/96", AddressClass::Reserved),
    ("64:ff9b:1::/48", AddressClass::Reserved),
    ("100::/64", AddressClass::Reserved),
    ("2001:2::/48", AddressClass::Benchmarking),
    ("2001:db8::/32", AddressClass::Documentation),
    ("2001::/23", AddressClass::Reserved),
    ("3fff::/20", AddressClass::Documentation),
    ("5f00::/16", AddressClass::Reserved),
    ("fc00::/7", AddressClass::Private),
    ("fe80::/10", AddressClass::LinkLocal),
    ("fec0::/10", AddressClass::Private),
    ("ff00::/8", AddressClass::Multicast),
];

/// The IPv4 address an IPv6 address carries, when it is of a form that delivers to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::/48`).
pub fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

fn table(entries: &'static [(&'static str, AddressClass)]) -> Vec<(IpNet, AddressClass)> {
    entries
        .iter()
        .filter_map(|(net, class)| net.parse().ok().map(|n| (n, *class)))
        .collect()
}

static SPECIAL: std::sync::LazyLock<Vec<(IpNet, AddressClass)>> = std::sync::LazyLock::new(|| {
    let mut all = table(IPV4_SPECIAL);
    all.extend(table(IPV6_SPECIAL));
    all
});

/// The class of a non-public address; `None` for a public one. An IPv6 address carrying an IPv4 one is judged
/// by the IPv4 address (see [`embedded_ipv4`]).
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = embedded_ipv4(v6) {
            return classify(IpAddr::V4(v4));
        }
    }
    SPECIAL
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, class)| *class)
}

/// The address a policy's allowlist is checked against: the IPv4 one an IPv6 address carries, or itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A refused destination.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The host is or resolves to a non-public address the policy does not allow.
    #[error("delivery host `{host}` resolves to {ip}, {}; delivery targets must be public addresses (an operator can allow a network with [delivery] egress_allow_cidrs)", class.describe())]
    Refused {
        /// The host as named in the URL.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// Its class.
        class: AddressClass,
    },
    /// The host could not be resolved.
    #[error("delivery host `{host}` does not resolve: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The URL has no host.
    #[error("the delivery target names no network host")]
    NoHost,
    /// The target is not a network address at all (a Unix socket, a file, a service file).
    #[error("{0}")]
    NotANetworkTarget(String),
}

/// Which non-public networks outbound deliveries may still reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
}

/// An entry of `egress_allow_cidrs` that is not a network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("egress_allow_cidrs: `{0}` is not a network such as 10.8.0.0/16")]
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
        let canonical = canonical(ip);
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
        let host = url.host_str().ok_or(EgressError::NoHost)?;
        self.check_host(host, url.port_or_known_default().unwrap_or(443))
            .await
    }

    /// Checks `host:port`: an IP literal directly, a name by resolving it and checking every address.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), EgressError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(EgressError::NoHost);
        }
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_ip(host, ip);
        }
        let addrs =
            tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| EgressError::Unresolvable {
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?;
        for addr in addrs {
            self.check_ip(host, addr.ip())?;
        }
        Ok(())
    }

    /// Checks a SQL target URL (`postgres://…`, `mysql://…`): it must name a network host — a Unix socket
    /// (`?host=/var/run/postgresql`, `socket=`), a `hostaddr` beside the host or a service file is refused —
    /// and that host must pass [`EgressPolicy::check_host`].
    pub async fn check_sql_url(&self, raw: &str) -> Result<(), EgressError> {
        let url = url::Url::parse(raw).map_err(|_| EgressError::NoHost)?;
        for (key, _) in url.query_pairs() {
            if matches!(
                key.to_ascii_lowercase().as_str(),
                "host"
                    | "hostaddr"
                    | "socket"
                    | "service"
                    | "passfile"
                    | "sslrootcert"
                    | "sslcert"
                    | "sslkey"
            ) {
                return Err(EgressError::NotANetworkTarget(format!(
                    "SQL target: the `{key}` parameter is not allowed; name the database server's network host in the URL itself (Unix sockets and files on the hub are never targets)"
                )));
            }
        }
        let host = url.host_str().ok_or(EgressError::NoHost)?;
        let decoded = percent_decoded(host);
        if decoded.starts_with('/') || decoded.starts_with('@') {
            return Err(EgressError::NotANetworkTarget(
                "SQL target: the host is a Unix socket path; only network hosts are targets".into(),
            ));
        }
        let default_port = if url.scheme().starts_with("postgres") {
            5432
        } else {
            3306
        };
        self.check_host(host, url.port().unwrap_or(default_port))
            .await
    }

    /// Checks Kafka bootstrap servers (`host:port,…`, an optional `SCHEME://` on each).
    pub async fn check_kafka_servers(&self, servers: &str) -> Result<(), EgressError> {
        let mut any = false;
        for server in servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            any = true;
            let server = server.rsplit("://").next().unwrap_or(server);
            let (host, port) = match server.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => {
                    (h, p.parse::<u16>().map_err(|_| EgressError::NoHost)?)
                }
                _ => (server, 9092),
            };
            self.check_host(host, port).await?;
        }
        if any {
            Ok(())
        } else {
            Err(EgressError::NoHost)
        }
    }

    /// Checks the target of a delivery channel: the webhook's URL, the SQL database's host, the Kafka
    /// cluster's bootstrap servers. Pull and the hub's own Kafka need no check.
    pub async fn check_channel(&self, channel: &Channel) -> Result<(), EgressError> {
        match channel {
            Channel::Webhook { url } => self.check_url(url).await,
            Channel::Sql { url, .. } => self.check_sql_url(url).await,
            Channel::Kafka {
                bootstrap_servers: Some(servers),
                ..
            } => self.check_kafka_servers(servers).await,
            Channel::Kafka {
                bootstrap_servers: None,
                ..
            }
            | Channel::Pull => Ok(()),
        }
    }
}

/// `%2F` and the like decoded (a host of `%2Fvar%2Frun` is a path).
fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("h={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
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
            // What a review found passing: NAT64, 6to4, IPv4-compatible, benchmarking, reserved, site-local and
            // IETF protocol ranges.
            ("64:ff9b::7f00:1", AddressClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressClass::LinkLocal),
            ("2002:7f00:1::1", AddressClass::Loopback),
            ("2002:c0a8:101::1", AddressClass::Private),
            ("::7f00:1", AddressClass::Reserved),
            ("::a00:1", AddressClass::Reserved),
            ("198.18.0.1", AddressClass::Benchmarking),
            ("198.19.255.254", AddressClass::Benchmarking),
            ("240.0.0.1", AddressClass::Reserved),
            ("fec0::1", AddressClass::Private),
            ("192.0.0.8", AddressClass::Reserved),
            ("2001:0:4136:e378::1", AddressClass::Reserved),
            ("2001:db8::1", AddressClass::Documentation),
            ("192.0.2.1", AddressClass::Documentation),
            ("100::1", AddressClass::Reserved),
            ("64:ff9b:1::1", AddressClass::Reserved),
        ] {
            assert_eq!(classify(ip(addr)), Some(class), "{addr}");
        }
        for public in [
            "8.8.8.8",
            "202.96.128.86",
            "2001:4860:4860::8888",
            "100.128.0.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2400:3200::1",
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
