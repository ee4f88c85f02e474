//! What one client may ask of the relay: requests per minute per IP on the costly HTTP routes,
//! open connections per IP (HTTP and libp2p), gossip messages per minute per publishing peer, and
//! how long a client may take to send its headers or to read a response.
//!
//! Every limit has a flag (`tabswarm-relay --help`), a count of what it refused (`/api/swarm`'s
//! `http_refused`, `connections_refused` and `rejected`; `/metrics`) and a test. Limits apply to the
//! client's IP, an IPv6 client's /64 (one machine's usual allocation), so a client cannot escape
//! them by changing the low bits of its address. Local processes (loopback) are not limited: they
//! are the operator's own, and a reverse proxy on the same host names the real client in
//! `X-Forwarded-For`, which the relay reads from loopback and from `--trusted-proxy` addresses only.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// What the relay allows one client; 0 in a count means no limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `POST /api/bindings` per client IP per minute.
    pub bindings_per_minute: u32,
    /// Checkpoint downloads (`GET /api/checkpoint/…`) per client IP per minute.
    pub downloads_per_minute: u32,
    /// `POST /api/model/updates` per client IP per minute.
    pub updates_per_minute: u32,
    /// Gossip messages one peer may publish per minute (counted at every relay, whichever relay
    /// passed them on; other relays are not limited).
    pub gossip_per_peer_per_minute: u32,
    /// Open HTTP connections per client IP.
    pub http_connections_per_ip: u32,
    /// Open HTTP connections in all.
    pub http_connections: u32,
    /// libp2p connections (in their handshake or established) per remote IP.
    pub swarm_connections_per_ip: u32,
    /// How long a client has to send a request's headers; also how long an idle keep-alive
    /// connection is kept.
    pub header_timeout: Duration,
    /// How long a response may wait for the client to read it before the connection is dropped.
    pub write_stall: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client (loopback always does).
    pub trusted_proxies: Vec<IpAddr>,
    /// Limit loopback clients too (for tests: by default local processes are not limited).
    pub limit_loopback: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Limits {
    /// Generous for people (a school's NAT puts many tabs behind one address; a tab binds once,
    /// downloads a checkpoint per new swarm version and posts one update every few rounds),
    /// tight enough that one address cannot keep the relay's disk, CPU or uplink busy.
    pub const DEFAULT: Limits = Self {
        bindings_per_minute: 30,
        downloads_per_minute: 60,
        updates_per_minute: 60,
        gossip_per_peer_per_minute: 120,
        http_connections_per_ip: 64,
        http_connections: 1024,
        swarm_connections_per_ip: 64,
        header_timeout: Duration::from_secs(15),
        write_stall: Duration::from_secs(60),
        trusted_proxies: Vec::new(),
        limit_loopback: false,
    };

    /// Whether per-IP limits apply to a client at `ip`.
    pub fn applies_to(&self, ip: IpAddr) -> bool {
        self.limit_loopback || !ip.to_canonical().is_loopback()
    }

    /// Whether the per-IP bound on open HTTP connections applies to a connection from `ip`: not
    /// to a trusted proxy, whose connections carry many clients (their requests are still limited
    /// by the address it names).
    pub fn bounds_connections_from(&self, ip: IpAddr) -> bool {
        self.applies_to(ip) && !self.trusted_proxies.contains(&ip.to_canonical())
    }

    /// The client a request came from: the connection's address, or, when that is loopback or a
    /// trusted proxy, the last address in `X-Forwarded-For` that is not (each proxy appends the
    /// address it was connected from, so everything to the left of the first untrusted one could
    /// have been written by the client itself).
    pub fn client_ip(&self, connection: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let trusted = |ip: IpAddr| ip.to_canonical().is_loopback() || self.trusted_proxies.contains(&ip.to_canonical());
        let mut client = connection.to_canonical();
        if !trusted(client) {
            return client;
        }
        for hop in forwarded_for.iter().rev().flat_map(|header| header.rsplit(',')) {
            match parse_hop(hop.trim()) {
                Some(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// The key a client's IP is limited under: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4),
/// IPv6 by its /64.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Token buckets by key: each key may spend `per_minute` at once and earns them back evenly over
/// a minute. At most `max_keys` keys are tracked (keys whose bucket is full again are forgotten
/// first); past that, new keys share one bucket, so a crowd of new addresses cannot grow the table
/// without bound and gets no more than one address would.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_minute: u32,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
    overflow: Option<Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, per_second: f64, capacity: f64) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * per_second;
        self.tokens = (self.tokens + earned).min(capacity);
        self.at = now;
    }
}

/// Keys a limiter tracks unless told otherwise.
pub const DEFAULT_MAX_KEYS: usize = 65_536;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// `per_minute` = 0: no limit.
    pub fn per_minute(per_minute: u32) -> Self {
        Self { per_minute, max_keys: DEFAULT_MAX_KEYS, buckets: HashMap::new(), overflow: None }
    }

    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// The limit per minute (0: none).
    pub fn limit(&self) -> u32 {
        self.per_minute
    }

    /// Spends one token of `key`'s bucket, or says how long until one is there.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.buckets.retain(|_, bucket| {
                bucket.refill(now, per_second, capacity);
                bucket.tokens < capacity
            });
        }
        let bucket = if self.buckets.len() < self.max_keys || self.buckets.contains_key(key) {
            self.buckets.entry(key.clone()).or_insert(Bucket { tokens: capacity, at: now })
        } else {
            self.overflow.get_or_insert(Bucket { tokens: capacity, at: now })
        };
        bucket.refill(now, per_second, capacity);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// What the HTTP side refused, by limit (`/api/swarm`'s `http_refused`): requests over a route's
/// rate (`bindings`, `downloads`, `updates`), connections over a per-IP or the total bound
/// (`connections_per_ip`, `connections`), clients too slow to send their headers (`slow_headers`)
/// or to read a response (`slow_reader`).
pub const HTTP_REFUSAL_KINDS: [&str; 7] =
    ["bindings", "downloads", "updates", "connections_per_ip", "connections", "slow_headers", "slow_reader"];

/// Counts of [`HTTP_REFUSAL_KINDS`], shared by the HTTP side and exported in `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct HttpRefusals {
    counts: Family<Vec<(String, String)>, Counter>,
}

impl HttpRefusals {
    /// Counters listed from the start (a dashboard shows 0 rather than nothing), registered as
    /// `http_refused{limit=…}`.
    pub fn register(registry: &mut Registry) -> Self {
        let refusals = Self::default();
        for kind in HTTP_REFUSAL_KINDS {
            let _ = refusals.counts.get_or_create(&labels(kind));
        }
        registry.register("http_refused", "HTTP requests and connections refused, by limit", refusals.counts.clone());
        refusals
    }

    pub fn count(&self, kind: &str) {
        self.counts.get_or_create(&labels(kind)).inc();
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        HTTP_REFUSAL_KINDS
            .iter()
            .map(|kind| ((*kind).to_owned(), self.counts.get_or_create(&labels(kind)).get()))
            .collect()
    }
}

fn labels(kind: &str) -> Vec<(String, String)> {
    vec![("limit".to_owned(), kind.to_owned())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_bucket_allows_its_minute_at_once_then_one_every_share_of_a_minute() {
        let mut limiter = RateLimiter::per_minute(6);
        let t0 = Instant::now();
        let a = ip("203.0.113.9");
        for i in 0..6 {
            assert_eq!(limiter.check(&a, t0), Ok(()), "request {i}");
        }
        let wait = limiter.check(&a, t0).expect_err("the seventh is refused");
        assert!((wait.as_secs_f64() - 10.0).abs() < 1e-6, "{wait:?}");
        // Another address has its own bucket.
        assert_eq!(limiter.check(&ip("203.0.113.10"), t0), Ok(()));
        // 9.9 s later still nothing; 10 s after the seventh's refusal one more.
        assert!(limiter.check(&a, t0 + Duration::from_millis(9_900)).is_err());
        assert_eq!(limiter.check(&a, t0 + Duration::from_secs(10)), Ok(()));
        assert!(limiter.check(&a, t0 + Duration::from_secs(10)).is_err());
        // A quiet minute refills the bucket, never beyond its size.
        let later = t0 + Duration::from_secs(600);
        for _ in 0..6 {
            assert_eq!(limiter.check(&a, later), Ok(()));
        }
        assert!(limiter.check(&a, later).is_err());
    }

    #[test]
    fn zero_means_no_limit() {
        let mut limiter = RateLimiter::per_minute(0);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(limiter.check(&1u32, now), Ok(()));
        }
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn past_its_key_budget_a_limiter_forgets_full_buckets_and_makes_new_keys_share_one() {
        let mut limiter = RateLimiter::per_minute(2).with_max_keys(3);
        let t0 = Instant::now();
        for key in 0..3u32 {
            limiter.check(&key, t0).expect("first request");
        }
        // The table is full of active keys: new ones share the overflow bucket.
        assert_eq!(limiter.check(&10, t0), Ok(()));
        assert_eq!(limiter.check(&11, t0), Ok(()));
        assert!(limiter.check(&12, t0).is_err(), "the shared bucket is spent");
        assert_eq!(limiter.tracked(), 3);
        // A minute on, the old keys' buckets are full again and are forgotten for new ones.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(limiter.check(&12, later), Ok(()));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), ip("2001:db8:1:2::"));
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(ip_key(ip("198.51.100.7")), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_for_is_believed_from_loopback_and_trusted_proxies_only() {
        let limits = Limits { trusted_proxies: vec![ip("10.0.0.2")], ..Limits::default() };
        // Straight from the internet: the header is the client's own words and is ignored.
        assert_eq!(limits.client_ip(ip("203.0.113.9"), &["1.2.3.4"]), ip("203.0.113.9"));
        // A proxy on the same host: the address it appended.
        assert_eq!(limits.client_ip(ip("127.0.0.1"), &["203.0.113.9"]), ip("203.0.113.9"));
        // A client that wrote its own header before the proxy appended the real address: the
        // rightmost untrusted entry wins.
        assert_eq!(limits.client_ip(ip("127.0.0.1"), &["1.2.3.4, 203.0.113.9"]), ip("203.0.113.9"));
        // Through two proxies (the trusted one at 10.0.0.2, then the local one), across headers.
        assert_eq!(limits.client_ip(ip("::1"), &["1.2.3.4, 203.0.113.9", "10.0.0.2"]), ip("203.0.113.9"));
        // Ports and brackets as some proxies write them.
        assert_eq!(limits.client_ip(ip("10.0.0.2"), &["[2001:db8::7]:4711"]), ip("2001:db8::7"));
        assert_eq!(limits.client_ip(ip("10.0.0.2"), &["203.0.113.9:80"]), ip("203.0.113.9"));
        // Garbage stops the walk at the last address that parsed.
        assert_eq!(limits.client_ip(ip("127.0.0.1"), &["203.0.113.9, nonsense"]), ip("127.0.0.1"));
        // A local process without the header is local, and not limited.
        assert_eq!(limits.client_ip(ip("127.0.0.1"), &[]), ip("127.0.0.1"));
        assert!(!limits.applies_to(ip("127.0.0.1")) && !limits.applies_to(ip("::ffff:127.0.0.1")));
        assert!(limits.applies_to(ip("203.0.113.9")));
        assert!(Limits { limit_loopback: true, ..Limits::default() }.applies_to(ip("127.0.0.1")));
        // A trusted proxy's connections carry many clients: not bounded per address.
        assert!(!limits.bounds_connections_from(ip("10.0.0.2")) && limits.bounds_connections_from(ip("10.0.0.3")));
    }
}
