//! Helpers for the unit tests of every stage (compiled in tests only).

/// xorshift64 (Marsaglia 2003): a deterministic byte-soup generator for "never panics" tests,
/// so that a failure replays exactly and no random-number crate is needed.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    /// The next 64 pseudo-random bits (the state must not be zero).
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Overwrites `count` random bytes of `buf` (no-op on an empty buffer).
    pub(crate) fn mutate(&mut self, buf: &mut [u8], count: usize) {
        if buf.is_empty() {
            return;
        }
        for _ in 0..count {
            let r = self.next();
            let at = (r % buf.len() as u64) as usize;
            buf[at] = (r >> 32) as u8;
        }
    }
}
