//! One limit shared by a group of hosts, on Redis: rate shares, shared pauses, shared work.
//!
//! Each host's policy keeps deciding *when* to act (FIFO, pauses, jitter, backoff, circuit and
//! pressure stay in the module); Redis decides *how much* of each limiter's rate this host may
//! use. Every `lease / 4` a host renews its share of every limiter (`group/renew.lua`, on
//! Redis's clock): it reports the rate it may be running at and its demand (judged over at
//! least two of its own intervals, `group/rules.rs`), and gets a grant, a max-min fair share
//! of the group's rate by demand (Doorman's rule). The script records a
//! raise before the host may use it and a cut only once the host reports it, so the recorded
//! rates of live hosts never sum above the limiter's rate; each host's bucket is the group's
//! burst divided by `max_hosts`. Hence, in any window W, the group is granted at most
//! `burst + W / interval` tokens (ABI.md, "Shared limits", says where that holds).
//!
//! A host that cannot reach Redis keeps its grant until its lease ends (on its own clock, from
//! when it asked), then runs at the fallback share, `rate / max_hosts`, and says so once. A
//! 429's Retry-After, or a circuit that opens, pauses the limiter on every host. The catalogue
//! is shared too: each file is claimed (with an expiry, renewed while held) and marked done
//! once verified, so it is downloaded once by one host.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use pacer::Config;
use pacer::quota::{MIN_TOKENS_PER_HOUR, default_burst};
use pacer_host::Policy;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

use crate::catalogue::Entry;

mod redis_url;
mod reply;

pub use redis_url::RedisUrl;

pub mod rules;

use rules::{Report, ShareRules, ShareState};

/// Where the group lives and how it shares.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// `redis://[USER:PASSWORD@]HOST:PORT/[DB]`, or `rediss://…` for TLS.
    pub url: RedisUrl,
    /// With `rediss://`: the PEM certificates the server's is checked against, instead of
    /// the platform's roots.
    pub ca_cert: Option<PathBuf>,
    /// The group's name: hosts with the same name share their limits and their work.
    pub group: String,
    /// The most hosts the group may have: each host's burst, and its share while Redis is
    /// unreachable, is the limiter's divided by this.
    pub max_hosts: u32,
    /// How long a grant lasts without renewal; a dead host's share returns within it.
    pub lease: Duration,
}

impl GroupOptions {
    /// Checks the options; the error names the flag.
    pub fn check(&self) -> Result<redis::Client, String> {
        let name_ok = !self.group.is_empty()
            && self.group.len() <= 64
            && self
                .group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(format!(
                "--group: 1 to 64 letters, digits, '-', '_' or '.', got {:?}",
                self.group
            ));
        }
        if !(1..=1024).contains(&self.max_hosts) {
            return Err(format!(
                "--max-hosts: must be from 1 to 1024, got {}",
                self.max_hosts
            ));
        }
        if !(Duration::from_millis(200)..=Duration::from_secs(60)).contains(&self.lease) {
            return Err(format!(
                "--lease-ms: must be from 200 to 60000, got {}",
                self.lease.as_millis()
            ));
        }
        self.url.client(self.ca_cert.as_deref())
    }
}

/// A limiter shared by the group, as this host runs it.
#[derive(Debug)]
struct Share {
    index: u32,
    name: String,
    /// The group's rate, `max_hosts` and lease.
    rules: ShareRules,
    /// Identity every host must agree on: rate, burst, max_hosts, lease.
    identity: String,
    /// This host's share, on the clock of `Inner::started`.
    state: Mutex<ShareState>,
}

/// The shared limiter's bucket in the hosted policy, as the sharing rules see it.
struct HostedBucket<'a> {
    policy: &'a mut Policy,
    limiter: u32,
}

impl rules::Bucket for HostedBucket<'_> {
    fn debt_milli(&mut self) -> u64 {
        self.policy
            .available_milli(self.limiter)
            .map_or(0, |milli| milli.min(0).unsigned_abs())
    }

    fn set_rate(&mut self, tokens_per_hour: f64) -> Result<(), String> {
        self.policy
            .set_rate(self.limiter, tokens_per_hour)
            .map_err(|e| e.to_string())
    }

    fn pause(&mut self, duration: Duration) -> Result<(), String> {
        self.policy
            .pause(self.limiter, duration)
            .map_err(|e| e.to_string())
    }
}

/// What a worker may do with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This host holds the claim: download it.
    Mine,
    /// Another host holds it: come back later.
    Elsewhere,
    /// A host has already downloaded and verified it.
    Done,
}

/// A host's membership of a group: renews its shares in the background until dropped.
pub struct Group {
    inner: Arc<Inner>,
    renewer: tokio::task::JoinHandle<()>,
}

struct Inner {
    options: GroupOptions,
    host: String,
    connection: ConnectionManager,
    renew: Script,
    pause: Script,
    claim: Script,
    policy: Arc<Mutex<Policy>>,
    shares: Vec<Share>,
    started: Instant,
    /// Claims this host holds, renewed with the shares.
    claims: Mutex<HashSet<String>>,
    /// Redis was unreachable at the last attempt (said once per outage).
    unreachable: AtomicBool,
    /// Renewals that succeeded, and fallback periods begun: for the summary and the tests.
    renewals: AtomicU64,
    fallbacks: AtomicU64,
    /// The longest pause the policy could publish (its longest backoff, or an open circuit):
    /// a longer one read from Redis is cut to it.
    longest_pause: Duration,
    /// The catalogue's identity: done marks and claims are keyed by it and the file's name.
    catalogue: OnceLock<String>,
    /// The first renewals are over: from then on a refusal falls back instead of stopping.
    joined: AtomicBool,
    /// This host is beyond `--max-hosts`, running at its fallback share (said once).
    beyond_max: AtomicBool,
    /// Complaints about what Redis held or answered, by limiter and kind, each said once.
    warned: Mutex<HashSet<String>>,
}

/// The local config for a host of a group: the same limiters, each with `burst / max_hosts`
/// (at least 1) as its bucket, starting empty.
pub fn local_config(config: &str, max_hosts: u32, lease: Duration) -> Result<String, String> {
    let (config, _) = shares_of(config, max_hosts, lease)?;
    Ok(config.to_json())
}

fn shares_of(
    config: &str,
    max_hosts: u32,
    lease: Duration,
) -> Result<(Config, Vec<Share>), String> {
    let mut config = Config::from_json(config).map_err(|e| format!("config: {e}"))?;
    let mut shares = Vec::new();
    for (index, limiter) in config.limiters.iter_mut().enumerate() {
        let burst = limiter
            .burst
            .unwrap_or_else(|| default_burst(limiter.tokens_per_hour));
        if burst < max_hosts {
            tracing::warn!(
                limiter = %limiter.name,
                "burst {burst} is below --max-hosts {max_hosts}: each host keeps a bucket of 1, \
                 so the group's burst may reach {max_hosts}"
            );
        }
        limiter.burst = Some((burst / max_hosts).max(1));
        // Empty at first: every token a host spends then accrued at a rate the group granted
        // it, so a host that joins brings no burst of its own.
        limiter.initial = 0.0;
        shares.push(Share {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            name: limiter.name.clone(),
            rules: ShareRules {
                total: limiter.tokens_per_hour,
                max_hosts,
                lease,
            },
            identity: format!(
                "rate {}/h, burst {burst}, max-hosts {max_hosts}, lease {} ms",
                limiter.tokens_per_hour,
                lease.as_millis()
            ),
            state: Mutex::new(ShareState::new(random_seed())),
        });
    }
    Ok((config, shares))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Group {
    /// Joins the group with `policy`, already configured with [`local_config`] of `config`:
    /// sets every limiter to no share, asks Redis for the first grants, and starts renewing.
    /// Redis being unreachable is not an error (the host falls back, and says so); hosts that
    /// disagree on a limiter's config are.
    pub async fn join(
        options: GroupOptions,
        config: &str,
        policy: Arc<Mutex<Policy>>,
    ) -> Result<Group, String> {
        let client = options.check()?;
        let (parsed, shares) = shares_of(config, options.max_hosts, options.lease)?;
        let longest_pause =
            Duration::from_millis(parsed.backoff.max_ms.max(parsed.backoff.open_ms));
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.lease / 2))
            .set_response_timeout(Some(options.lease))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| format!("--shared: {e}"))?;
        {
            let mut policy = lock(&policy);
            for share in &shares {
                policy
                    .set_rate(share.index, MIN_TOKENS_PER_HOUR)
                    .map_err(|e| format!("shared limiter {}: {e}", share.name))?;
            }
        }
        let inner = Arc::new(Inner {
            host: host_id(),
            connection,
            renew: Script::new(RENEW_SCRIPT),
            pause: Script::new(include_str!("group/pause.lua")),
            claim: Script::new(include_str!("group/claim.lua")),
            policy,
            shares,
            started: Instant::now(),
            claims: Mutex::new(HashSet::new()),
            unreachable: AtomicBool::new(false),
            renewals: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            longest_pause,
            catalogue: OnceLock::new(),
            joined: AtomicBool::new(false),
            beyond_max: AtomicBool::new(false),
            warned: Mutex::new(HashSet::new()),
            options,
        });
        // The first grants now: a config that disagrees with the group's, a password Redis
        // refuses or a certificate nobody trusts stops here.
        for share in &inner.shares {
            inner.renew_share(share, false).await?;
        }
        inner.joined.store(true, Relaxed);
        let renewer = tokio::spawn(renew_forever(Arc::clone(&inner)));
        Ok(Group { inner, renewer })
    }

    /// This host's name in the group.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The group's Redis (shown with its password hidden).
    pub fn url(&self) -> &RedisUrl {
        &self.inner.options.url
    }

    /// Names the catalogue this run downloads: done marks and claims are keyed by its
    /// identity (the hash of its entries) and the file's name, so a run of the group against
    /// another catalogue with the same names does not take its files for done. Set once,
    /// before the first claim.
    pub fn set_catalogue(&self, entries: &[Entry]) {
        let index = crate::catalogue::to_json(entries).to_string();
        let digest = Sha256::digest(index.as_bytes());
        let identity: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let _ = self.inner.catalogue.set(identity);
    }

    /// The lease: how long a grant or a dead host's share lasts.
    pub fn lease(&self) -> Duration {
        self.inner.options.lease
    }

    /// Waits until this host has a share of `limiter` to pace at (at once if it has one, or
    /// if the limiter is not shared).
    pub async fn ready(&self, limiter: u32) {
        let Some(share) = self.inner.share(limiter) else {
            return;
        };
        while lock(&share.state).rate() <= 0.0 {
            tokio::time::sleep(self.inner.options.lease / 8).await;
        }
    }

    /// A worker took a slot of `limiter`, after waiting `waited` (its demand).
    pub fn acquired(&self, limiter: u32, waited: bool) {
        if let Some(share) = self.inner.share(limiter) {
            lock(&share.state).acquired(self.inner.started.elapsed(), waited);
        }
    }

    /// Pauses `limiter` on every host for `duration` (a 429's Retry-After, an open circuit).
    pub async fn publish_pause(&self, limiter: u32, duration: Duration) {
        let Some(share) = self.inner.share(limiter) else {
            return;
        };
        if self.inner.unreachable.load(Relaxed) {
            // Nobody would hear it; the worker should not wait a lease to find that out.
            return;
        }
        let ms = u64::try_from(duration.min(self.inner.longest_pause).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut connection = self.inner.connection.clone();
        let mut invocation = self.inner.pause.prepare_invoke();
        invocation.key(self.inner.key(&share.name, "pause")).arg(ms);
        let published = tokio::time::timeout(
            self.inner.options.lease,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        if !matches!(published, Ok(Ok(_))) {
            tracing::debug!(limiter = %share.name, "could not publish a pause: Redis unreachable");
        }
    }

    /// Claims `file` for this host. If Redis does not answer (three tries), the file is this
    /// host's: it may then be downloaded twice, never lost.
    pub async fn claim(&self, file: &str) -> Claim {
        let inner = &self.inner;
        let ttl = claim_ttl(inner.options.lease);
        for _ in 0..3 {
            let mut connection = inner.connection.clone();
            let mut invocation = inner.claim.prepare_invoke();
            invocation
                .key(inner.file_key(file, "done"))
                .key(inner.file_key(file, "claim"))
                .arg(&inner.host)
                .arg(ttl);
            let answer = tokio::time::timeout(
                inner.options.lease,
                invocation.invoke_async::<String>(&mut connection),
            )
            .await;
            match answer.as_ref().map(|a| a.as_ref().map(String::as_str)) {
                Ok(Ok("done")) => return Claim::Done,
                Ok(Ok("taken")) => return Claim::Elsewhere,
                Ok(Ok(_)) => {
                    lock(&inner.claims).insert(file.to_string());
                    return Claim::Mine;
                }
                _ if inner.unreachable.load(Relaxed) => break,
                _ => {}
            }
        }
        Claim::Mine
    }

    /// `file` is downloaded and verified: no host needs it again.
    pub async fn finished(&self, file: &str) {
        let inner = &self.inner;
        lock(&inner.claims).remove(file);
        if inner.unreachable.load(Relaxed) {
            return;
        }
        let mut connection = inner.connection.clone();
        let mark = async {
            redis::pipe()
                .cmd("SET")
                .arg(inner.file_key(file, "done"))
                .arg(&inner.host)
                .arg("EX")
                .arg(DONE_SECONDS)
                .ignore()
                .cmd("DEL")
                .arg(inner.file_key(file, "claim"))
                .ignore()
                .query_async::<()>(&mut connection)
                .await
        };
        if !matches!(
            tokio::time::timeout(inner.options.lease, mark).await,
            Ok(Ok(()))
        ) {
            tracing::debug!(file, "could not mark the file done: Redis unreachable");
        }
    }

    /// This host gave up on `file`: another may try.
    pub async fn release(&self, file: &str) {
        let inner = &self.inner;
        lock(&inner.claims).remove(file);
        let mut connection = inner.connection.clone();
        let _ = tokio::time::timeout(
            inner.options.lease,
            connection.del::<_, ()>(inner.file_key(file, "claim")),
        )
        .await;
    }

    /// Renewals that reached Redis, and fallback periods begun.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.renewals.load(Relaxed),
            self.inner.fallbacks.load(Relaxed),
        )
    }

    /// The part of `limiter`'s rate this host runs at now (0 to 1; 1 for a limiter the group
    /// does not share): an announced quota is the group's, and this host's part of it is this.
    pub fn fraction(&self, limiter: u32) -> f64 {
        self.inner.share(limiter).map_or(1.0, |s| {
            let state = lock(&s.state);
            if state.fallback() || state.rate() > 0.0 {
                (state.rate() / s.rules.total).clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
    }

    /// The rate this host runs `limiter` at now, tokens an hour.
    pub fn rate(&self, limiter: u32) -> Option<f64> {
        self.inner.share(limiter).map(|s| lock(&s.state).rate())
    }

    /// Leaves the group: this host's shares return to the others at once.
    pub async fn leave(&self) {
        self.renewer.abort();
        for share in &self.inner.shares {
            let _ = self.inner.renew_share(share, true).await;
        }
    }
}

/// The renewal, a Lua script Redis runs atomically (`group/renew.lua`).
pub const RENEW_SCRIPT: &str = include_str!("group/renew.lua");

/// Done marks last a day: a re-run of the group within it skips what was done.
const DONE_SECONDS: u64 = 24 * 3600;

/// A claim lasts three leases, renewed every quarter lease while held.
fn claim_ttl(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis() * 3).unwrap_or(u64::MAX)
}

/// `pacer-<pid>-<random>`: unique across hosts and restarts.
fn host_id() -> String {
    format!("pacer-{}-{:08x}", std::process::id(), random_seed() as u32)
}

/// A random number, different in every process and every call.
fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// Why a renewal brought no grant.
enum NoGrant {
    /// Redis could not be reached, or failed: the host says so once per outage and skips
    /// Redis (claims, done marks) until it answers again.
    Unreachable(String),
    /// Redis answered, but with a refusal or an answer of the wrong shape: only the share is
    /// lost.
    Refused(String),
}

/// Why retrying cannot mend `error`, if it cannot: Redis refused the user or its password, or
/// TLS failed (a certificate nobody trusts). At join it stops the run; later it is one more
/// outage, and the host falls back.
fn refused_for_good(error: &redis::RedisError) -> Option<&'static str> {
    let text = error.to_string();
    let has = |words: &[&str]| words.iter().any(|word| text.contains(word));
    if error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        || has(&["unauthenticated", "NOAUTH", "WRONGPASS", "NOPERM"])
    {
        Some("Redis refused this host: check the user and password in the URL")
    } else if has(&["certificate", "Certificate", "handshake", "TLS", "tls"]) {
        Some(
            "TLS failed: for a server whose certificate a private CA signed, pass that CA with \
             --redis-ca-cert",
        )
    } else if error.kind() == redis::ErrorKind::InvalidClientConfig {
        Some("the Redis client refused its configuration")
    } else {
        None
    }
}

async fn renew_forever(inner: Arc<Inner>) {
    let step = inner.options.lease / 4;
    loop {
        tokio::time::sleep(step).await;
        for share in &inner.shares {
            if let Err(error) = inner.renew_share(share, false).await {
                tracing::error!("{error}");
            }
        }
        inner.renew_claims().await;
    }
}

impl Inner {
    fn share(&self, limiter: u32) -> Option<&Share> {
        self.shares.iter().find(|s| s.index == limiter)
    }

    /// `pacer:{group}:name:what`: every key of a group in one Redis Cluster slot.
    fn key(&self, name: &str, what: &str) -> String {
        format!("pacer:{{{}}}:{name}:{what}", self.options.group)
    }

    /// `pacer:{group}:file:CATALOGUE:name:what`: a file's claim or done mark, for this
    /// catalogue only (a limiter's keys never end in `done` or `claim`).
    fn file_key(&self, file: &str, what: &str) -> String {
        let catalogue = self.catalogue.get().map_or("-", String::as_str);
        self.key(&format!("file:{catalogue}:{file}"), what)
    }

    /// Warns about what Redis held or answered, once per limiter and kind.
    fn complain(&self, limiter: &str, kind: &str, what: &str) {
        if lock(&self.warned).insert(format!("{limiter} {kind}")) {
            tracing::warn!(
                group = %self.options.group,
                limiter,
                "Redis {what} (any client of this Redis can write the group's keys; said once)"
            );
        }
    }

    /// One renewal of `share`; an error only for a config the group refuses.
    async fn renew_share(&self, share: &Share, leaving: bool) -> Result<(), String> {
        let sent = self.started.elapsed();
        let Report { applied, demand } = self.with_bucket(share, |state, bucket| {
            state.report(&share.rules, sent, bucket)
        });
        let mut connection = self.connection.clone();
        let mut invocation = self.renew.prepare_invoke();
        invocation
            .key(self.key(&share.name, "members"))
            .key(self.key(&share.name, "identity"))
            .key(self.key(&share.name, "contact"))
            .key(self.key(&share.name, "pause"))
            .arg(&self.host)
            .arg(&share.identity)
            .arg(share.rules.total)
            .arg(applied)
            .arg(demand)
            .arg(u64::try_from(self.options.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(if leaving { 1 } else { 0 })
            // ARGV[8], a virtual clock, unused (Redis's TIME); the group's size; the longest
            // pause a host could publish.
            .arg("")
            .arg(self.options.max_hosts)
            .arg(u64::try_from(self.longest_pause.as_millis()).unwrap_or(u64::MAX));
        let call = invocation.invoke_async::<redis::Value>(&mut connection);
        let joined = self.joined.load(Relaxed);
        use NoGrant::{Refused, Unreachable};
        let answer = match tokio::time::timeout(self.options.lease / 2, call).await {
            Ok(Ok(value)) => reply::renewal(&value, share.rules.total, self.longest_pause)
                .map_err(|why| Refused(format!("answered a renewal with {why}"))),
            Ok(Err(error)) if error.code() == Some("PACERCONFIG") => {
                let refusal = format!(
                    "--shared: limiter {:?} is configured differently in group {:?}: this host \
                     has {}, the group {}; every host must use the same config, --max-hosts \
                     and --lease-ms",
                    share.name,
                    self.options.group,
                    share.identity,
                    error.detail().unwrap_or("another")
                );
                if !joined {
                    return Err(refusal);
                }
                // Changed under a running host (by a host that should not have joined, or
                // by another client): no grant from it, so the host falls back.
                Err(Refused(format!("refused a renewal: {refusal}")))
            }
            Ok(Err(error)) if !joined => {
                if let Some(why) = refused_for_good(&error) {
                    return Err(format!(
                        "--shared {}: {why} ({})",
                        self.options.url,
                        self.options.url.scrub(&error.to_string())
                    ));
                }
                Err(Unreachable(self.options.url.scrub(&error.to_string())))
            }
            Ok(Err(error)) => Err(Unreachable(self.options.url.scrub(&error.to_string()))),
            Err(_) => Err(Unreachable(format!(
                "no answer within {:?}",
                self.options.lease / 2
            ))),
        };
        match answer {
            Ok(renewal) => {
                self.renewals.fetch_add(1, Relaxed);
                if self.unreachable.swap(false, Relaxed) {
                    tracing::warn!(
                        group = %self.options.group,
                        "Redis is back: rejoined the group"
                    );
                }
                if leaving {
                    return Ok(());
                }
                self.heed(share, &renewal);
                let settling = renewal.flags & reply::flags::SETTLING != 0;
                let grant = if renewal.flags & reply::flags::FULL != 0 {
                    // Not a member: the group's rate is the members'; this host takes what
                    // it would take without Redis.
                    rules::fallback(share.rules.total, self.options.max_hosts)
                } else {
                    // Never above what was granted: the text's last digit may round up.
                    renewal.grant * (1.0 - 1e-12)
                };
                let now = self.started.elapsed();
                if let Err(error) = self.with_bucket(share, |state, bucket| {
                    state.granted(&share.rules, sent, now, grant, settling, bucket)
                }) {
                    tracing::error!(limiter = %share.name, %error, "could not set the shared rate");
                }
                if !renewal.pause.is_zero() {
                    if let Err(error) = lock(&self.policy).pause(share.index, renewal.pause) {
                        tracing::warn!(limiter = %share.name, %error, "could not apply a shared pause");
                    }
                }
                Ok(())
            }
            Err(Refused(why)) => {
                if leaving {
                    return Ok(());
                }
                // Redis answered: claims and done marks still work, only the share is lost.
                self.complain(
                    &share.name,
                    "refused",
                    &format!(
                        "{why}: this host falls back to 1/{} of the limiter's rate once its \
                         lease ends",
                        self.options.max_hosts
                    ),
                );
                self.fall_back_if_lease_over(share, sent);
                Ok(())
            }
            Err(Unreachable(why)) => {
                if leaving {
                    return Ok(());
                }
                if !self.unreachable.swap(true, Relaxed) {
                    tracing::warn!(
                        group = %self.options.group,
                        url = %self.options.url,
                        "Redis unreachable ({why}): each host falls back to 1/{} of each \
                         limiter's rate once its lease ends, and rejoins when Redis returns",
                        self.options.max_hosts
                    );
                }
                self.fall_back_if_lease_over(share, sent);
                Ok(())
            }
        }
    }

    /// Without a grant: once the lease of the last one is over, the fallback share.
    fn fall_back_if_lease_over(&self, share: &Share, sent: Duration) {
        let now = self.started.elapsed();
        let fell_back = self.with_bucket(share, |state, bucket| {
            state.unanswered(&share.rules, sent, now, bucket)
        });
        if let Some(applied) = fell_back {
            self.fallbacks.fetch_add(1, Relaxed);
            if let Err(error) = applied {
                tracing::error!(limiter = %share.name, %error, "could not set the shared rate");
            }
        }
    }

    /// Says what the renewal found wrong, each kind once: what Redis answered, what the
    /// script repaired, and that this host is beyond `--max-hosts`.
    fn heed(&self, share: &Share, renewal: &reply::Renewal) {
        for (kind, what) in &renewal.complaints {
            self.complain(&share.name, kind, &format!("answered {what}"));
        }
        if renewal.flags & reply::flags::REPAIRED != 0 {
            self.complain(
                &share.name,
                "repaired",
                "held keys of the wrong type, or records no host could have written, for this \
                 limiter: discarded",
            );
        }
        if renewal.flags & reply::flags::PAUSE_CUT != 0 {
            self.complain(
                &share.name,
                "pause",
                &format!(
                    "held a pause longer than the policy's longest ({} ms): cut to it",
                    self.longest_pause.as_millis()
                ),
            );
        }
        if renewal.flags & reply::flags::FULL != 0 && !self.beyond_max.swap(true, Relaxed) {
            tracing::warn!(
                group = %self.options.group,
                "the group already has --max-hosts {} hosts: this host is not one of them and \
                 runs at its fallback share, 1/{} of each limiter's rate, until one leaves",
                self.options.max_hosts,
                self.options.max_hosts
            );
        }
    }

    /// Runs `f` on `share`'s state and the hosted policy's bucket for it (locked in that order).
    fn with_bucket<T>(
        &self,
        share: &Share,
        f: impl FnOnce(&mut ShareState, &mut dyn rules::Bucket) -> T,
    ) -> T {
        let mut state = lock(&share.state);
        let mut policy = lock(&self.policy);
        let mut bucket = HostedBucket {
            policy: &mut policy,
            limiter: share.index,
        };
        f(&mut state, &mut bucket)
    }

    /// Keeps this host's claims alive.
    async fn renew_claims(&self) {
        let held: Vec<String> = lock(&self.claims).iter().cloned().collect();
        if held.is_empty() {
            return;
        }
        let ttl = claim_ttl(self.options.lease);
        let mut pipe = redis::pipe();
        for file in &held {
            pipe.cmd("PEXPIRE")
                .arg(self.file_key(file, "claim"))
                .arg(ttl)
                .ignore();
        }
        let mut connection = self.connection.clone();
        let _ =
            tokio::time::timeout(self.options.lease, pipe.query_async::<()>(&mut connection)).await;
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("group", &self.inner.options.group)
            .field("host", &self.inner.host)
            .finish_non_exhaustive()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
