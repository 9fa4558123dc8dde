//! Keyed pseudonyms of hosts: the only host identity the aggregation holds.
//!
//! A pseudonym is the first 8 bytes of HMAC-SHA256(key, address). The key is random, held in
//! memory only, and replaced every `rotation_secs` of packet time; a restart also draws a new
//! key. Without the key a pseudonym cannot be turned back into an address, and two periods'
//! pseudonyms cannot be linked. The cost: a host seen in two key periods counts twice in a window
//! that spans the rotation (documented next to the windows).

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::time::Timestamp;

/// Default key lifetime: 30 days, the longest window, so that a 30-day distinct count is exact
/// within one key period.
pub const DEFAULT_ROTATION_SECS: u64 = 30 * 24 * 3600;

/// A host pseudonym.
pub type Pseudonym = u64;

/// Keyed pseudonymisation with scheduled key rotation.
pub struct Pseudonymizer {
    key: [u8; 32],
    epoch_start: Option<Timestamp>,
    rotation_secs: u64,
    /// Keys drawn so far (rotations + 1).
    pub keys_drawn: u64,
    /// Rotations that could not draw a key (the old key stays until the next attempt).
    pub rotation_failures: u64,
}

fn fresh_key() -> Result<[u8; 32], getrandom::Error> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k)?;
    Ok(k)
}

impl Pseudonymizer {
    /// A pseudonymizer with a new random key, rotated every `rotation_secs` of packet time.
    ///
    /// # Errors
    /// The operating system's random source failed: the sensor must not run with predictable
    /// pseudonyms.
    pub fn new(rotation_secs: u64) -> Result<Self, getrandom::Error> {
        Ok(Pseudonymizer { key: fresh_key()?, epoch_start: None, rotation_secs: rotation_secs.max(1), keys_drawn: 1, rotation_failures: 0 })
    }

    /// The pseudonym of `addr` at packet time `now` (rotating the key when its period is over).
    pub fn pseudonym(&mut self, addr: IpAddr, now: Timestamp) -> Pseudonym {
        match self.epoch_start {
            None => self.epoch_start = Some(now),
            Some(start) if now.micros_since(start) >= self.rotation_secs.saturating_mul(1_000_000) => {
                match fresh_key() {
                    Ok(k) => {
                        self.key = k;
                        self.keys_drawn += 1;
                    }
                    Err(_) => self.rotation_failures += 1,
                }
                self.epoch_start = Some(now);
            }
            Some(_) => {}
        }
        keyed_hash(&self.key, addr)
    }
}

/// HMAC-SHA256(key, address octets), first 8 bytes: the pseudonym of the live windows and the
/// host hash of the rollup store's sketches (under their own keys). Without the key it cannot
/// be tested against an address.
pub fn keyed_hash(key: &[u8; 32], addr: IpAddr) -> u64 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    match addr {
        IpAddr::V4(a) => mac.update(&a.octets()),
        IpAddr::V6(a) => mac.update(&a.octets()),
    }
    let out = mac.finalize().into_bytes();
    u64::from_be_bytes([out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_within_a_period_unlinkable_across() {
        let mut p = Pseudonymizer::new(3600).unwrap();
        let a: IpAddr = "10.20.1.5".parse().unwrap();
        let t0 = Timestamp::from_parts(1_000_000, 0);
        let x = p.pseudonym(a, t0);
        assert_eq!(x, p.pseudonym(a, t0.plus_secs(3599)));
        assert_ne!(x, p.pseudonym("10.20.1.6".parse().unwrap(), t0));
        let y = p.pseudonym(a, t0.plus_secs(3600));
        assert_ne!(x, y, "a new key after the rotation period");
        assert_eq!(p.keys_drawn, 2);
        let mut q = Pseudonymizer::new(3600).unwrap();
        assert_ne!(q.pseudonym(a, t0), x, "another process, another key");
    }
}
