//! Versioned, checksummed snapshots of a policy's state, portable between processes.
//!
//! Layout (little-endian): `"PACR"`, version `u16`, limiter count `u32`; per limiter its
//! identity (name length `u32`, name, `tokens_per_hour` bits `u64`, burst `u32`) and state
//! (touched `u8`, bucket `tat` relative to now `i128` ticks, pause remaining `u64` ns,
//! failures `u32`, circuit tag `u8` + remaining `u64` ns, the current failure round's age
//! (tag `u8` + `u64` ns ago), the limiter's decorrelated jitter previous delay (tag `u8` +
//! `u64`)); the random state (32 bytes); the module-wide decorrelated jitter's previous delay
//! (tag `u8` + `u64`); the pressure level `u8`; then a CRC-32 of everything before it. Times
//! are relative to the exporter's clock at export.

use alloc::vec::Vec;

use crate::backoff::{Breaker, Circuit};
use crate::clock::Nanos;
use crate::error::Error;
use crate::limiter::Limiter;
use crate::policy::Policy;
use crate::pressure::Level;
use crate::quota::{TICKS_PER_NS, ticks};
use crate::random::Rng;

const MAGIC: &[u8; 4] = b"PACR";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u16 = 2;

impl Policy {
    /// A snapshot of all state, with times relative to `now`.
    pub fn export_state(&mut self, now: Nanos) -> Vec<u8> {
        let now = self.observe_clock(now);
        let now_ticks = ticks(now);
        let mut out = Vec::with_capacity(64 + 64 * self.slots.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        put_u32(&mut out, self.slots.len() as u32);
        for (slot, limiter) in self.slots.iter().zip(&self.config.limiters) {
            put_u32(&mut out, limiter.name.len() as u32);
            out.extend_from_slice(limiter.name.as_bytes());
            out.extend_from_slice(&limiter.tokens_per_hour.to_bits().to_le_bytes());
            put_u32(&mut out, slot.configured.burst());
            let (touched, tat, pause) = match &slot.bucket {
                None => (0u8, 0i128, 0u64),
                Some(bucket) => {
                    // In the configured quota's terms, which a restore brings back.
                    let mut bucket = bucket.clone();
                    if *bucket.quota() != slot.configured {
                        bucket.set_quota(now, slot.configured);
                    }
                    // Anything older than a full bucket (plus the 1 ns grace) decides the same.
                    let floor = -((slot.configured.capacity() + TICKS_PER_NS) as i128);
                    let tat = (bucket.tat() as i128 - now_ticks as i128).max(floor);
                    (1, tat, bucket.paused_until().saturating_sub(now))
                }
            };
            out.push(touched);
            out.extend_from_slice(&tat.to_le_bytes());
            out.extend_from_slice(&pause.to_le_bytes());
            put_u32(&mut out, slot.breaker.failures());
            let (tag, at) = match slot.breaker.circuit() {
                Circuit::Closed => (0u8, 0),
                Circuit::Open { until } => (1, until.saturating_sub(now)),
                Circuit::Probing { deadline } => (2, deadline.saturating_sub(now)),
            };
            out.push(tag);
            out.extend_from_slice(&at.to_le_bytes());
            let round_age = slot.breaker.round_began().map(|at| now.saturating_sub(at));
            put_option(&mut out, round_age);
            put_option(&mut out, slot.jitter_previous);
        }
        out.extend_from_slice(&self.rng.state());
        put_option(&mut out, self.jitter.previous_ns());
        out.push(self.pressure.level() as u8);
        let checksum = crc32(&out);
        put_u32(&mut out, checksum);
        out
    }

    /// Restores a snapshot taken from a policy with the same limiters, re-basing its times on
    /// `now`. A malformed, truncated, altered, foreign or other-version snapshot is refused
    /// and nothing changes.
    pub fn import_state(&mut self, now: Nanos, snapshot: &[u8]) -> Result<(), Error> {
        let now = self.observe_clock(now);
        let restored = self.decode(now, snapshot)?;
        let (slots, rng, previous, level) = restored;
        for (slot, (bucket, breaker, jitter_previous)) in self.slots.iter_mut().zip(slots) {
            slot.bucket = bucket;
            slot.quota = slot.configured;
            slot.announced_from = None;
            if let Some(adaptive) = &mut slot.adaptive {
                *adaptive = crate::adaptive::Adaptive::new(
                    adaptive.config,
                    slot.configured.tokens_per_hour(),
                );
            }
            slot.breaker = breaker;
            slot.jitter_previous = jitter_previous;
        }
        self.rng = rng;
        self.jitter.set_previous_ns(previous);
        self.pressure.set_level(level);
        Ok(())
    }

    fn decode(
        &self,
        now: Nanos,
        snapshot: &[u8],
    ) -> Result<(Vec<RestoredSlot>, Rng, Option<Nanos>, Level), Error> {
        let body_len = snapshot
            .len()
            .checked_sub(4)
            .ok_or(Error::BadSnapshot("truncated"))?;
        if !snapshot.starts_with(MAGIC) {
            return Err(Error::BadSnapshot("not a pacer snapshot"));
        }
        let (body, checksum) = snapshot.split_at(body_len);
        if crc32(body).to_le_bytes() != checksum {
            return Err(Error::BadSnapshot(
                "checksum mismatch: truncated or altered",
            ));
        }
        let mut r = Reader {
            rest: &body[MAGIC.len()..],
        };
        if r.u16()? != SNAPSHOT_VERSION {
            return Err(Error::BadSnapshot("unsupported version"));
        }
        if r.u32()? as usize != self.slots.len() {
            return Err(Error::BadSnapshot("taken with other limiters"));
        }
        let now_ticks = ticks(now) as i128;
        let mut slots = Vec::with_capacity(self.slots.len());
        for (slot, limiter) in self.slots.iter().zip(&self.config.limiters) {
            let name_len = r.u32()? as usize;
            let same = r.bytes(name_len)? == limiter.name.as_bytes()
                && r.u64()? == limiter.tokens_per_hour.to_bits()
                && r.u32()? == slot.configured.burst();
            if !same {
                return Err(Error::BadSnapshot("taken with other limiters"));
            }
            let touched = r.flag()?;
            let tat = r.i128()?;
            let pause = r.u64()?;
            let bucket = touched.then(|| {
                let tat = u128::try_from(now_ticks.saturating_add(tat)).unwrap_or(0);
                Limiter::restore(slot.configured, tat, now.saturating_add(pause))
            });
            let failures = r.u32()?;
            let circuit = match (r.u8()?, now.saturating_add(r.u64()?)) {
                (0, _) => Circuit::Closed,
                (1, until) => Circuit::Open { until },
                (2, deadline) => Circuit::Probing { deadline },
                _ => return Err(Error::BadSnapshot("unknown circuit state")),
            };
            // A round that began before the clock's origin began at its origin.
            let round_began = r.option()?.map(|age| now.saturating_sub(age));
            let jitter_previous = r.option()?;
            let breaker = Breaker::restore(failures, circuit, round_began);
            slots.push((bucket, breaker, jitter_previous));
        }
        let rng = Rng::from_state(r.array()?);
        let previous = r.option()?;
        let level =
            Level::from_code(r.u8()?).ok_or(Error::BadSnapshot("unknown pressure level"))?;
        if !r.rest.is_empty() {
            return Err(Error::BadSnapshot("trailing bytes"));
        }
        Ok((slots, rng, previous, level))
    }
}

/// CRC-32 (IEEE 802.3, as zlib and PNG), four bytes at a time ("slicing by 4", 4 KiB of
/// tables): the hosted handle checksums a snapshot every 256 decisions, and a table lookup per
/// byte is a chain of dependent loads that Cranelift's code runs at ~3 ns a byte.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut words = bytes.chunks_exact(4);
    for word in &mut words {
        let [a, b, c, d] = (crc ^ u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
            .to_le_bytes()
            .map(usize::from);
        crc = CRC_TABLES[3][a] ^ CRC_TABLES[2][b] ^ CRC_TABLES[1][c] ^ CRC_TABLES[0][d];
    }
    for &byte in words.remainder() {
        crc = (crc >> 8) ^ CRC_TABLES[0][((crc ^ u32::from(byte)) & 0xff) as usize];
    }
    !crc
}

/// `CRC_TABLES[0][b]`: the CRC-32 of byte value `b` (the reflected IEEE polynomial);
/// `CRC_TABLES[k][b]`: of `b` followed by `k` zero bytes.
const CRC_TABLES: [[u32; 256]; 4] = {
    let mut tables = [[0u32; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut i = 0;
        while i < 256 {
            let previous = tables[k - 1][i];
            tables[k][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

/// One limiter's restored state: bucket, breaker, decorrelated jitter's previous delay.
type RestoredSlot = (Option<Limiter>, Breaker, Option<Nanos>);

/// An optional `u64`: tag `u8` (0 none, 1 some) and the value (0 when none).
fn put_option(out: &mut Vec<u8>, value: Option<u64>) {
    out.push(u8::from(value.is_some()));
    out.extend_from_slice(&value.unwrap_or(0).to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Reads fixed-width fields, refusing to run past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.rest.len() {
            return Err(Error::BadSnapshot("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn flag(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::BadSnapshot("malformed flag")),
        }
    }

    fn option(&mut self) -> Result<Option<u64>, Error> {
        let some = self.flag()?;
        let value = self.u64()?;
        Ok(some.then_some(value))
    }

    fn u16(&mut self) -> Result<u16, Error> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, Error> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        self.array().map(u64::from_le_bytes)
    }

    fn i128(&mut self) -> Result<i128, Error> {
        self.array().map(i128::from_le_bytes)
    }
}
