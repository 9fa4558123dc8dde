//! Distinct-host sketches: what lets distinct hosts over a week, a month or a year be computed
//! from days without keeping who the hosts were.
//!
//! A host enters a sketch as a 64-bit keyed hash of its address ([`host_hash`]: HMAC-SHA256
//! under the store key of the flow's year, first 8 bytes). The sketch is Cloudflare's
//! `cardinality-estimator` with its default parameters (HyperLogLog++ with `P` = 12, 4096
//! registers of `W` = 6 bits): up to [`EXACT_MAX`] distinct hashes it keeps their 31-bit sparse
//! encodings (exact, but for hash collisions: about 2.4 × 10⁻⁴ for 128 hosts), beyond that the
//! registers (standard error [`RELATIVE_ERROR`] = 1.04 / √4096 ≈ 1.6%). Sketches merge without
//! loss: the union of the days' sketches is the sketch of the union, so a host seen on several
//! days, channels or services counts once.
//!
//! # Blob encoding (version 1)
//! What the store keeps, independent of the crate's in-memory layout (which holds pointers):
//!
//! ```text
//! byte 0      FORMAT_VERSION (1)
//! byte 1      kind: 0 = exact, 1 = registers
//! exact:      n × u32 little-endian sparse encodings (index << 6 | rank), sorted, distinct,
//!             0 ≤ n ≤ EXACT_MAX; each has a rank in 1..=MAX_RANK
//! registers:  byte 2 = P (12), byte 3 = W (6), then 4096 registers of 6 bits as one
//!             little-endian bit stream (register i at bits 6i..6i+6): 3072 bytes; each ≤ MAX_RANK
//! ```
//!
//! An empty sketch is 2 bytes, one host 6, 128 hosts 514, a full sketch 3076. Decoding
//! validates every field, so a corrupt blob is an error, never a panic or a wrong-shaped sketch.


use cardinality_estimator::CardinalityEstimator;

/// Version byte written first in every blob.
pub const FORMAT_VERSION: u8 = 1;

/// Precision: log2 of the number of registers (the estimator's default).
pub const P: u8 = 12;

/// Register width in bits (the estimator's default).
pub const W: u8 = 6;

/// Number of registers.
pub const REGISTERS: usize = 1 << P;

/// Highest rank a register can hold: 64 − P hash bits above the index, plus one.
pub const MAX_RANK: u32 = 64 - P as u32 + 1;

/// Distinct hashes kept exactly (the estimator's array capacity); one more switches to registers.
pub const EXACT_MAX: u64 = 128;

/// Distinct counts below this are exact ([`crate::report::input::HostMethod::Sketch`]).
pub const EXACT_BELOW: u64 = EXACT_MAX + 1;

/// Standard error of an estimate from registers: 1.04 / √(2^P).
pub const RELATIVE_ERROR: f64 = 1.04 / 64.0;

const KIND_EXACT: u8 = 0;
const KIND_REGISTERS: u8 = 1;
/// Bytes of the packed registers.
const REGISTER_BYTES: usize = REGISTERS * W as usize / 8;
/// u32 words of the estimator's register representation: zero count, harmonic sum, registers,
/// one spare word.
const HLL_WORDS: usize = REGISTERS * W as usize / 32 + 3;

/// Why a blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    /// Fewer than the two header bytes.
    #[error("sketch blob of {0} bytes is too short")]
    Short(usize),
    /// A format this build does not read.
    #[error("sketch blob version {0} (this build reads {FORMAT_VERSION})")]
    Version(u8),
    /// Neither exact nor registers.
    #[error("sketch blob kind {0} is unknown")]
    Kind(u8),
    /// A length that does not fit its kind.
    #[error("sketch blob of kind {kind} has a wrong length ({len} bytes)")]
    Length {
        /// The kind byte.
        kind: u8,
        /// The blob's length.
        len: usize,
    },
    /// Register parameters other than this build's.
    #[error("sketch registers with P = {p}, W = {w} (this build uses P = {P}, W = {W})")]
    Params {
        /// Precision in the blob.
        p: u8,
        /// Width in the blob.
        w: u8,
    },
    /// An exact entry that no hash encodes to, or out of order.
    #[error("sketch blob entry {0:#x} is invalid or out of order")]
    Entry(u32),
    /// A register above the highest possible rank.
    #[error("sketch register {index} holds {value}, above {MAX_RANK}")]
    Register {
        /// Register index.
        index: usize,
        /// Its value.
        value: u32,
    },
    /// The estimator refused the decoded state.
    #[error("sketch state rejected by the estimator: {0}")]
    Rejected(String),
}

/// A mergeable distinct-count sketch of host hashes.
#[derive(Clone, PartialEq, Default)]
pub struct Sketch(CardinalityEstimator<u64>);

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch({}{})", self.estimate(), if self.is_exact() { "" } else { " est." })
    }
}

/// The estimator's own state: the tagged word and its slice (`serde` is its only public view).
fn parts(s: &Sketch) -> (usize, Option<Vec<u32>>) {
    // Serialising into a JSON value cannot fail for a (usize, Option<Vec<u32>>) tuple.
    let v = serde_json::to_value(&s.0).unwrap_or_default();
    let data = v.get(0).and_then(|d| d.as_u64()).unwrap_or(0) as usize;
    let words = v.get(1).and_then(|w| w.as_array()).map(|a| a.iter().map(|x| x.as_u64().unwrap_or(0) as u32).collect());
    (data, words)
}

fn from_parts(data: usize, words: Option<Vec<u32>>) -> Result<Sketch, SketchError> {
    let v = serde_json::json!([data, words]);
    serde_json::from_value(v).map(Sketch).map_err(|e| SketchError::Rejected(e.to_string()))
}

/// A sparse encoding (index << W | rank) that some hash produces.
fn valid_entry(h: u32) -> bool {
    let rank = h & ((1 << W) - 1);
    h < 1 << 31 && (1..=MAX_RANK).contains(&rank)
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Adds a host hash (see [`host_hash`]).
    pub fn insert(&mut self, hash: u64) {
        self.0.insert_hash(hash);
    }

    /// Adds every host of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        self.0.merge(&other.0);
    }

    /// Distinct hosts (exact while [`Sketch::is_exact`], else the HyperLogLog++ estimate).
    pub fn estimate(&self) -> u64 {
        self.0.estimate() as u64
    }

    /// Whether the sketch still holds every hash (at most [`EXACT_MAX`]).
    pub fn is_exact(&self) -> bool {
        self.exact_entries().is_some()
    }

    /// The sparse encodings held, sorted, while exact.
    fn exact_entries(&self) -> Option<Vec<u32>> {
        let (data, words) = parts(self);
        let mut v = match (data & 3, words) {
            (0, None) => [(data >> 2) & 0x7fff_ffff, (data >> 33) & 0x7fff_ffff].into_iter().filter(|&h| h != 0).map(|h| h as u32).collect(),
            (1, Some(w)) => w,
            _ => return None,
        };
        v.sort_unstable();
        v.dedup();
        Some(v)
    }

    /// The blob the store keeps (see the module documentation).
    pub fn to_blob(&self) -> Vec<u8> {
        if let Some(entries) = self.exact_entries() {
            let mut b = Vec::with_capacity(2 + 4 * entries.len());
            b.extend([FORMAT_VERSION, KIND_EXACT]);
            for h in entries {
                b.extend(h.to_le_bytes());
            }
            return b;
        }
        let (_, words) = parts(self);
        let words = words.unwrap_or_default();
        let mut b = Vec::with_capacity(4 + REGISTER_BYTES);
        b.extend([FORMAT_VERSION, KIND_REGISTERS, P, W]);
        // The estimator's words 2.. are the same little-endian bit stream of registers.
        for w in words.iter().skip(2).take(REGISTER_BYTES / 4) {
            b.extend(w.to_le_bytes());
        }
        b.resize(4 + REGISTER_BYTES, 0);
        b
    }

    /// Reads a blob written by [`Sketch::to_blob`].
    ///
    /// # Errors
    /// A [`SketchError`] naming what is wrong: a corrupt or foreign blob never panics.
    pub fn from_blob(b: &[u8]) -> Result<Sketch, SketchError> {
        let [version, kind, rest @ ..] = b else { return Err(SketchError::Short(b.len())) };
        if *version != FORMAT_VERSION {
            return Err(SketchError::Version(*version));
        }
        match *kind {
            KIND_EXACT => {
                if rest.len() % 4 != 0 || rest.len() / 4 > EXACT_MAX as usize {
                    return Err(SketchError::Length { kind: *kind, len: b.len() });
                }
                let entries: Vec<u32> = rest.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                let mut prev = 0u32;
                for &h in &entries {
                    if !valid_entry(h) || h <= prev {
                        return Err(SketchError::Entry(h));
                    }
                    prev = h;
                }
                match entries.len() {
                    0 => Ok(Sketch::new()),
                    1 => from_parts((entries[0] as usize) << 2, None),
                    2 => from_parts(((entries[0] as usize) << 2) | ((entries[1] as usize) << 33), None),
                    _ => from_parts(1, Some(entries)),
                }
            }
            KIND_REGISTERS => {
                let [p, w, regs @ ..] = rest else { return Err(SketchError::Length { kind: *kind, len: b.len() }) };
                if (*p, *w) != (P, W) {
                    return Err(SketchError::Params { p: *p, w: *w });
                }
                if regs.len() != REGISTER_BYTES {
                    return Err(SketchError::Length { kind: *kind, len: b.len() });
                }
                let mut words = vec![0u32; HLL_WORDS];
                for (i, c) in regs.chunks_exact(4).enumerate() {
                    words[2 + i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                // The estimator keeps the zero count and the harmonic sum beside the registers:
                // recomputed here, so that a blob cannot make them disagree.
                let (mut zeros, mut sum) = (0u32, 0f64);
                for index in 0..REGISTERS {
                    let value = register(regs, index);
                    if value > MAX_RANK {
                        return Err(SketchError::Register { index, value });
                    }
                    zeros += u32::from(value == 0);
                    sum += 1.0 / (1u64 << value) as f64;
                }
                words[0] = zeros;
                words[1] = (sum as f32).to_bits();
                from_parts(3, Some(words))
            }
            k => Err(SketchError::Kind(k)),
        }
    }
}

/// Register `index` of a packed little-endian stream of `W`-bit registers.
fn register(packed: &[u8], index: usize) -> u32 {
    let bit = index * W as usize;
    let lo = packed.get(bit / 8).copied().unwrap_or(0) as u32;
    let hi = packed.get(bit / 8 + 1).copied().unwrap_or(0) as u32;
    ((lo | (hi << 8)) >> (bit % 8)) & ((1 << W) - 1)
}

/// The hash of a host under a store key: the aggregation's keyed hash (HMAC-SHA256, first 8
/// bytes) under the store's yearly key. Without the key, a hash (or a sketch register) cannot
/// be tested against an address.
pub use crate::aggregate::pseudonym::keyed_hash as host_hash;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use crate::testutil::XorShift;

    fn hashes(n: u64, seed: u64) -> impl Iterator<Item = u64> {
        let key = [seed as u8; 32];
        (0..n).map(move |i| host_hash(&key, IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i) | (u128::from(seed) << 64)))))
    }

    #[test]
    fn exact_for_small_sets() {
        for n in [0u64, 1, 2, 3, 17, 100, EXACT_MAX] {
            let mut s = Sketch::new();
            for h in hashes(n, 1).chain(hashes(n, 1)) {
                s.insert(h);
            }
            assert_eq!(s.estimate(), n, "{n} hosts, each inserted twice");
            assert!(s.is_exact());
        }
        let mut s = Sketch::new();
        hashes(EXACT_MAX + 1, 1).for_each(|h| s.insert(h));
        assert!(!s.is_exact(), "one more than EXACT_MAX switches to registers");
    }

    #[test]
    fn error_within_three_standard_errors_at_100k() {
        let n = 100_000u64;
        let mut s = Sketch::new();
        hashes(n, 7).for_each(|h| s.insert(h));
        let err = (s.estimate() as f64 - n as f64).abs() / n as f64;
        eprintln!("100k hosts: estimate {} (relative error {err:.4}, standard error {RELATIVE_ERROR:.4})", s.estimate());
        assert!(err < 3.0 * RELATIVE_ERROR, "relative error {err}");
        // Merged halves estimate the same as the whole.
        let (mut a, mut b) = (Sketch::new(), Sketch::new());
        hashes(n, 7).enumerate().for_each(|(i, h)| if i % 2 == 0 { a.insert(h) } else { b.insert(h) });
        a.merge(&b);
        assert_eq!(a.to_blob(), s.to_blob(), "the union of sketches is the sketch of the union");
    }

    #[test]
    fn merge_counts_shared_hosts_once() {
        let (mut a, mut b) = (Sketch::new(), Sketch::new());
        hashes(60, 3).for_each(|h| a.insert(h));
        hashes(90, 3).skip(30).for_each(|h| b.insert(h));
        a.merge(&b);
        assert_eq!(a.estimate(), 90);
        assert!(a.is_exact());
    }

    #[test]
    fn blob_round_trip_for_every_kind() {
        for n in [0u64, 1, 2, 3, 5, 128, 129, 5000] {
            let mut s = Sketch::new();
            hashes(n, 9).for_each(|h| s.insert(h));
            let blob = s.to_blob();
            let back = Sketch::from_blob(&blob).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(back.to_blob(), blob, "{n}: stable encoding");
            assert_eq!(back.is_exact(), s.is_exact());
            let (e0, e1) = (s.estimate() as f64, back.estimate() as f64);
            assert!((e0 - e1).abs() <= 1.0 + e0 * 1e-6, "{n}: {e0} vs {e1}");
            // Decoded sketches keep working: inserting and merging.
            let mut more = back.clone();
            hashes(10, 11).for_each(|h| more.insert(h));
            more.merge(&s);
            assert!(more.estimate() >= back.estimate());
        }
        let mut s = Sketch::new();
        hashes(1, 1).for_each(|h| s.insert(h));
        assert_eq!(s.to_blob().len(), 6);
        hashes(200, 1).for_each(|h| s.insert(h));
        assert_eq!(s.to_blob().len(), 4 + REGISTER_BYTES);
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        let mut s = Sketch::new();
        hashes(4, 2).for_each(|h| s.insert(h));
        let good = s.to_blob();
        assert_eq!(Sketch::from_blob(&[]), Err(SketchError::Short(0)));
        assert_eq!(Sketch::from_blob(&[2, 0]), Err(SketchError::Version(2)));
        assert_eq!(Sketch::from_blob(&[1, 9]), Err(SketchError::Kind(9)));
        assert!(matches!(Sketch::from_blob(&good[..good.len() - 1]), Err(SketchError::Length { .. })));
        let mut swapped = good.clone();
        swapped[2..6].copy_from_slice(&good[6..10]);
        swapped[6..10].copy_from_slice(&good[2..6]);
        assert!(matches!(Sketch::from_blob(&swapped), Err(SketchError::Entry(_))), "unsorted");
        assert!(matches!(Sketch::from_blob(&[1, 0, 0, 0, 0, 0]), Err(SketchError::Entry(0))));
        let mut regs = vec![1, 1, 12, 6];
        regs.extend(vec![0xff; REGISTER_BYTES]);
        assert!(matches!(Sketch::from_blob(&regs), Err(SketchError::Register { value: 63, .. })));
        regs[2] = 14;
        assert_eq!(Sketch::from_blob(&regs), Err(SketchError::Params { p: 14, w: 6 }));
        // Byte soup never panics.
        let mut rng = XorShift(5);
        for _ in 0..2000 {
            let len = (rng.next() % 40) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(v) = b.first_mut() {
                *v = 1;
            }
            if b.len() > 1 {
                b[1] %= 2;
            }
            let _ = Sketch::from_blob(&b);
        }
    }

    #[test]
    fn host_hash_depends_on_key_and_address() {
        let a: IpAddr = "10.20.1.5".parse().unwrap();
        let b: IpAddr = "10.20.1.6".parse().unwrap();
        assert_eq!(host_hash(&[1; 32], a), host_hash(&[1; 32], a));
        assert_ne!(host_hash(&[1; 32], a), host_hash(&[1; 32], b));
        assert_ne!(host_hash(&[1; 32], a), host_hash(&[2; 32], a));
    }
}
