//! TLS client fingerprints: pure functions of a [`ClientHello`](crate::proto::tls::ClientHello)
//! summary.
//!
//! - [`ja3`]: the salesforce JA3 string and its MD5 (BSD-3).
//! - [`ja4`]: FoxIO JA4, the TLS/QUIC/DTLS client fingerprint (BSD-3). Only JA4 itself is
//!   implemented here; JA4S, JA4H, JA4T, JA4X and the rest of JA4+ are under a different,
//!   non-open licence and deliberately absent.
//!
//! Both take the summary with GREASE values still in it and apply their own filtering rules
//! (RFC 8701), so one parse serves both. Both return owned lowercase ASCII strings: the form the
//! outside world compares them in.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod ja3;
pub mod ja4;

/// End-to-end vectors: captured bytes through record reassembly, the ClientHello parser and both
/// fingerprints, against values published by the JA3 and JA4 projects.
#[cfg(test)]
mod tests {
    use super::ja4::Protocol;
    use super::{ja3, ja4};
    use crate::proto::tls::samples;

    #[test]
    fn foxio_badcurveball() {
        let ch = samples::client_hello(samples::BADCURVEBALL);
        assert_eq!(
            ja4::ja4(&ch, Protocol::Tcp),
            "t13d1615h2_46e7e9700bed_45f260be83e2"
        );
        assert_eq!(ja3::ja3(&ch), "66918128f1b9b03303d77c6f2eefd128");
    }

    #[test]
    fn foxio_non_ascii_alpn_follows_the_specification() {
        let ch = samples::client_hello(samples::NON_ASCII_ALPN);
        assert_eq!(
            ja4::ja4(&ch, Protocol::Tcp),
            "t13d1516bd_8daaf6152771_e5627efa2ab1"
        );
        assert_eq!(ja3::ja3(&ch), "1c258ebef8eee2dfa3df6d8d07285af9");
    }

    #[test]
    fn salesforce_curl() {
        let ch = samples::client_hello(samples::CURL);
        assert_eq!(ja3::ja3(&ch), "2a26b1a62e40d25d4de3babc9d532f30");
        assert!(ja3::ja3_string(&ch).starts_with("771,52244-52243-52245-49200-"));
        assert_eq!(
            ja4::ja4(&ch, Protocol::Tcp),
            "t12d6707h2_2955a3196ffa_c83f907a73d3"
        );
    }
}
