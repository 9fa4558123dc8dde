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

use std::fmt::{Display, Write};

use md5::{Digest, Md5};

use crate::proto::tls::{is_grease, ClientHello};

/// The JA3 string (the MD5 input), e.g. `769,47-53-5-10,0-10-11,23-24-25,0`.
pub fn ja3_string(ch: &ClientHello) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = write_ja3(&mut s, ch);
    s
}

/// The JA3 fingerprint: MD5 of [`ja3_string`], 32 lowercase hex characters.
///
/// The string is fed to the hash as it is written, never built: one allocation (the result)
/// per hello instead of one per listed number.
pub fn ja3(ch: &ClientHello) -> String {
    let mut h = Hashing(Md5::new());
    // Writing into a hash cannot fail.
    let _ = write_ja3(&mut h, ch);
    let mut hex = String::with_capacity(32);
    for byte in h.0.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A `fmt::Write` that hashes what is written.
struct Hashing(Md5);

impl std::fmt::Write for Hashing {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// Writes the JA3 string to `w`.
fn write_ja3(w: &mut impl std::fmt::Write, ch: &ClientHello) -> std::fmt::Result {
    write!(w, "{},", ch.legacy_version)?;
    write_joined(w, ch.ciphers.iter().filter(|&&c| !is_grease(c)))?;
    w.write_char(',')?;
    write_joined(w, ch.extensions.iter().filter(|&&e| !is_grease(e)))?;
    w.write_char(',')?;
    write_joined(w, ch.supported_groups.iter().filter(|&&g| !is_grease(g)))?;
    w.write_char(',')?;
    write_joined(w, ch.ec_point_formats.iter())
}

/// Writes `items` in decimal, '-' separated.
fn write_joined<T: Display>(w: &mut impl std::fmt::Write, items: impl Iterator<Item = T>) -> std::fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            w.write_char('-')?;
        }
        write!(w, "{item}")?;
    }
    Ok(())
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
        assert_eq!(ja3(&ch), format!("{:x}", Md5::digest(ja3_string(&ch).as_bytes())), "hashed as written = hash of the string");
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
