//! Output of flow records: JSON lines (a contract other tools parse) and a human table.
//!
//! Raw bytes from the wire (SNI, ALPN) stay bytes in the model; they become text only here,
//! with invalid UTF-8 escaped as `\xNN` rather than silently replaced.

pub mod events;
pub mod jsonl;
pub mod metrics;
pub mod table;

use std::fmt::Write as _;

/// Renders wire bytes as text: valid UTF-8 as is, other bytes as `\xNN`.
pub fn bytes_to_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(b.len() * 2);
            for chunk in b.utf8_chunks() {
                out.push_str(chunk.valid());
                for byte in chunk.invalid() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_escaped_not_replaced() {
        assert_eq!(bytes_to_text(b"web.whatsapp.com"), "web.whatsapp.com");
        assert_eq!(bytes_to_text(b"a\xba\xadz"), "a\\xba\\xadz");
    }
}
