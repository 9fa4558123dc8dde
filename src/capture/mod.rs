//! Packet sources: pcap/pcapng files and standard input ([`file`]), live interfaces (libpcap).
//!
//! This is one of the two stages allowed to touch the outside world (with `export`). It hands
//! the engine `(timestamp, frame bytes)` and says which link type the frames are; it never
//! interprets the bytes. Read errors are classified so that the caller can tell a truncated file
//! (keep what was read, warn) from a file that is not a capture at all (error, non-zero exit).

pub mod file;

use std::path::PathBuf;

use pcap::{Active, Capture};

/// Re-exported from `decode`, where it lives so that the sans-IO core does not depend on this
/// module; the path `capture::Frame` keeps working for the drivers.
pub use crate::decode::Frame;
use crate::decode::LinkType;
use crate::time::Timestamp;

/// File extensions taken from a directory given as input.
pub const CAPTURE_EXTENSIONS: &[&str] = &["pcap", "pcapng", "cap"];

/// Default snapshot length for live capture: whole frames (jumbo frames included).
pub const DEFAULT_SNAPLEN: i32 = 65_535;

/// Default kernel buffer for live capture (32 MiB absorbs bursts of a busy uplink for ~0.3 s at 1 Gbit/s).
pub const DEFAULT_BUFFER_BYTES: i32 = 32 << 20;

/// Read timeout of live captures, in milliseconds: how long a read may block before the caller
/// gets a chance to notice a stop request.
pub const LIVE_READ_TIMEOUT_MS: i32 = 250;

/// Errors that stop a source.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file or interface could not be opened.
    #[error("{source_name}: cannot open: {reason}{hint}")]
    Open {
        /// File path or interface name.
        source_name: String,
        /// What libpcap or the OS said.
        reason: String,
        /// Advice appended to the message (may be empty).
        hint: String,
    },
    /// A directory given as input holds no capture files.
    #[error("{0}: directory holds no .pcap, .pcapng or .cap files")]
    EmptyDirectory(String),
    /// The BPF filter did not compile.
    #[error("{source_name}: bad filter {filter:?}: {reason}")]
    Filter {
        /// File path or interface name.
        source_name: String,
        /// The filter expression.
        filter: String,
        /// What libpcap said.
        reason: String,
    },
    /// A file or directory could not be listed.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// Options of a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name (`any` captures all interfaces as Linux cooked frames).
    pub interface: String,
    /// Bytes kept of each frame.
    pub snaplen: i32,
    /// Kernel buffer size in bytes.
    pub buffer_bytes: i32,
    /// Promiscuous mode (needed on a mirror port or TAP).
    pub promiscuous: bool,
}

/// The result of one read.
#[derive(Debug)]
pub enum Next<'a> {
    /// A frame.
    Frame(Frame<'a>),
    /// A live capture's read timed out with no frame; read again.
    Idle,
    /// The capture ended.
    End,
    /// The source failed (interface gone).
    Failed(String),
}

/// Kernel/interface statistics of a live capture (libpcap `pcap_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Packets received by the filter.
    pub received: u64,
    /// Packets dropped because the kernel buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// An open live interface.
pub struct Source {
    cap: Capture<Active>,
    /// The last read found nothing: wait for the descriptor before the next one.
    wait_first: bool,
    /// File path or interface name, for messages and output.
    pub name: String,
    /// The libpcap data link type (DLT) number.
    pub dlt: i32,
    /// The link type, if the decoder supports it.
    pub link: Option<LinkType>,
}

impl Source {
    /// Opens a live interface.
    ///
    /// # Errors
    /// [`CaptureError::Open`] with the reason libpcap gives, and a hint when the cause is a
    /// missing privilege (CAP_NET_RAW) or an unknown interface.
    pub fn open_live(opts: &LiveOptions) -> Result<Source, CaptureError> {
        let open_err = |e: pcap::Error| {
            let reason = pcap_message(&e);
            let hint = live_hint(&reason);
            CaptureError::Open { source_name: opts.interface.clone(), reason, hint }
        };
        let cap = Capture::from_device(opts.interface.as_str())
            .map_err(open_err)?
            .snaplen(opts.snaplen)
            .buffer_size(opts.buffer_bytes)
            .promisc(opts.promiscuous)
            .timeout(LIVE_READ_TIMEOUT_MS)
            .open()
            .map_err(open_err)?
            // Non-blocking reads plus poll(2) with a timeout: on Linux, libpcap's TPACKET_V3
            // path waits without a timeout on a quiet link, and the sensor must still end idle
            // flows, publish its state and honour SIGTERM.
            .setnonblock()
            .map_err(open_err)?;
        let dlt = cap.get_datalink().0;
        Ok(Source { link: LinkType::from_dlt(dlt), cap, wait_first: false, name: opts.interface.clone(), dlt })
    }

    /// Applies a BPF filter (tcpdump syntax) in the kernel.
    ///
    /// # Errors
    /// [`CaptureError::Filter`] when the expression does not compile.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), CaptureError> {
        self.cap.filter(filter, true).map_err(|e| CaptureError::Filter {
            source_name: self.name.clone(),
            filter: filter.to_string(),
            reason: pcap_message(&e),
        })
    }

    /// Reads the next frame; [`Next::Idle`] when none arrived within [`LIVE_READ_TIMEOUT_MS`].
    pub fn next(&mut self) -> Next<'_> {
        if std::mem::take(&mut self.wait_first) {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            let mut fds = [PollFd::new(self.cap.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(LIVE_READ_TIMEOUT_MS as u16));
        }
        match self.cap.next_packet() {
            Ok(p) => Next::Frame(Frame {
                ts: Timestamp::from_parts(p.header.ts.tv_sec as i64, p.header.ts.tv_usec as i64),
                data: p.data,
                wire_len: p.header.len,
                link: self.link,
                dlt: self.dlt,
            }),
            Err(pcap::Error::TimeoutExpired) => {
                self.wait_first = true;
                Next::Idle
            }
            Err(pcap::Error::NoMorePackets) => Next::End,
            Err(e) => Next::Failed(pcap_message(&e)),
        }
    }

    /// Kernel and interface drop counters.
    pub fn stats(&mut self) -> Option<CaptureStats> {
        self.cap.stats().ok().map(|s| CaptureStats {
            received: s.received as u64,
            dropped: s.dropped as u64,
            if_dropped: s.if_dropped as u64,
        })
    }
}

/// A BPF filter applied in user space to frames read from files, compiled by libpcap once per
/// link type met (pcapng files may mix link types).
pub struct OfflineFilter {
    expr: String,
    programs: Vec<(i32, pcap::BpfProgram)>,
}

impl OfflineFilter {
    /// A filter for the tcpdump expression `expr`.
    pub fn new(expr: &str) -> Self {
        OfflineFilter { expr: expr.to_string(), programs: Vec::new() }
    }

    /// Does `frame` pass the filter?
    ///
    /// # Errors
    /// [`CaptureError::Filter`] when the expression does not compile for the frame's link type.
    pub fn matches(&mut self, source_name: &str, frame: &Frame<'_>) -> Result<bool, CaptureError> {
        let i = match self.programs.iter().position(|(d, _)| *d == frame.dlt) {
            Some(i) => i,
            None => {
                let err = |e: pcap::Error| CaptureError::Filter {
                    source_name: source_name.to_string(),
                    filter: self.expr.clone(),
                    reason: pcap_message(&e),
                };
                let dead = Capture::dead(pcap::Linktype(frame.dlt)).map_err(err)?;
                let prog = dead.compile(&self.expr, true).map_err(err)?;
                self.programs.push((frame.dlt, prog));
                self.programs.len() - 1
            }
        };
        Ok(self.programs[i].1.filter(frame.data))
    }
}

/// Expands the inputs: files stay as given, a directory becomes its capture files (by
/// [`CAPTURE_EXTENSIONS`], sorted by name, not recursive, so that a folder of scripts and
/// expected results beside the captures is fine), `-` is standard input.
///
/// # Errors
/// [`CaptureError::Io`] when a directory cannot be read, [`CaptureError::EmptyDirectory`] when it
/// holds no capture. Missing files are reported when opened, naming the file.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, CaptureError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let io = |e: std::io::Error| CaptureError::Io {
                path: input.display().to_string(),
                reason: e.to_string(),
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|x| x.to_str())
                            .is_some_and(|x| CAPTURE_EXTENSIONS.contains(&x))
                })
                .collect();
            if files.is_empty() {
                return Err(CaptureError::EmptyDirectory(input.display().to_string()));
            }
            files.sort();
            out.extend(files);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Advice for the common reasons an interface cannot be opened.
fn live_hint(reason: &str) -> String {
    let r = reason.to_ascii_lowercase();
    if r.contains("permission") || r.contains("not permitted") {
        " (capturing needs CAP_NET_RAW: run as root, or grant it with \
         `setcap cap_net_raw,cap_net_admin=eip` on the binary)"
            .to_string()
    } else if r.contains("no such device") || r.contains("doesn't exist") {
        " (no such interface: `ip link` lists them; `any` captures all)".to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn hints_name_the_missing_capability() {
        assert!(live_hint("socket: Operation not permitted").contains("CAP_NET_RAW"));
        assert!(live_hint("eth9: No such device exists").contains("ip link"));
        assert_eq!(live_hint("something else"), "");
    }

    #[test]
    fn not_a_capture_is_an_open_error() {
        let dir = std::env::temp_dir().join(format!("shadowtap-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("text.pcap");
        std::fs::write(&f, b"this is not a capture file at all\n").unwrap();
        assert!(matches!(file::FileReader::open(&f), Err(CaptureError::Open { .. })));
        let missing = file::FileReader::open(Path::new("/nonexistent/x.pcap")).err().unwrap().to_string();
        assert!(missing.starts_with("/nonexistent/x.pcap: cannot open"), "{missing}");
        assert!(matches!(expand_inputs(&[dir.clone()]), Ok(v) if v == vec![f.clone()]));
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(expand_inputs(&[dir.clone()]), Err(CaptureError::EmptyDirectory(_))));
        std::fs::remove_dir(&dir).unwrap();
    }
}
