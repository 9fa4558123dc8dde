//! QUIC version numbers: which ones this reader can open, and what each one needs.
//!
//! A client Initial is protected with keys anyone can derive (RFC 9001 §5.2), but the salt, the
//! HKDF labels and the long-header type bits depend on the version, so the version field (RFC 9000
//! §17.2, the same place in every version per RFC 8999 §5.1) decides everything that follows.
//! Versions stay raw `u32` values; [`version_str`] formats them only at the output boundary.

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369 §3.1).
pub const V2: u32 = 0x6b33_43cf;
/// The version field of a Version Negotiation packet (RFC 9000 §17.2.1).
pub const NEGOTIATION: u32 = 0;
/// First IETF draft version number handled here: draft-22 (`0xff000016`), the first draft whose
/// long header carries one length byte per connection ID, like RFC 9000 §17.2.
pub const DRAFT_FIRST: u32 = 0xff00_0016;
/// Last IETF draft version: draft-34 (`0xff000022`).
pub const DRAFT_LAST: u32 = 0xff00_0022;
/// Facebook mvfst speaking draft-22.
pub const MVFST_22: u32 = 0xface_b001;
/// Facebook mvfst speaking draft-27.
pub const MVFST_27: u32 = 0xface_b002;
/// Facebook mvfst experimental version (draft-27/29 wire format).
pub const MVFST_EXP: u32 = 0xface_b00e;
/// Google QUIC Q046: IETF-like long header, plaintext CHLO (no packet protection).
pub const Q046: u32 = u32::from_be_bytes(*b"Q046");
/// Google QUIC Q050: Initial protected like IETF QUIC with its own salt, gQUIC frames and CHLO.
pub const Q050: u32 = u32::from_be_bytes(*b"Q050");
/// Google QUIC T050: Q050 packets carrying a TLS 1.3 ClientHello.
pub const T050: u32 = u32::from_be_bytes(*b"T050");
/// Google QUIC T051: like T050 with another salt.
pub const T051: u32 = u32::from_be_bytes(*b"T051");

/// RFC 9001 §5.2 initial salt (also draft-33 and draft-34).
const SALT_V1: [u8; 20] = hex20(b"38762cf7f55934b34d179ae6a4c80cadccbb7f0a");
/// RFC 9369 §3.3.1 initial salt.
const SALT_V2: [u8; 20] = hex20(b"0dede3def700a6db819381be6e269dcbf9bd2ed9");
/// draft-ietf-quic-tls-29 §5.2 (drafts 29 to 32).
const SALT_D29: [u8; 20] = hex20(b"afbfec289993d24c9e9786f19c6111e04390a899");
/// draft-ietf-quic-tls-23 §5.2 (drafts 23 to 28).
const SALT_D23: [u8; 20] = hex20(b"c3eef712c72ebb5a11a7d2432bb46365bef9f502");
/// draft-ietf-quic-tls-22 §5.2.
const SALT_D22: [u8; 20] = hex20(b"7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a");
/// Chromium's initial obfuscator salt for Q050.
const SALT_Q050: [u8; 20] = hex20(b"504574efd066fe2f9d945cfcdbd3a7f0d3b56b45");
/// Chromium's initial obfuscator salt for T050.
const SALT_T050: [u8; 20] = hex20(b"7ff579e5acd072915580304c43a2367c60488310");
/// Chromium's initial obfuscator salt for T051.
const SALT_T051: [u8; 20] = hex20(b"7a4edef4e7ccee5fa4506c19124fc8ccda6e033d");

/// Decode 40 hex digits at compile time (a malformed literal fails the build, not a packet).
// Only evaluated in constants: an index out of range or a bad digit is a compile error.
#[allow(clippy::indexing_slicing, clippy::panic)]
const fn hex20(s: &[u8; 40]) -> [u8; 20] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = (nib(s[2 * i]) << 4) | nib(s[2 * i + 1]);
        i += 1;
    }
    out
}

/// The HKDF-Expand-Label labels of one version (RFC 9001 §5.1, RFC 9369 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Labels {
    /// AEAD key label.
    pub key: &'static [u8],
    /// AEAD IV label.
    pub iv: &'static [u8],
    /// Header protection key label.
    pub hp: &'static [u8],
}

const LABELS_V1: Labels = Labels {
    key: b"quic key",
    iv: b"quic iv",
    hp: b"quic hp",
};
const LABELS_V2: Labels = Labels {
    key: b"quicv2 key",
    iv: b"quicv2 iv",
    hp: b"quicv2 hp",
};

/// Which frame encoding a decrypted Initial carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frames {
    /// RFC 9000 §19 frames; CRYPTO carries TLS handshake messages.
    Ietf,
    /// Google QUIC frames (Q050, T050, T051): PADDING 0x00, PING 0x07, CRYPTO 0x08.
    Google,
}

/// What the CRYPTO stream of the client's Initials holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// A TLS 1.3 ClientHello (RFC 9001 §4).
    Tls,
    /// A Google QUIC crypto CHLO message (tag-value map).
    Chlo,
}

/// Everything needed to open a client Initial of one protected version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protected {
    /// HKDF-Extract salt for the initial secret.
    pub salt: &'static [u8; 20],
    /// Key, IV and header-protection labels.
    pub labels: Labels,
    /// Long-header packet type bits (0x30 of the first byte) meaning Initial: 0b00 for v1 and the
    /// drafts, 0b01 for v2 (RFC 9369 §3.2).
    pub initial_type: u8,
    /// Long-header packet type bits meaning Retry: 0b11 for v1, 0b00 for v2.
    pub retry_type: u8,
    /// Frame encoding inside the packet.
    pub frames: Frames,
    /// What the CRYPTO stream carries.
    pub handshake: Handshake,
}

/// How this reader treats a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Initial packets protected per RFC 9001 §5 (with the given parameters).
    Protected(Protected),
    /// Google QUIC with an unprotected CHLO in a STREAM frame (Q046 long header).
    GooglePlain,
    /// Version Negotiation (version 0).
    Negotiation,
    /// A reserved version of the form 0x?a?a?a?a (RFC 9000 §15), sent to provoke negotiation.
    Reserved,
    /// Recognisably QUIC (an IETF draft, mvfst or Google version) but not one this reader opens.
    Unsupported,
    /// Not a QUIC version this reader knows of.
    Unknown,
}

const fn ietf(salt: &'static [u8; 20]) -> Kind {
    Kind::Protected(Protected {
        salt,
        labels: LABELS_V1,
        initial_type: 0,
        retry_type: 3,
        frames: Frames::Ietf,
        handshake: Handshake::Tls,
    })
}

const fn google(salt: &'static [u8; 20], handshake: Handshake) -> Kind {
    Kind::Protected(Protected {
        salt,
        labels: LABELS_V1,
        initial_type: 0,
        retry_type: 3,
        frames: Frames::Google,
        handshake,
    })
}

/// Is `v` a Google QUIC version `Q0dd` / `T0dd` (ASCII letter, '0', two digits)?
const fn google_number(v: u32) -> Option<u32> {
    let b = v.to_be_bytes();
    if (b[0] == b'Q' || b[0] == b'T')
        && b[1] == b'0'
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
    {
        Some(((b[2] - b'0') * 10 + (b[3] - b'0')) as u32)
    } else {
        None
    }
}

/// The gQUIC version number (`Q043` gives 43) of a Google version, else `None`.
pub(crate) const fn google_version(v: u32) -> Option<u32> {
    google_number(v)
}

/// Classify a version field.
pub(crate) const fn classify(v: u32) -> Kind {
    match v {
        V1 => ietf(&SALT_V1),
        V2 => Kind::Protected(Protected {
            salt: &SALT_V2,
            labels: LABELS_V2,
            initial_type: 1,
            retry_type: 0,
            frames: Frames::Ietf,
            handshake: Handshake::Tls,
        }),
        NEGOTIATION => Kind::Negotiation,
        0xff00_0016 | MVFST_22 => ietf(&SALT_D22),
        0xff00_0017..=0xff00_001c | MVFST_27 | MVFST_EXP => ietf(&SALT_D23),
        0xff00_001d..=0xff00_0020 => ietf(&SALT_D29),
        0xff00_0021..=DRAFT_LAST => ietf(&SALT_V1),
        Q046 => Kind::GooglePlain,
        Q050 => google(&SALT_Q050, Handshake::Chlo),
        T050 => google(&SALT_T050, Handshake::Tls),
        T051 => google(&SALT_T051, Handshake::Tls),
        _ if is_reserved(v) => Kind::Reserved,
        0xff00_0000..=0xff00_00ff | 0xface_b000..=0xface_b0ff => Kind::Unsupported,
        _ if google_number(v).is_some() => Kind::Unsupported,
        _ => Kind::Unknown,
    }
}

/// Is `v` a reserved version of the form `0x?a?a?a?a` (RFC 9000 §15)?
pub const fn is_reserved(v: u32) -> bool {
    v & 0x0f0f_0f0f == 0x0a0a_0a0a
}

/// The parameters a client Initial of version `v` is opened with: those of `v` itself, or v1's
/// for a reserved version. A client sends a reserved version to make the server answer with
/// Version Negotiation (RFC 9000 §6.1); no document defines its packet protection, and clients
/// that send one (the quic-interop-runner's, quic-go's) protect it as v1, which is also how
/// Wireshark opens it. A reserved-version packet that does not open with v1 keys is still
/// legitimate (its content is arbitrary), so the caller does not hold that against the flow.
pub(crate) const fn keying(v: u32) -> Option<Protected> {
    match classify(v) {
        Kind::Protected(p) => Some(p),
        Kind::Reserved => match classify(V1) {
            Kind::Protected(p) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

/// Display name of a version: `"v1"`, `"v2"`, `"draft-29"`, `"mvfst-draft-22"`,
/// `"mvfst-draft-27"`, `"mvfst-experimental"`, `"Q046"`, `"T051"`, `"negotiation"`, else the
/// hex value (`"0xfaceb003"`, `"0x1a2a3a4a"`).
pub fn version_str(v: u32) -> String {
    match v {
        V1 => "v1".to_owned(),
        V2 => "v2".to_owned(),
        NEGOTIATION => "negotiation".to_owned(),
        MVFST_22 => "mvfst-draft-22".to_owned(),
        MVFST_27 => "mvfst-draft-27".to_owned(),
        MVFST_EXP => "mvfst-experimental".to_owned(),
        0xff00_0001..=0xff00_00ff => format!("draft-{}", v & 0xff),
        _ if google_number(v).is_some() => v.to_be_bytes().iter().map(|&b| char::from(b)).collect(),
        _ => format!("0x{v:08x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(version_str(V1), "v1");
        assert_eq!(version_str(V2), "v2");
        assert_eq!(version_str(0xff00_001d), "draft-29");
        assert_eq!(version_str(MVFST_22), "mvfst-draft-22");
        assert_eq!(version_str(Q046), "Q046");
        assert_eq!(version_str(T051), "T051");
        assert_eq!(version_str(0x1a2a_3a4a), "0x1a2a3a4a");
    }

    #[test]
    fn kinds() {
        let Kind::Protected(p) = classify(V2) else {
            panic!()
        };
        assert_eq!((p.initial_type, p.retry_type), (1, 0));
        let Kind::Protected(p) = classify(0xff00_0022) else {
            panic!()
        };
        assert_eq!(p.salt, &SALT_V1);
        let Kind::Protected(p) = classify(0xff00_001b) else {
            panic!()
        };
        assert_eq!(p.salt, &SALT_D23);
        let Kind::Protected(p) = classify(MVFST_22) else {
            panic!()
        };
        assert_eq!(p.salt, &SALT_D22);
        let Kind::Protected(p) = classify(Q050) else {
            panic!()
        };
        assert_eq!((p.frames, p.handshake), (Frames::Google, Handshake::Chlo));
        assert_eq!(classify(Q046), Kind::GooglePlain);
        assert_eq!(classify(u32::from_be_bytes(*b"Q043")), Kind::Unsupported);
        assert_eq!(classify(0xff00_0015), Kind::Unsupported);
        assert_eq!(classify(0x3a4a_5a6a), Kind::Reserved);
        assert_eq!(keying(0x1a2a_3a4a), keying(V1));
        assert_eq!(keying(V2).map(|p| p.initial_type), Some(1));
        assert_eq!(keying(Q046), None);
        assert!(is_reserved(0xfafa_fafa) && !is_reserved(0xfafa_fafb));
        assert_eq!(classify(0x1234_5678), Kind::Unknown);
        assert_eq!(google_version(u32::from_be_bytes(*b"Q025")), Some(25));
    }
}
