//! JA3: the salesforce TLS client fingerprint.
//!
//! The JA3 string is five comma-separated fields, each a '-'-joined list of decimal values:
//!
//! ```text
//! SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats
//! 769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0
//! ```
//!
//! `SSLVersion` is the hello's `legacy_version` (never `supported_versions`), lists keep wire
//! order, and GREASE values (RFC 8701) are removed from the cipher, extension and curve lists. An
//! absent list is an empty field. The fingerprint is the MD5 of that string in lowercase hex.
//!
//! JA3 predates TLS 1.3 and keeps wire order, so clients that shuffle their extensions (Chrome
//! since version 110) produce a new JA3 per connection; JA4 sorts and is the stable choice. JA3 is
//! kept for matching against existing intelligence.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::fmt::Display;

use md5::{Digest, Md5};

use crate::proto::tls::{is_grease, ClientHello};

/// The JA3 string (the MD5 input), e.g. `769,47-53-5-10,0-10-11,23-24-25,0`.
pub fn ja3_string(ch: &ClientHello) -> String {
    let mut s = ch.legacy_version.to_string();
    s.push(',');
    push_joined(&mut s, ch.ciphers.iter().filter(|&&c| !is_grease(c)));
    s.push(',');
    push_joined(&mut s, ch.extensions.iter().filter(|&&e| !is_grease(e)));
    s.push(',');
    push_joined(
        &mut s,
        ch.supported_groups.iter().filter(|&&g| !is_grease(g)),
    );
    s.push(',');
    push_joined(&mut s, ch.ec_point_formats.iter());
    s
}

/// The JA3 fingerprint: MD5 of [`ja3_string`], 32 lowercase hex characters.
pub fn ja3(ch: &ClientHello) -> String {
    format!("{:x}", Md5::digest(ja3_string(ch).as_bytes()))
}

/// Append `items` in decimal, '-' separated.
fn push_joined<T: Display>(s: &mut String, items: impl Iterator<Item = T>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            s.push('-');
        }
        s.push_str(&item.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the salesforce JA3 README: a TLS 1.0 hello with SNI, groups and formats.
    fn readme_hello() -> ClientHello {
        ClientHello {
            legacy_version: 769,
            ciphers: vec![47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
            extensions: vec![0, 10, 11],
            supported_groups: vec![23, 24, 25],
            ec_point_formats: vec![0],
            ..ClientHello::default()
        }
    }

    #[test]
    fn salesforce_readme_vector() {
        let ch = readme_hello();
        assert_eq!(
            ja3_string(&ch),
            "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
        );
        assert_eq!(ja3(&ch), "ada70206e40642a3e4461f35503241d5");
    }

    #[test]
    fn grease_removed_from_ciphers_extensions_and_curves() {
        let mut ch = readme_hello();
        ch.ciphers.insert(0, 0x0a0a);
        ch.extensions.insert(0, 0x1a1a);
        ch.extensions.push(0xfafa);
        ch.supported_groups.insert(0, 0x2a2a);
        assert_eq!(ja3(&ch), "ada70206e40642a3e4461f35503241d5");
    }

    #[test]
    fn version_is_legacy_version_not_supported_versions() {
        let mut ch = readme_hello();
        ch.supported_versions = vec![0x0304, 0x0303];
        assert!(ja3_string(&ch).starts_with("769,"));
    }

    #[test]
    fn absent_lists_are_empty_fields() {
        let ch = ClientHello {
            legacy_version: 0x0301,
            ciphers: vec![0x002f],
            ..ClientHello::default()
        };
        assert_eq!(ja3_string(&ch), "769,47,,,");
        assert_eq!(ja3(&ClientHello::default()).len(), 32);
        assert_eq!(ja3_string(&ClientHello::default()), "0,,,,");
    }
}
