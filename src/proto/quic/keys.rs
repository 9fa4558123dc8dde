//! Client Initial packet protection: key derivation (RFC 9001 §5.2), header protection
//! (§5.4) and payload decryption (§5.3).
//!
//! Initial packets are encrypted only against off-path tampering: their keys come from the
//! Destination Connection ID of the client's first Initial and a salt published per version, so a
//! passive observer derives the same keys as the server. Deriving costs two HKDF-Extract/Expand
//! rounds and three AES key schedules, which is why [`super::Initials`] derives once per DCID and
//! caches the result rather than deriving per packet.

use aes::cipher::BlockEncrypt;
use aes::Aes128;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::{AeadInPlace, Aes128Gcm, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;

use super::version::Protected;

/// Length of the AEAD authentication tag (AEAD_AES_128_GCM, RFC 5116 §5.1).
pub(crate) const TAG_LEN: usize = 16;
/// Length of the header protection sample (RFC 9001 §5.4.2).
pub(crate) const SAMPLE_LEN: usize = 16;
/// The sample starts this many bytes after the start of the Packet Number field, as if the packet
/// number were 4 bytes long (RFC 9001 §5.4.2).
pub(crate) const SAMPLE_OFFSET: usize = 4;

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, as RFC 9001 §5.1 uses it.
///
/// `HkdfLabel = length (u16) || label length (u8) || "tls13 " || label || context length (u8, 0)`.
/// Returns `None` only if `out` is longer than HKDF allows (255 hash lengths), which the fixed
/// lengths used here never are.
pub(crate) fn expand_label(secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    const PREFIX: &[u8] = b"tls13 ";
    let hk = Hkdf::<Sha256>::from_prk(secret).ok()?;
    let len = u16::try_from(out.len()).ok()?;
    let label_len = u8::try_from(PREFIX.len() + label.len()).ok()?;
    let info: [&[u8]; 5] = [&len.to_be_bytes(), &[label_len], PREFIX, label, &[0]];
    hk.expand_multi_info(&info, out).ok()
}

/// Which endpoint's Initial secret (RFC 9001 §5.2; the labels are the same in v2, RFC 9369
/// §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    /// `"client in"`: what the client's Initials are protected with.
    Client,
    /// `"server in"`: what the server's Initials are protected with. Also derived from the
    /// client's DCID, so opening a server Initial tells which client DCID it answers.
    Server,
}

impl Sender {
    const fn label(self) -> &'static [u8] {
        match self {
            Sender::Client => b"client in",
            Sender::Server => b"server in",
        }
    }
}

/// `initial_secret = HKDF-Extract(salt, dcid)`, then
/// `HKDF-Expand-Label(initial_secret, "client in" | "server in", "", 32)` (RFC 9001 §5.2).
pub(crate) fn initial_secret(salt: &[u8], dcid: &[u8], sender: Sender) -> Option<[u8; 32]> {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
    let mut secret = [0u8; 32];
    expand_label(&prk, sender.label(), &mut secret)?;
    Some(secret)
}

/// The client's Initial secret ([`initial_secret`] with `"client in"`).
#[cfg(test)]
pub(crate) fn client_initial_secret(salt: &[u8], dcid: &[u8]) -> Option<[u8; 32]> {
    initial_secret(salt, dcid, Sender::Client)
}

/// The client's Initial packet protection keys for one (version, DCID).
///
/// Memory: about 1 KiB (the AES-128 key schedules of the AEAD and of header protection, plus the
/// GHASH key).
#[derive(Clone)]
pub(crate) struct Keys {
    aead: Aes128Gcm,
    iv: [u8; 12],
    hp: Aes128,
}

impl Keys {
    /// Derive the client Initial keys (RFC 9001 §5.2 secret, §5.1 key/iv/hp with the version's
    /// labels).
    pub(crate) fn client_initial(p: &Protected, dcid: &[u8]) -> Option<Keys> {
        Self::initial(p, dcid, Sender::Client)
    }

    /// Derive the Initial keys of `sender` from the client's original DCID `dcid`.
    pub(crate) fn initial(p: &Protected, dcid: &[u8], sender: Sender) -> Option<Keys> {
        let (key, iv, hp) = Self::material(p, dcid, sender)?;
        Some(Keys {
            aead: Aes128Gcm::new((&key).into()),
            iv,
            hp: Aes128::new((&hp).into()),
        })
    }

    /// The raw key, IV and header-protection key.
    pub(crate) fn material(
        p: &Protected,
        dcid: &[u8],
        sender: Sender,
    ) -> Option<([u8; 16], [u8; 12], [u8; 16])> {
        let secret = initial_secret(p.salt, dcid, sender)?;
        let mut key = [0u8; 16];
        let mut iv = [0u8; 12];
        let mut hp = [0u8; 16];
        expand_label(&secret, p.labels.key, &mut key)?;
        expand_label(&secret, p.labels.iv, &mut iv)?;
        expand_label(&secret, p.labels.hp, &mut hp)?;
        Some((key, iv, hp))
    }

    /// The 5-byte header protection mask: AES-128-ECB of the sample (RFC 9001 §5.4.3).
    fn mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; 5] {
        let mut block = GenericArray::from(*sample);
        self.hp.encrypt_block(&mut block);
        let [m0, m1, m2, m3, m4, ..]: [u8; SAMPLE_LEN] = block.into();
        [m0, m1, m2, m3, m4]
    }

    /// Remove header protection from a long-header packet in place (RFC 9001 §5.4.1): unmask the
    /// low 4 bits of the first byte, read the packet number length from them, unmask the packet
    /// number. `packet` runs from the first byte to the end of this packet (its Length field).
    ///
    /// Returns the truncated packet number and its length in bytes, or `None` when the packet is
    /// too short to hold the sample or a tag after the packet number.
    pub(crate) fn unmask_long(&self, packet: &mut [u8], pn_offset: usize) -> Option<(u32, usize)> {
        let start = pn_offset.checked_add(SAMPLE_OFFSET)?;
        let sample = packet.get(start..)?.first_chunk::<SAMPLE_LEN>()?;
        let mask = self.mask(sample);
        let first = packet.first_mut()?;
        *first ^= mask[0] & 0x0f;
        let pn_len = usize::from(*first & 0x03) + 1;
        let pn_bytes = packet.get_mut(pn_offset..pn_offset + pn_len)?;
        let mut pn = 0u32;
        for (b, m) in pn_bytes.iter_mut().zip(&mask[1..]) {
            *b ^= m;
            pn = (pn << 8) | u32::from(*b);
        }
        if packet.len() < pn_offset + pn_len + TAG_LEN {
            return None;
        }
        Some((pn, pn_len))
    }

    /// The AEAD nonce: the IV XOR the packet number, left-padded to 12 bytes (RFC 9001 §5.3).
    fn nonce(&self, pn: u64) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        nonce
    }

    /// Decrypt the payload in place (RFC 9001 §5.3): the associated data is the unprotected
    /// header `packet[..header_len]`, the last 16 bytes are the tag. Returns the plaintext, which
    /// lies at `packet[header_len..]`.
    ///
    /// Returns `None` when the tag does not verify: wrong keys (another DCID, a version this
    /// reader mis-identified) or a corrupted or forged packet.
    pub(crate) fn open<'p>(
        &self,
        pn: u64,
        packet: &'p mut [u8],
        header_len: usize,
    ) -> Option<&'p [u8]> {
        let (header, rest) = packet.split_at_mut_checked(header_len)?;
        let (body, tag) = rest.split_last_chunk_mut::<TAG_LEN>()?;
        let nonce = self.nonce(pn);
        self.aead
            .decrypt_in_place_detached((&nonce).into(), header, body, (&*tag).into())
            .ok()?;
        Some(body)
    }

    /// Test-only inverse of [`Keys::unmask_long`] and [`Keys::open`]: `header` holds the
    /// unprotected header ending with the packet number (`pn_len` bytes) and the Length field
    /// already counting the tag; returns the protected packet.
    #[cfg(test)]
    pub(crate) fn protect(&self, header: &[u8], pn: u64, pn_len: usize, payload: &[u8]) -> Vec<u8> {
        let mut out = header.to_vec();
        let mut body = payload.to_vec();
        let nonce = self.nonce(pn);
        let tag = self
            .aead
            .encrypt_in_place_detached(GenericArray::from_slice(&nonce), header, &mut body)
            .expect("test payload fits");
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        let pn_offset = header.len() - pn_len;
        let s = pn_offset + SAMPLE_OFFSET;
        let mask = self.mask(
            out[s..]
                .first_chunk()
                .expect("test packet holds the sample"),
        );
        out[0] ^= mask[0] & 0x0f;
        for i in 0..pn_len {
            out[pn_offset + i] ^= mask[1 + i];
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::version::{classify, Kind, V1, V2};
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    pub(crate) fn protected(v: u32) -> Protected {
        match classify(v) {
            Kind::Protected(p) => p,
            other => panic!("{other:?}"),
        }
    }

    /// RFC 9001 Appendix A.1.
    #[test]
    fn rfc9001_a1_client_keys() {
        let dcid = hex("8394c8f03e515708");
        let p = protected(V1);
        assert_eq!(
            client_initial_secret(p.salt, &dcid).unwrap().to_vec(),
            hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
        );
        let (key, iv, hp) = Keys::material(&p, &dcid, Sender::Client).unwrap();
        assert_eq!(key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    /// RFC 9369 Appendix A.1.
    #[test]
    fn rfc9369_a1_client_keys() {
        let dcid = hex("8394c8f03e515708");
        let p = protected(V2);
        assert_eq!(
            client_initial_secret(p.salt, &dcid).unwrap().to_vec(),
            hex("14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b")
        );
        let (key, iv, hp) = Keys::material(&p, &dcid, Sender::Client).unwrap();
        assert_eq!(key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    /// RFC 9001 Appendix A.1, server side: the keys a server Initial is protected with come
    /// from the same client DCID.
    #[test]
    fn rfc9001_a1_server_keys() {
        let dcid = hex("8394c8f03e515708");
        let p = protected(V1);
        assert_eq!(
            initial_secret(p.salt, &dcid, Sender::Server)
                .unwrap()
                .to_vec(),
            hex("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b")
        );
        let (key, iv, hp) = Keys::material(&p, &dcid, Sender::Server).unwrap();
        assert_eq!(key.to_vec(), hex("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(hp.to_vec(), hex("c206b8d9b9f0f37644430b490eeaa314"));
    }

    /// RFC 9001 Appendix A.2: the header protection mask of the sample.
    #[test]
    fn rfc9001_a2_mask() {
        let keys = Keys::client_initial(&protected(V1), &hex("8394c8f03e515708")).unwrap();
        assert_eq!(
            keys.mask(&hex("d1b1c98dd7689fb8ec11d242b123dc9b").try_into().unwrap())
                .to_vec(),
            hex("437b9aec36")
        );
    }
}
