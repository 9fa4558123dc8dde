//! [`Frame`]: what a packet source hands to the sans-IO core.
//!
//! It lives here, beside [`LinkType`], rather than in `capture`, so that `decode`, `engine` and
//! everything between them depend only on this plain struct and never on the libpcap-linking
//! source module. `capture` produces frames and re-exports the type as `capture::Frame`.

use super::LinkType;
use crate::time::Timestamp;

/// One captured frame: the bytes, the timestamp that drives time in the pipeline, and the
/// link type that says how to decode them.
///
/// It borrows its source's buffer (a file reader's read buffer, a live source's batch buffer)
/// and is valid until the source's next read.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// Length of the frame on the wire.
    pub wire_len: u32,
    /// Link type of the frame, if the decoder supports it.
    pub link: Option<LinkType>,
    /// libpcap data link type number of the frame.
    pub dlt: i32,
}
