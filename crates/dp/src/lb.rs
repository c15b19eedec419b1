//! Endpoint selection: round robin (the default, a lock-free cursor), and what a
//! MeshLoadBalancingStrategy asks for ([`Balancer::Policy`]): least request (the fewest
//! requests in flight among `choiceCount` random endpoints), random, ring hash (a sorted
//! ring of endpoint hashes, looked up by binary search) and Maglev (a lookup table), over
//! locality priorities (this zone first, other zones by failover rule). Rings and tables are
//! built when the config or the endpoints change, never per request.
//!
//! Every algorithm yields an *order*: the chosen endpoint first, then the ones to fall to
//! when it refuses or is ejected (the next ring or table entries for the hashing ones), then
//! the other priorities', so that a caller skipping endpoints still reaches every one.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use aerie_core::policies::meshloadbalancingstrategy::resolve::{HashPolicy, LoadBalancer};
use aerie_core::policies::meshloadbalancingstrategy::{Algorithm, HashFunction, HashKey};
use http::{HeaderMap, Uri};
use xxhash_rust::xxh64::xxh64;

use crate::rng::random_below;

/// A lock-free round-robin cursor. `order(n)` yields every index once, starting at the next
/// position, so a caller can fall through to the following endpoints when one refuses.
#[derive(Debug, Default)]
pub(crate) struct RoundRobin(AtomicUsize);

impl RoundRobin {
    pub fn order(&self, n: usize) -> impl Iterator<Item = usize> {
        let start = self.next(n);
        (0..n).map(move |i| (start + i) % n)
    }

    fn next(&self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.0.fetch_add(1, Ordering::Relaxed) % n
        }
    }
}

/// How a listener picks among its endpoints.
pub(crate) enum Balancer {
    /// No MeshLoadBalancingStrategy: round robin over every endpoint.
    RoundRobin(RoundRobin),
    Policy(Box<PolicyBalancer>),
}

impl Default for Balancer {
    fn default() -> Balancer {
        Balancer::RoundRobin(RoundRobin::default())
    }
}

/// The source address of the request's downstream connection, put in the request's
/// extensions only when a balancer hashes it ([`Balancer::wants_source_ip`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceIp(pub IpAddr);

/// Cookies a hash policy with a `ttl` generated for a request that lacked them (Envoy's
/// `addDownstreamSetCookie`), put in the request's extensions only then: the request is
/// hashed on them, and its response sets them.
#[derive(Debug, Clone, Default)]
pub(crate) struct GeneratedCookies(pub Vec<GeneratedCookie>);

#[derive(Debug, Clone)]
pub(crate) struct GeneratedCookie {
    pub name: String,
    /// 16 hex digits.
    pub value: String,
    pub path: Option<String>,
    pub ttl_ms: u64,
}

impl GeneratedCookie {
    /// Envoy's `Set-Cookie` for it: the value quoted, `Max-Age` in whole seconds unless the
    /// `ttl` is 0 (a session cookie), the path, `HttpOnly`.
    pub fn set_cookie(&self) -> String {
        let mut v = format!("{}=\"{}\"", self.name, self.value);
        if self.ttl_ms / 1000 > 0 {
            v.push_str(&format!("; Max-Age={}", self.ttl_ms / 1000));
        }
        if let Some(p) = self.path.as_deref().filter(|p| !p.is_empty()) {
            v.push_str(&format!("; Path={p}"));
        }
        v.push_str("; HttpOnly");
        v
    }
}

/// A request counted in flight to an endpoint (least request) until dropped.
pub(crate) struct Active {
    counts: Arc<[AtomicU32]>,
    i: usize,
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(c) = self.counts.get(self.i) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Balancer {
    /// The balancer of `endpoints` (each with the zone behind it, `None` for this zone's)
    /// for the outbound's MeshLoadBalancingStrategy (`None`: round robin).
    #[cfg(test)]
    pub fn new(lb: Option<&LoadBalancer>, endpoints: &[(SocketAddr, Option<&str>)]) -> Balancer {
        Balancer::with_tags(lb, endpoints, &|_| None)
    }

    /// [`Balancer::new`] with each endpoint's tags (by position), for the caller's
    /// `localZone.affinityTags` groups.
    pub fn with_tags<'t>(
        lb: Option<&LoadBalancer>,
        endpoints: &[(SocketAddr, Option<&str>)],
        tags: &dyn Fn(usize) -> Option<&'t BTreeMap<String, String>>,
    ) -> Balancer {
        match lb {
            None => Balancer::default(),
            Some(lb) => Balancer::Policy(Box::new(PolicyBalancer::new(lb, endpoints, tags))),
        }
    }

    /// Whether the hash policies need the downstream source address.
    pub fn wants_source_ip(&self) -> bool {
        match self {
            Balancer::RoundRobin(_) => false,
            Balancer::Policy(p) => p.hash_policies.iter().any(|h| h.key == HashKey::SourceIp),
        }
    }

    /// Whether a cookie hash policy has a `ttl` (it generates a missing cookie).
    pub fn generates_cookies(&self) -> bool {
        match self {
            Balancer::RoundRobin(_) => false,
            Balancer::Policy(p) => p.hash_policies.iter().any(|h| {
                matches!(
                    h.key,
                    HashKey::Cookie {
                        ttl_ms: Some(_),
                        ..
                    }
                )
            }),
        }
    }

    /// The cookies to generate for a request (Envoy: a cookie policy with a `ttl` whose
    /// cookie is missing, reached before a terminal policy yielded), with the value Envoy
    /// gives them: the hex xxHash64 of the downstream connection's remote and local
    /// addresses (one cookie per connection). `None`: nothing to generate.
    pub fn cookies_to_generate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Option<GeneratedCookies> {
        let Balancer::Policy(p) = self else {
            return None;
        };
        let mut out = Vec::new();
        for h in &p.hash_policies {
            let yields = match &h.key {
                HashKey::Header { name } => headers.contains_key(name.as_str()),
                HashKey::Cookie { name, path, ttl_ms } => {
                    if cookie(headers, name).is_some() {
                        true
                    } else if let Some(ttl_ms) = ttl_ms {
                        let value = format!("{peer}{local}");
                        out.push(GeneratedCookie {
                            name: name.clone(),
                            value: format!("{:016x}", xxh64(value.as_bytes(), 0)),
                            path: path.clone(),
                            ttl_ms: *ttl_ms,
                        });
                        true
                    } else {
                        false
                    }
                }
                HashKey::QueryParameter { name } => query(uri, name).is_some(),
                HashKey::SourceIp => true,
                HashKey::FilterState { .. } => false,
            };
            if yields && h.terminal {
                break;
            }
        }
        (!out.is_empty()).then_some(GeneratedCookies(out))
    }

    /// The request's hash (Envoy's route hash policies): each policy that yields a value is
    /// folded in (`rotl(hash, 1) ^ value`) until a terminal one yields; `None` when none
    /// does or the algorithm does not hash. `generated`: the cookies generated for it.
    pub fn hash(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        source: Option<IpAddr>,
        generated: Option<&GeneratedCookies>,
    ) -> Option<u64> {
        let Balancer::Policy(p) = self else {
            return None;
        };
        request_hash(&p.hash_policies, headers, uri, source, generated)
    }

    /// The endpoints to try, in order, out of `n` (see the module's documentation). `key`
    /// is the request's hash; `skip` says which endpoints are unavailable (ejected), for
    /// the locality priorities' health and least request's choices.
    pub fn order<'a>(
        &'a self,
        n: usize,
        key: Option<u64>,
        skip: &dyn Fn(usize) -> bool,
    ) -> Order<'a> {
        match self {
            Balancer::RoundRobin(rr) => Order::Cyclic {
                start: rr.next(n),
                n,
                i: 0,
            },
            Balancer::Policy(p) => p.order(key, skip),
        }
    }

    /// Counts a request in flight to endpoint `i` when the algorithm needs it (least
    /// request); the count drops with the returned guard.
    pub fn begin(&self, i: usize) -> Option<Active> {
        let Balancer::Policy(p) = self else {
            return None;
        };
        let counts = p.active.as_ref()?;
        counts.get(i)?.fetch_add(1, Ordering::Relaxed);
        Some(Active {
            counts: counts.clone(),
            i,
        })
    }
}

/// A balancer set by a MeshLoadBalancingStrategy.
pub(crate) struct PolicyBalancer {
    algorithm: Algorithm,
    hash_policies: Vec<HashPolicy>,
    /// Priority levels, most preferred first; endpoints in none take no traffic.
    levels: Vec<Level>,
    /// Envoy's overprovisioning factor, percent.
    overprovisioning: u64,
    /// Requests in flight per endpoint (least request only).
    active: Option<Arc<[AtomicU32]>>,
}

/// The endpoints of one locality (a priority, or one of the local zone's affinity groups)
/// and what the algorithm built over them.
struct Level {
    /// Envoy's priority: 0 for this zone, then other zones by failover rule.
    priority: u32,
    /// The locality's weight within its priority (affinity groups; 1 otherwise).
    weight: u64,
    /// Endpoint indices.
    members: Vec<usize>,
    rr: RoundRobin,
    /// Ring hash: (hash, member position), sorted by hash. Maglev: member position per
    /// slot. Empty for the other algorithms.
    ring: Vec<(u64, u32)>,
    table: Vec<u32>,
}

impl PolicyBalancer {
    fn new<'t>(
        lb: &LoadBalancer,
        endpoints: &[(SocketAddr, Option<&str>)],
        tags: &dyn Fn(usize) -> Option<&'t BTreeMap<String, String>>,
    ) -> PolicyBalancer {
        let groups = lb
            .locality
            .as_ref()
            .map(|l| l.local_groups.as_slice())
            .unwrap_or_default();
        // (priority, affinity group) -> members; a local endpoint belongs to the first
        // group whose tag it shares with the caller, else to the rest (weight 1).
        let mut by_locality: BTreeMap<(u32, usize), Vec<usize>> = BTreeMap::new();
        for (i, (_, zone)) in endpoints.iter().enumerate() {
            let priority = match &lb.locality {
                None => Some(0),
                Some(l) => l.priority(*zone),
            };
            let Some(p) = priority else { continue };
            let group = if zone.is_none() && !groups.is_empty() {
                let t = tags(i);
                groups
                    .iter()
                    .position(|g| t.and_then(|t| t.get(&g.key)) == Some(&g.value))
                    .unwrap_or(groups.len())
            } else {
                0
            };
            by_locality.entry((p, group)).or_default().push(i);
        }
        let levels = by_locality
            .into_iter()
            .map(|((priority, group), members)| {
                let addrs: Vec<SocketAddr> = members.iter().map(|&i| endpoints[i].0).collect();
                let (ring, table) = match lb.algorithm {
                    Algorithm::RingHash {
                        hash_function,
                        min_ring_size,
                        max_ring_size,
                    } => (
                        build_ring(&addrs, hash_function, min_ring_size, max_ring_size),
                        Vec::new(),
                    ),
                    Algorithm::Maglev { table_size } => {
                        (Vec::new(), build_maglev(&addrs, table_size))
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                let weight = match groups.get(group) {
                    Some(g) if priority == 0 => u64::from(g.weight.max(1)),
                    _ => 1,
                };
                Level {
                    priority,
                    weight,
                    members,
                    rr: RoundRobin::default(),
                    ring,
                    table,
                }
            })
            .collect();
        PolicyBalancer {
            algorithm: lb.algorithm.clone(),
            hash_policies: lb.hash_policies.clone(),
            levels,
            overprovisioning: lb
                .locality
                .as_ref()
                .map_or(100, |l| u64::from(l.overprovisioning.max(1))),
            active: matches!(lb.algorithm, Algorithm::LeastRequest { .. })
                .then(|| endpoints.iter().map(|_| AtomicU32::new(0)).collect()),
        }
    }

    /// Envoy's priority load: each priority takes its health (available share × the
    /// overprovisioning factor, at most 100 %) of what the priorities before it left; when
    /// they together are not 100 % healthy, the load is spread in proportion to health.
    /// Within the chosen priority a locality is drawn by its weight times its own health
    /// (Envoy's locality-weighted balancing).
    fn pick_level(&self, skip: &dyn Fn(usize) -> bool) -> usize {
        if self.levels.len() <= 1 {
            return 0;
        }
        let up = |l: &Level| l.members.iter().filter(|&&i| !skip(i)).count() as u64;
        // Levels are sorted by priority: group them.
        let mut priorities: Vec<(usize, usize)> = Vec::new();
        for (i, l) in self.levels.iter().enumerate() {
            match priorities.last_mut() {
                Some((start, end)) if self.levels[*start].priority == l.priority => *end = i + 1,
                _ => priorities.push((i, i + 1)),
            }
        }
        let p = if priorities.len() == 1 {
            0
        } else {
            self.pick_priority(&priorities, &up)
        };
        let (start, end) = priorities.get(p).copied().unwrap_or((0, 1));
        if end - start == 1 {
            return start;
        }
        let weights: Vec<u64> = self.levels[start..end]
            .iter()
            .map(|l| {
                let health =
                    (up(l) * self.overprovisioning / l.members.len().max(1) as u64).min(100);
                l.weight.saturating_mul(health)
            })
            .collect();
        let total: u64 = weights.iter().sum();
        if total == 0 {
            return start;
        }
        let mut draw = random_below(total);
        for (i, w) in weights.iter().enumerate() {
            if draw < *w {
                return start + i;
            }
            draw -= w;
        }
        start
    }

    /// The priority (as a position in `priorities`: level ranges) that takes a request.
    fn pick_priority(&self, priorities: &[(usize, usize)], up: &dyn Fn(&Level) -> u64) -> usize {
        let health: Vec<u64> = priorities
            .iter()
            .map(|&(start, end)| {
                let levels = &self.levels[start..end];
                let up: u64 = levels.iter().map(up).sum();
                let all: u64 = levels.iter().map(|l| l.members.len() as u64).sum();
                (up * self.overprovisioning / all.max(1)).min(100)
            })
            .collect();
        let total: u64 = health.iter().sum();
        if total == 0 {
            return 0;
        }
        let mut left = 100u64;
        let mut loads = Vec::with_capacity(health.len());
        for h in &health {
            let take = if total >= 100 {
                (*h).min(left)
            } else {
                h * 100 / total
            };
            loads.push(take);
            left = left.saturating_sub(take);
        }
        let sum: u64 = loads.iter().sum();
        let mut draw = random_below(sum.max(1));
        for (i, l) in loads.iter().enumerate() {
            if draw < *l {
                return i;
            }
            draw -= l;
        }
        0
    }

    fn order<'a>(&'a self, key: Option<u64>, skip: &dyn Fn(usize) -> bool) -> Order<'a> {
        if self.levels.is_empty() {
            return Order::Cyclic {
                start: 0,
                n: 0,
                i: 0,
            };
        }
        let level = self.pick_level(skip);
        let l = &self.levels[level];
        let n = l.members.len();
        let first = match (&self.algorithm, key) {
            (Algorithm::RoundRobin, _) => Start::Cyclic(l.rr.next(n)),
            (Algorithm::LeastRequest { choice_count, .. }, _) => {
                Start::Cyclic(self.least_request(l, *choice_count, skip))
            }
            (Algorithm::RingHash { .. }, Some(h)) if !l.ring.is_empty() => {
                let at = l.ring.partition_point(|(e, _)| *e < h) % l.ring.len();
                Start::Walk(at)
            }
            (Algorithm::Maglev { .. }, Some(h)) if !l.table.is_empty() => {
                Start::Walk((h % l.table.len() as u64) as usize)
            }
            // Random, or a hashing algorithm without a hash value: a random endpoint.
            _ => Start::Cyclic(random_below(n as u64) as usize),
        };
        Order::Levels(LevelsOrder {
            b: self,
            level,
            visited: 0,
            cur: LevelCursor::new(l, first),
        })
    }

    /// The endpoint with the fewest requests in flight among `choices` random ones,
    /// available ones first (Envoy's power of two choices), as a member position.
    fn least_request(&self, l: &Level, choices: u32, skip: &dyn Fn(usize) -> bool) -> usize {
        let n = l.members.len() as u64;
        let counts = self.active.as_deref().unwrap_or(&[]);
        let load = |pos: usize| {
            let i = l.members[pos];
            (
                skip(i),
                counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed)),
            )
        };
        let mut best = random_below(n) as usize;
        for _ in 1..choices.max(1) {
            let other = random_below(n) as usize;
            if load(other) < load(best) {
                best = other;
            }
        }
        best
    }
}

/// Where a level's order starts.
enum Start {
    /// From this member position onwards, cyclically.
    Cyclic(usize),
    /// From this ring or table slot, walking the slots (distinct members), then any member
    /// the walk did not meet.
    Walk(usize),
}

/// The endpoints to try, in order.
pub(crate) enum Order<'a> {
    /// `n` indices from `start`, cyclically (round robin).
    Cyclic {
        start: usize,
        n: usize,
        i: usize,
    },
    Levels(LevelsOrder<'a>),
}

impl Iterator for Order<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Order::Cyclic { start, n, i } => {
                if *i >= *n {
                    return None;
                }
                let out = (*start + *i) % *n;
                *i += 1;
                Some(out)
            }
            Order::Levels(o) => o.next(),
        }
    }
}

/// The chosen level's order, then every other level's (most preferred first).
pub(crate) struct LevelsOrder<'a> {
    b: &'a PolicyBalancer,
    level: usize,
    /// Levels finished so far.
    visited: usize,
    cur: LevelCursor,
}

impl LevelsOrder<'_> {
    fn next(&mut self) -> Option<usize> {
        loop {
            let level = &self.b.levels[self.current()];
            if let Some(pos) = self.cur.next(level) {
                return level.members.get(pos).copied();
            }
            self.visited += 1;
            if self.visited >= self.b.levels.len() {
                return None;
            }
            let l = &self.b.levels[self.current()];
            self.cur = LevelCursor::new(
                l,
                Start::Cyclic(random_below(l.members.len() as u64) as usize),
            );
        }
    }

    /// The level being walked: the chosen one, then the others in priority order.
    fn current(&self) -> usize {
        match self.visited {
            0 => self.level,
            v if v <= self.level => v - 1,
            v => v,
        }
    }
}

/// A walk over one level's members.
struct LevelCursor {
    start: Start,
    /// Steps taken (members yielded for `Cyclic`, slots looked at, then members swept, for
    /// `Walk`).
    step: usize,
    /// Members already yielded by a walk: a bit set, inline up to 64 members.
    seen: Seen,
}

enum Seen {
    Small(u64),
    Large(Vec<u64>),
}

impl Seen {
    fn insert(&mut self, pos: usize) -> bool {
        let (word, bit) = (pos / 64, 1u64 << (pos % 64));
        if let Seen::Small(w) = *self
            && word > 0
        {
            let mut v = vec![w];
            v.resize(word + 1, 0);
            *self = Seen::Large(v);
        }
        let w = match self {
            Seen::Small(w) => w,
            Seen::Large(v) => {
                if v.len() <= word {
                    v.resize(word + 1, 0);
                }
                &mut v[word]
            }
        };
        let new = *w & bit == 0;
        *w |= bit;
        new
    }
}

impl LevelCursor {
    fn new(_l: &Level, start: Start) -> LevelCursor {
        LevelCursor {
            start,
            step: 0,
            seen: Seen::Small(0),
        }
    }

    /// The next member position of `l`.
    fn next(&mut self, l: &Level) -> Option<usize> {
        let n = l.members.len();
        match self.start {
            Start::Cyclic(start) => {
                if self.step >= n {
                    return None;
                }
                let out = (start + self.step) % n;
                self.step += 1;
                Some(out)
            }
            Start::Walk(at) => {
                let slots = l.ring.len().max(l.table.len());
                while self.step < slots {
                    let slot = (at + self.step) % slots;
                    self.step += 1;
                    let pos = if l.ring.is_empty() {
                        l.table[slot]
                    } else {
                        l.ring[slot].1
                    } as usize;
                    if self.seen.insert(pos) {
                        return Some(pos);
                    }
                }
                while self.step < slots + n {
                    let pos = self.step - slots;
                    self.step += 1;
                    if self.seen.insert(pos) {
                        return Some(pos);
                    }
                }
                None
            }
        }
    }
}

/// Envoy's ring: each endpoint hashed `ceil(min / n)` times (`"<ip>:<port>_<i>"`), at most
/// `max` entries in all, sorted by hash.
fn build_ring(addrs: &[SocketAddr], f: HashFunction, min: u64, max: u64) -> Vec<(u64, u32)> {
    let n = addrs.len() as u64;
    if n == 0 {
        return Vec::new();
    }
    let mut per_host = min.div_ceil(n).max(1);
    if per_host.saturating_mul(n) > max {
        per_host = (max / n).max(1);
    }
    let mut ring = Vec::with_capacity(usize::try_from(per_host * n).unwrap_or(0));
    let mut key = String::new();
    for (pos, addr) in addrs.iter().enumerate() {
        for i in 0..per_host {
            use std::fmt::Write;
            key.clear();
            let _ = write!(key, "{addr}_{i}");
            let h = match f {
                HashFunction::XxHash => xxh64(key.as_bytes(), 0),
                HashFunction::MurmurHash2 => murmur2_64(key.as_bytes(), MURMUR_SEED),
            };
            ring.push((h, pos as u32));
        }
    }
    ring.sort_unstable();
    ring
}

/// Maglev's lookup table of `size` slots: each endpoint's preference list (offset and skip
/// from two hashes of its address) filled in turn.
fn build_maglev(addrs: &[SocketAddr], size: u64) -> Vec<u32> {
    let n = addrs.len();
    if n == 0 || size == 0 {
        return Vec::new();
    }
    let m = size;
    let prefs: Vec<(u64, u64)> = addrs
        .iter()
        .map(|a| {
            let key = a.to_string();
            let offset = xxh64(key.as_bytes(), 0) % m;
            let skip = if m > 1 {
                xxh64(key.as_bytes(), 1) % (m - 1) + 1
            } else {
                1
            };
            (offset, skip)
        })
        .collect();
    let mut table = vec![u32::MAX; m as usize];
    let mut next = vec![0u64; n];
    let mut filled = 0u64;
    'fill: loop {
        for (pos, (offset, skip)) in prefs.iter().enumerate() {
            let slot = loop {
                let c = (offset + next[pos] * skip) % m;
                next[pos] += 1;
                if table[c as usize] == u32::MAX {
                    break c;
                }
            };
            table[slot as usize] = pos as u32;
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    table
}

/// Envoy's seed for its 64-bit MurmurHash2.
const MURMUR_SEED: u64 = 0xc70f_6907;

/// MurmurHash64A, the 64-bit MurmurHash2 Envoy's ring hash offers.
fn murmur2_64(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    uri: &Uri,
    source: Option<IpAddr>,
    generated: Option<&GeneratedCookies>,
) -> Option<u64> {
    let mut hash: Option<u64> = None;
    for p in policies {
        let value = match &p.key {
            HashKey::Header { name } => {
                let mut h: Option<u64> = None;
                for v in headers.get_all(name.as_str()) {
                    let v = xxh64(v.as_bytes(), 0);
                    h = Some(h.map_or(v, |h| h.rotate_left(1) ^ v));
                }
                h
            }
            HashKey::Cookie { name, .. } => cookie(headers, name)
                .or_else(|| {
                    generated?
                        .0
                        .iter()
                        .find(|c| c.name == *name)
                        .map(|c| c.value.as_bytes())
                })
                .map(|v| xxh64(v, 0)),
            HashKey::QueryParameter { name } => query(uri, name).map(|v| xxh64(v, 0)),
            HashKey::SourceIp => source.map(|ip| xxh64(ip.to_string().as_bytes(), 0)),
            HashKey::FilterState { .. } => None,
        };
        if let Some(v) = value {
            hash = Some(hash.map_or(v, |h| h.rotate_left(1) ^ v));
            if p.terminal {
                break;
            }
        }
    }
    hash
}

/// The value of cookie `name` in the request's `Cookie` headers, without the quotes
/// around it (as Envoy reads it: the value a generated cookie was set with).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let value = &pair[eq + 1..];
            let value = match value {
                [b'"', inner @ .., b'"'] => inner,
                v => v,
            };
            (&pair[..eq] == name.as_bytes()).then_some(value)
        })
}

/// The value of query parameter `name` (as written, not decoded).
fn query<'u>(uri: &'u Uri, name: &str) -> Option<&'u [u8]> {
    uri.query()?
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((k, v)) if k == name => Some(v.as_bytes()),
            None if pair == name => Some(&b""[..]),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_core::policies::meshloadbalancingstrategy::{Locality, ZoneRule, ZoneSet};

    #[test]
    fn rotates_and_covers_all() {
        let rr = RoundRobin::default();
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rr.order(0).count(), 0);
        let b = Balancer::default();
        assert_eq!(b.order(3, None, &|_| false).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(b.order(3, None, &|_| false).collect::<Vec<_>>(), [1, 2, 0]);
        assert!(b.begin(0).is_none(), "round robin counts nothing");
    }

    fn addrs(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, i as u8 + 1], 9000)))
            .collect()
    }

    fn balancer(algorithm: Algorithm, hash_policies: Vec<HashPolicy>, n: usize) -> Balancer {
        let eps: Vec<(SocketAddr, Option<&str>)> =
            addrs(n).into_iter().map(|a| (a, None)).collect();
        Balancer::new(
            Some(&LoadBalancer {
                algorithm,
                hash_policies,
                locality: None,
            }),
            &eps,
        )
    }

    fn ring_hash() -> Algorithm {
        Algorithm::RingHash {
            hash_function: HashFunction::XxHash,
            min_ring_size: 1024,
            max_ring_size: 8 * 1024 * 1024,
        }
    }

    fn header(name: &str) -> Vec<HashPolicy> {
        vec![HashPolicy {
            key: HashKey::Header { name: name.into() },
            terminal: false,
        }]
    }

    fn first(b: &Balancer, n: usize, key: Option<u64>) -> usize {
        b.order(n, key, &|_| false).next().unwrap_or(usize::MAX)
    }

    #[test]
    fn every_order_covers_every_endpoint_once() {
        for alg in [
            ring_hash(),
            Algorithm::Maglev { table_size: 251 },
            Algorithm::Random,
            Algorithm::LeastRequest {
                choice_count: 2,
                active_request_bias: 1.0,
            },
            Algorithm::RoundRobin,
        ] {
            for n in [1, 3, 70] {
                let b = balancer(alg.clone(), header("x-user"), n);
                for key in [None, Some(7), Some(u64::MAX)] {
                    let mut got: Vec<usize> = b.order(n, key, &|_| false).collect();
                    got.sort_unstable();
                    assert_eq!(got, (0..n).collect::<Vec<_>>(), "{alg:?} n={n} key={key:?}");
                }
            }
        }
    }

    #[test]
    fn ring_hash_is_sticky_spreads_and_falls_to_the_next_entry() {
        let b = balancer(ring_hash(), header("x-user"), 3);
        let uri: Uri = "/echo".parse().unwrap_or_default();
        let mut hit = [0usize; 3];
        for user in 0..300 {
            let mut h = HeaderMap::new();
            h.insert("x-user", format!("user-{user}").parse().unwrap());
            let key = b.hash(&h, &uri, None, None);
            assert!(key.is_some());
            let i = first(&b, 3, key);
            // Sticky: the same value always reaches the same endpoint.
            assert!((0..20).all(|_| first(&b, 3, key) == i));
            hit[i] += 1;
            // With it ejected the key falls to one other endpoint, always the same.
            let fallback: Vec<usize> = b.order(3, key, &|_| false).collect();
            assert_ne!(fallback[1], i);
        }
        assert!(hit.iter().all(|&c| c > 50), "spread: {hit:?}");
        // No header: a random endpoint.
        let key = b.hash(&HeaderMap::new(), &uri, None, None);
        assert_eq!(key, None);
        let seen: std::collections::HashSet<usize> = (0..200).map(|_| first(&b, 3, key)).collect();
        assert_eq!(seen.len(), 3);
    }

    fn stability(alg: Algorithm) -> f64 {
        let n = 10;
        let all = balancer(alg.clone(), vec![], n);
        // Endpoint 4 leaves: the other nine keep their indices after removal.
        let eps: Vec<(SocketAddr, Option<&str>)> = addrs(n)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, a)| (a, None))
            .collect();
        let fewer = Balancer::new(
            Some(&LoadBalancer {
                algorithm: alg,
                hash_policies: vec![],
                locality: None,
            }),
            &eps,
        );
        let (mut kept, mut total) = (0, 0);
        for k in 0..5000u64 {
            let key = xxh64(&k.to_le_bytes(), 0);
            let before = first(&all, n, Some(key));
            if before == 4 {
                continue;
            }
            total += 1;
            let after = first(&fewer, n - 1, Some(key));
            let after = if after >= 4 { after + 1 } else { after };
            kept += usize::from(before == after);
        }
        kept as f64 / f64::from(total)
    }

    #[test]
    fn most_keys_stay_when_one_endpoint_of_ten_leaves() {
        // As Envoy's: the ring keeps its minimum size, so each of the nine remaining
        // endpoints gains entries (103 -> 114), which take about a tenth of the keys.
        let ring = stability(ring_hash());
        assert!(ring > 0.85, "ring hash kept {ring}");
        let maglev = stability(Algorithm::Maglev { table_size: 65537 });
        assert!(maglev > 0.9, "maglev kept {maglev}");
    }

    #[test]
    fn maglev_spreads_evenly() {
        let b = balancer(Algorithm::Maglev { table_size: 65537 }, vec![], 5);
        let mut hit = [0usize; 5];
        for k in 0..10_000u64 {
            hit[first(&b, 5, Some(xxh64(&k.to_le_bytes(), 0)))] += 1;
        }
        assert!(hit.iter().all(|&c| (1700..2300).contains(&c)), "{hit:?}");
    }

    #[test]
    fn random_spreads() {
        let b = balancer(Algorithm::Random, vec![], 4);
        let mut hit = [0usize; 4];
        for _ in 0..8000 {
            hit[first(&b, 4, None)] += 1;
        }
        assert!(hit.iter().all(|&c| (1700..2300).contains(&c)), "{hit:?}");
    }

    #[test]
    fn least_request_avoids_busy_endpoints() {
        let b = balancer(
            Algorithm::LeastRequest {
                choice_count: 3,
                active_request_bias: 1.0,
            },
            vec![],
            3,
        );
        // Endpoints 0 and 1 have requests in flight.
        let held: Vec<Active> = [0, 0, 1].iter().filter_map(|&i| b.begin(i)).collect();
        assert_eq!(held.len(), 3);
        let mut hit = [0usize; 3];
        for _ in 0..3000 {
            hit[first(&b, 3, None)] += 1;
        }
        // Endpoint 2 loses only when no draw of three picked it: (2/3)^3 of the time.
        assert!(hit[2] > 2000, "{hit:?}");
        assert!(hit[0] < hit[1], "the busiest is picked least: {hit:?}");
        drop(held);
        let mut hit = [0usize; 3];
        for _ in 0..3000 {
            hit[first(&b, 3, None)] += 1;
        }
        assert!(hit.iter().all(|&c| c > 700), "all idle again: {hit:?}");
        // Ejected endpoints lose the comparison too.
        let mut hit = [0usize; 3];
        for _ in 0..3000 {
            hit[b.order(3, None, &|i| i == 2).next().unwrap_or(9)] += 1;
        }
        // (Only when all three draws hit it: (1/3)^3, 3.7 %; the caller then skips it.)
        assert!(hit[2] < 200, "{hit:?}");
    }

    #[test]
    fn a_missing_cookie_with_a_ttl_is_generated_per_connection_and_hashed_like_the_sent_one() {
        let pol = |key: HashKey, terminal: bool| HashPolicy { key, terminal };
        let sticky = pol(
            HashKey::Cookie {
                name: "session".into(),
                path: Some("/".into()),
                ttl_ms: Some(3_600_000),
            },
            false,
        );
        let balancer = |policies: Vec<HashPolicy>| {
            Balancer::new(
                Some(&LoadBalancer {
                    algorithm: Algorithm::Random,
                    hash_policies: policies,
                    locality: None,
                }),
                &[],
            )
        };
        let b = balancer(vec![sticky.clone()]);
        assert!(b.generates_cookies());
        let uri: Uri = "/".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let g = b
            .cookies_to_generate(&HeaderMap::new(), &uri, peer, local)
            .unwrap();
        let c = &g.0[0];
        assert_eq!(c.value.len(), 16);
        assert_eq!(
            c.set_cookie(),
            format!("session=\"{}\"; Max-Age=3600; Path=/; HttpOnly", c.value)
        );
        // Another connection, another cookie; the same connection, the same.
        let other: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let g2 = b
            .cookies_to_generate(&HeaderMap::new(), &uri, other, local)
            .unwrap();
        assert_ne!(g2.0[0].value, c.value);
        let again = b
            .cookies_to_generate(&HeaderMap::new(), &uri, peer, local)
            .unwrap();
        assert_eq!(again.0[0].value, c.value);
        // The request is hashed on the generated value, as the next one sending it back
        // (quoted, as set) is.
        let generated = b.hash(&HeaderMap::new(), &uri, None, Some(&g));
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("a=b; session=\"{}\"", c.value).parse().unwrap(),
        );
        assert_eq!(b.hash(&h, &uri, None, None), generated);
        assert!(generated.is_some());
        // Present: nothing generated.
        assert!(b.cookies_to_generate(&h, &uri, peer, local).is_none());
        // A terminal policy that yields first: the cookie is never reached.
        let mut user = HeaderMap::new();
        user.insert("x-user", "bob".parse().unwrap());
        let b = balancer(vec![
            pol(
                HashKey::Header {
                    name: "x-user".into(),
                },
                true,
            ),
            sticky.clone(),
        ]);
        assert!(b.cookies_to_generate(&user, &uri, peer, local).is_none());
        assert!(
            b.cookies_to_generate(&HeaderMap::new(), &uri, peer, local)
                .is_some()
        );
        // Without a ttl nothing is generated.
        let b = balancer(vec![pol(
            HashKey::Cookie {
                name: "session".into(),
                path: None,
                ttl_ms: None,
            },
            false,
        )]);
        assert!(!b.generates_cookies());
        assert!(
            b.cookies_to_generate(&HeaderMap::new(), &uri, peer, local)
                .is_none()
        );
        assert!(!Balancer::default().generates_cookies());
    }

    #[test]
    fn hash_policies_fold_until_a_terminal_one_yields() {
        let uri: Uri = "/p?a=1&user=bob&z".parse().unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, "x=1; session=abc".parse().unwrap());
        let pol = |key: HashKey, terminal: bool| HashPolicy { key, terminal };
        let cookie = pol(
            HashKey::Cookie {
                name: "session".into(),
                path: None,
                ttl_ms: None,
            },
            false,
        );
        let q = pol(
            HashKey::QueryParameter {
                name: "user".into(),
            },
            false,
        );
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert_eq!(
            request_hash(std::slice::from_ref(&cookie), &h, &uri, None, None),
            Some(xxh64(b"abc", 0))
        );
        assert_eq!(
            request_hash(std::slice::from_ref(&q), &h, &uri, None, None),
            Some(xxh64(b"bob", 0))
        );
        assert_eq!(
            request_hash(&[pol(HashKey::SourceIp, false)], &h, &uri, Some(ip), None),
            Some(xxh64(b"127.0.0.1", 0))
        );
        let both = request_hash(&[cookie.clone(), q.clone()], &h, &uri, None, None);
        assert_eq!(
            both,
            Some(xxh64(b"abc", 0).rotate_left(1) ^ xxh64(b"bob", 0))
        );
        let terminal = HashPolicy {
            terminal: true,
            ..cookie.clone()
        };
        assert_eq!(
            request_hash(&[terminal, q.clone()], &h, &uri, None, None),
            Some(xxh64(b"abc", 0))
        );
        // Missing values yield nothing; a filter state never does.
        let missing = pol(
            HashKey::Header {
                name: "x-user".into(),
            },
            true,
        );
        let fs = pol(HashKey::FilterState { key: "k".into() }, false);
        assert_eq!(
            request_hash(&[missing, fs, q], &h, &uri, None, None),
            Some(xxh64(b"bob", 0))
        );
        assert_eq!(
            request_hash(&[pol(HashKey::SourceIp, false)], &h, &uri, None, None),
            None
        );
    }

    #[test]
    fn murmur2_matches_envoys_and_the_ring_has_its_size() {
        // Envoy's own test vectors (its seed).
        assert_eq!(murmur2_64(b"foo", MURMUR_SEED), 9631199822919835226);
        assert_eq!(murmur2_64(b"bar", MURMUR_SEED), 11474628671133349555);
        assert_eq!(murmur2_64(b"foo\nbar", MURMUR_SEED), 16306510975912980159);
        assert_eq!(murmur2_64(b"", 0), 0);
        let b = Balancer::new(
            Some(&LoadBalancer {
                algorithm: Algorithm::RingHash {
                    hash_function: HashFunction::MurmurHash2,
                    min_ring_size: 16,
                    max_ring_size: 64,
                },
                hash_policies: vec![],
                locality: None,
            }),
            &addrs(3).into_iter().map(|a| (a, None)).collect::<Vec<_>>(),
        );
        let Balancer::Policy(p) = &b else {
            panic!("not a policy balancer")
        };
        assert_eq!(p.levels[0].ring.len(), 18, "ceil(16 / 3) per endpoint");
        assert!(p.levels[0].ring.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn affinity_groups_weigh_local_endpoints_sharing_the_callers_tags() {
        use aerie_core::policies::meshloadbalancingstrategy::resolve::LocalGroup;
        use aerie_core::spec::Tags;
        let a = addrs(5);
        let eps = [
            (a[0], None),
            (a[1], None),
            (a[2], None),
            (a[3], None),
            (a[4], Some("zone-2")),
        ];
        let tag = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let tags = [
            tag("node", "n1"),
            tag("node", "n1"),
            tag("rack", "r1"),
            BTreeMap::new(),
            tag("node", "n1"),
        ];
        let groups = LocalGroup::for_caller(
            &[
                aerie_core::policies::meshloadbalancingstrategy::AffinityTag {
                    key: Some("node".into()),
                    weight: None,
                },
                aerie_core::policies::meshloadbalancingstrategy::AffinityTag {
                    key: Some("rack".into()),
                    weight: None,
                },
            ],
            &[&Tags::from([("node".to_owned(), "n1".to_owned())])],
            &Tags::from([("rack".to_owned(), "r1".to_owned())]),
        );
        // Kuma's generated weights: 90 for the first tag, 9 for the second.
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.value.as_str(), g.weight))
                .collect::<Vec<_>>(),
            [("n1", 90), ("r1", 9)]
        );
        let lb = LoadBalancer {
            algorithm: Algorithm::RoundRobin,
            hash_policies: vec![],
            locality: Some(Locality {
                failover: None,
                overprovisioning: 140,
                local_groups: groups,
            }),
        };
        let b = Balancer::with_tags(Some(&lb), &eps, &|i| tags.get(i));
        let mut hits = [0u32; 5];
        let n = 20_000;
        for _ in 0..n {
            hits[b.order(5, None, &|_| false).next().unwrap_or(9)] += 1;
        }
        // node=n1 (endpoints 0, 1): 90/100; rack=r1 (2): 9/100; the rest (3): 1/100; the
        // other zone's endpoint with the caller's node value is no local affinity.
        let share = |k: u32| f64::from(k) / f64::from(n);
        assert!((0.87..0.93).contains(&share(hits[0] + hits[1])), "{hits:?}");
        assert!((0.07..0.11).contains(&share(hits[2])), "{hits:?}");
        assert!((0.003..0.02).contains(&share(hits[3])), "{hits:?}");
        assert_eq!(hits[4], 0, "{hits:?}");
        // Both node=n1 endpoints ejected: their locality has no health and takes nothing;
        // this zone is half available (x 1.4 = 70 %), so 30 % spills to the other zone.
        let mut hits = [0u32; 5];
        for _ in 0..4000 {
            hits[b.order(5, None, &|i| i < 2).next().unwrap_or(0)] += 1;
        }
        assert_eq!(hits[0] + hits[1], 0, "{hits:?}");
        assert!((1000..1400).contains(&hits[4]), "{hits:?}");
    }

    #[test]
    fn this_zone_first_then_failover_zones_and_unlisted_zones_never() {
        let a = addrs(4);
        let eps = [
            (a[0], Some("zone-2")),
            (a[1], None),
            (a[2], Some("zone-3")),
            (a[3], None),
        ];
        let lb = |failover: Option<Vec<ZoneRule>>, overprovisioning| LoadBalancer {
            algorithm: Algorithm::RoundRobin,
            hash_policies: vec![],
            locality: Some(Locality {
                failover,
                overprovisioning,
                local_groups: Vec::new(),
            }),
        };
        let b = Balancer::new(Some(&lb(None, 140)), &eps);
        for _ in 0..50 {
            let order: Vec<usize> = b.order(4, None, &|_| false).collect();
            assert!(matches!(order[..2], [1, 3] | [3, 1]), "{order:?}");
            assert_eq!(order.len(), 4);
        }
        // One local endpoint of two ejected: 50 % × 1.4 = 70 % stays local, 30 % spills.
        let mut remote = 0;
        for _ in 0..4000 {
            let i = b.order(4, None, &|i| i == 1).next().unwrap_or(9);
            remote += usize::from(i == 0 || i == 2);
        }
        assert!((1000..1400).contains(&remote), "{remote}");
        // Both ejected: everything goes to the other zones.
        assert!(
            (0..100).all(|_| matches!(b.order(4, None, &|i| i == 1 || i == 3).next(), Some(0 | 2)))
        );
        // Failover only to zone-3: zone-2 never takes traffic.
        let rules = vec![ZoneRule {
            priority: 1,
            zones: ZoneSet::Only(vec!["zone-3".into()]),
        }];
        let b = Balancer::new(Some(&lb(Some(rules), 200)), &eps);
        for _ in 0..50 {
            let order: Vec<usize> = b.order(4, None, &|i| i == 1 || i == 3).collect();
            assert_eq!(order.first(), Some(&2));
            assert!(!order.contains(&0), "{order:?}");
        }
    }
}
