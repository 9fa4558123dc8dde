//! Packet sources: pcap/pcapng files and standard input ([`file`]), live interfaces (libpcap).
//!
//! This is one of the two stages allowed to touch the outside world (with `export`). It hands
//! the engine `(timestamp, frame bytes)` and says which link type the frames are; it never
//! interprets the bytes. Read errors are classified so that the caller can tell a truncated file
//! (keep what was read, warn) from a file that is not a capture at all (error, non-zero exit).
//!
//! Both kinds of source hand out batches of up to [`file::BATCH`] frames
//! ([`file::FileReader::next_batch`], [`Source::next_batch`]) so that the engine can look up a
//! batch of flows back to back (`engine::Engine::handle_batch`) on the live path too.

pub mod file;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use pcap::{Activated, Capture};

/// Re-exported from `decode`, where it lives so that the sans-IO core does not depend on this
/// module; the path `capture::Frame` keeps working for the drivers.
pub use crate::decode::Frame;
use crate::decode::LinkType;
use crate::time::Timestamp;

/// File extensions taken from a directory given as input.
pub const CAPTURE_EXTENSIONS: &[&str] = &["pcap", "pcapng", "cap"];

/// Whether `path` names a capture file: one of [`CAPTURE_EXTENSIONS`], or one of them gzipped
/// (`x.pcap.gz`, `x.pcapng.gz`).
pub fn is_capture_name(path: &std::path::Path) -> bool {
    let inner = if is_gzip_name(path) { path.file_stem().map(std::path::Path::new) } else { Some(path) };
    inner.and_then(|p| p.extension()).and_then(|x| x.to_str()).is_some_and(|x| CAPTURE_EXTENSIONS.contains(&x))
}

/// Whether `path` ends in `.gz` (read through a gzip decoder).
pub fn is_gzip_name(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|x| x == "gz")
}

/// Default snapshot length for live capture: whole frames (jumbo frames included).
pub const DEFAULT_SNAPLEN: i32 = 65_535;

/// Default kernel buffer for live capture (32 MiB absorbs bursts of a busy uplink for ~0.3 s at 1 Gbit/s).
pub const DEFAULT_BUFFER_BYTES: i32 = 32 << 20;

/// Read timeout of live captures, in milliseconds: how long a read may block before the caller
/// gets a chance to notice a stop request.
pub const LIVE_READ_TIMEOUT_MS: i32 = 250;

/// Frame bytes one live batch may hold. libpcap reuses a frame's memory on the next read, so
/// [`Source::next_batch`] copies each frame into a buffer of the source before reading the next.
///
/// Cost: one buffer of this size per open interface, allocated when the source opens and reused
/// by every batch; only the part frames reach is ever touched (about 48 KiB for [`file::BATCH`]
/// full-size Ethernet frames). A batch ends early, never truncating or dropping anything, when
/// one more frame of the full snapshot length might not fit: with the default snapshot length
/// that happens only to frames averaging over 30 KiB (GRO/TSO-merged frames). It must be at least
/// libpcap's largest snapshot length so that every batch has room for one frame.
pub const LIVE_BATCH_BYTES: usize = 1 << 20;

/// The largest frame libpcap hands out (its `MAXIMUM_SNAPLEN`, 256 KiB): a snapshot length that
/// is zero, negative or larger means this one.
const PCAP_MAX_SNAPLEN: usize = 262_144;

const _: () = assert!(LIVE_BATCH_BYTES >= PCAP_MAX_SNAPLEN);

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
    #[error("{0}: directory holds no .pcap, .pcapng or .cap files (gzipped or not)")]
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

/// The result of one [`Source::next`] read.
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

/// What a [`Source::next_batch`] read ended with; the frames of the batch are good in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveStatus {
    /// The batch is full (by count or by [`LIVE_BATCH_BYTES`]): more frames are probably ready, so
    /// read again soon.
    More,
    /// No more frames were ready. The next call first waits up to [`LIVE_READ_TIMEOUT_MS`] for
    /// one, so a caller polling a quiet link gets control back at that pace.
    Idle,
    /// The capture ended (a savefile; a live interface does not end).
    End,
    /// The source failed (interface gone), with libpcap's message: stop reading it.
    Failed(String),
}

/// Where one copied frame sits in [`Source`]'s batch buffer, with its header fields.
#[derive(Debug, Clone, Copy)]
struct Span {
    ts: Timestamp,
    start: usize,
    end: usize,
    wire_len: u32,
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
    /// Type-erased so that a unit test can read a savefile through the same code.
    cap: Capture<dyn Activated>,
    /// A duplicate of the live capture's descriptor, to wait on with poll(2) (`None` for a
    /// savefile, which never waits). A duplicate because only `Capture<Active>` lends its own.
    ready: Option<OwnedFd>,
    /// The last read found nothing: wait for the descriptor before the next one.
    wait_first: bool,
    /// Frame bytes of the current batch ([`LIVE_BATCH_BYTES`] reserved once, reused).
    buf: Vec<u8>,
    /// The frames of the current batch within `buf` (capacity [`file::BATCH`], reused).
    spans: Vec<Span>,
    /// Byte budget of a batch: [`LIVE_BATCH_BYTES`] (smaller in tests, to exercise the cut).
    batch_bytes: usize,
    /// The largest frame this capture can hand out: its snapshot length.
    max_frame: usize,
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
        let ready = cap.as_fd().try_clone_to_owned().map_err(|e| CaptureError::Open {
            source_name: opts.interface.clone(),
            reason: format!("cannot duplicate the capture descriptor: {e}"),
            hint: String::new(),
        })?;
        let max_frame = usize::try_from(opts.snaplen)
            .ok()
            .filter(|n| (1..=PCAP_MAX_SNAPLEN).contains(n))
            .unwrap_or(PCAP_MAX_SNAPLEN);
        Ok(Source::with_handle(cap.into(), Some(ready), opts.interface.clone(), max_frame))
    }

    /// Opens a savefile through libpcap, so that tests can drive the live read path.
    #[cfg(test)]
    fn open_offline(path: &std::path::Path) -> Result<Source, CaptureError> {
        let cap = Capture::from_file(path).map_err(|e| CaptureError::Open {
            source_name: path.display().to_string(),
            reason: pcap_message(&e),
            hint: String::new(),
        })?;
        Ok(Source::with_handle(cap.into(), None, path.display().to_string(), PCAP_MAX_SNAPLEN))
    }

    fn with_handle(cap: Capture<dyn Activated>, ready: Option<OwnedFd>, name: String, max_frame: usize) -> Source {
        let dlt = cap.get_datalink().0;
        Source {
            link: LinkType::from_dlt(dlt),
            cap,
            ready,
            wait_first: false,
            buf: Vec::with_capacity(LIVE_BATCH_BYTES),
            spans: Vec::with_capacity(file::BATCH),
            batch_bytes: LIVE_BATCH_BYTES,
            max_frame,
            name,
            dlt,
        }
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
    ///
    /// Prefer [`Source::next_batch`]: it lets the engine handle frames a batch at a time.
    // Not `Iterator::next`: the frame borrows the source until the next read, which an
    // `Iterator` cannot express.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<'_> {
        self.wait_if_idle();
        match self.cap.next_packet() {
            Ok(p) => Next::Frame(Frame {
                ts: ts_of(p.header),
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

    /// Reads up to [`file::BATCH`] frames, as many as are ready, copied out of libpcap.
    ///
    /// Returns as soon as no more frames are ready ([`LiveStatus::Idle`]); only the first read of
    /// a call that follows an idle one waits, up to [`LIVE_READ_TIMEOUT_MS`], so a quiet link
    /// still hands control back promptly. The frames borrow the source until the next call. The
    /// byte buffer is reused; the returned `Vec` is the one allocation of a non-empty batch (an
    /// empty batch allocates nothing), none with [`Source::next_batch_in`].
    pub fn next_batch(&mut self) -> (Vec<Frame<'_>>, LiveStatus) {
        self.next_batch_in(Vec::new())
    }

    /// [`Source::next_batch`] into `spare` (the vector of an earlier batch, through
    /// [`file::recycle`]): a loop that hands each batch's vector back allocates none per batch.
    pub fn next_batch_in(&mut self, spare: Vec<Frame<'static>>) -> (Vec<Frame<'_>>, LiveStatus) {
        self.buf.clear();
        self.spans.clear();
        let status = self.fill();
        let (buf, link, dlt) = (&self.buf, self.link, self.dlt);
        let mut frames = file::recycle(spare);
        frames.extend(
            self.spans.iter().map(|s| Frame { ts: s.ts, data: buf.get(s.start..s.end).unwrap_or_default(), wire_len: s.wire_len, link, dlt }),
        );
        (frames, status)
    }

    /// Copies ready frames into `buf` until the batch is full by count or bytes, or none is ready.
    fn fill(&mut self) -> LiveStatus {
        self.wait_if_idle();
        while self.spans.len() < file::BATCH {
            // Checked before the read: a frame that was read must be kept, and it can be as long
            // as the snapshot length.
            if self.buf.len() + self.max_frame > self.batch_bytes && !self.spans.is_empty() {
                break;
            }
            match self.cap.next_packet() {
                Ok(p) => {
                    let start = self.buf.len();
                    self.buf.extend_from_slice(p.data);
                    self.spans.push(Span { ts: ts_of(p.header), start, end: self.buf.len(), wire_len: p.header.len });
                }
                Err(pcap::Error::TimeoutExpired) => {
                    self.wait_first = true;
                    return LiveStatus::Idle;
                }
                Err(pcap::Error::NoMorePackets) => return LiveStatus::End,
                Err(e) => return LiveStatus::Failed(pcap_message(&e)),
            }
        }
        LiveStatus::More
    }

    /// After a read found nothing, waits up to [`LIVE_READ_TIMEOUT_MS`] for the descriptor to
    /// become readable (the capture is non-blocking; see [`Source::open_live`]).
    fn wait_if_idle(&mut self) {
        if std::mem::take(&mut self.wait_first) {
            if let Some(fd) = &self.ready {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                // A failed or interrupted wait only means the next read comes sooner.
                let _ = poll(&mut fds, PollTimeout::from(LIVE_READ_TIMEOUT_MS as u16));
            }
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
/// [`CAPTURE_EXTENSIONS`], gzipped or not, sorted by name, not recursive, so that a folder of scripts and
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
                    p.is_file() && is_capture_name(p)
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

/// A libpcap header's timestamp (microsecond precision, as every live capture here is opened).
// `timeval` fields are 32 bits wide on some targets: the casts are not redundant there.
#[allow(clippy::unnecessary_cast)]
fn ts_of(h: &pcap::PacketHeader) -> Timestamp {
    Timestamp::from_parts(h.ts.tv_sec as i64, h.ts.tv_usec as i64)
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

    #[test]
    fn gzipped_capture_names_are_captures() {
        use std::path::Path;
        for yes in ["a.pcap", "a.pcapng", "a.cap", "a.pcap.gz", "dir/a.pcapng.gz"] {
            assert!(is_capture_name(Path::new(yes)), "{yes}");
        }
        for no in ["a.gz", "a.tar.gz", "a.txt", "pcap", "a.pcap.bz2"] {
            assert!(!is_capture_name(Path::new(no)), "{no}");
        }
    }
    use std::path::Path;

    #[test]
    fn hints_name_the_missing_capability() {
        assert!(live_hint("socket: Operation not permitted").contains("CAP_NET_RAW"));
        assert!(live_hint("eth9: No such device exists").contains("ip link"));
        assert_eq!(live_hint("something else"), "");
    }

    /// What a read of a whole savefile gave: every frame's fields and how the read ended.
    type Frames = (Vec<(Timestamp, Vec<u8>, u32, Option<LinkType>, i32)>, String);

    fn fields(f: &Frame<'_>) -> (Timestamp, Vec<u8>, u32, Option<LinkType>, i32) {
        (f.ts, f.data.to_vec(), f.wire_len, f.link, f.dlt)
    }

    fn one_by_one(path: &Path) -> Frames {
        let mut s = Source::open_offline(path).unwrap();
        let mut got = Vec::new();
        loop {
            match s.next() {
                Next::Frame(f) => got.push(fields(&f)),
                Next::End => return (got, "end".into()),
                Next::Failed(m) => return (got, m),
                Next::Idle => panic!("{}: a savefile is never idle", path.display()),
            }
        }
    }

    /// Reads `path` in batches with a byte budget (`None`: the default one); also returns each
    /// batch's frame count and bytes.
    fn batched(path: &Path, budget: Option<usize>) -> (Frames, Vec<(usize, usize)>) {
        let mut s = Source::open_offline(path).unwrap();
        if let Some(b) = budget {
            (s.batch_bytes, s.max_frame) = (b, b);
        }
        let (mut got, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let (batch, st) = s.next_batch();
            sizes.push((batch.len(), batch.iter().map(|f| f.data.len()).sum()));
            got.extend(batch.iter().map(fields));
            drop(batch);
            // The byte buffer is reserved once and never grows: no allocation per batch for it.
            assert_eq!(s.buf.capacity(), LIVE_BATCH_BYTES);
            match st {
                LiveStatus::More => {}
                LiveStatus::End => return ((got, "end".into()), sizes),
                LiveStatus::Failed(m) => return ((got, m), sizes),
                LiveStatus::Idle => panic!("{}: a savefile is never idle", path.display()),
            }
        }
    }

    fn captures() -> Vec<PathBuf> {
        expand_inputs(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps")]).unwrap()
    }

    #[test]
    fn next_batch_yields_exactly_the_frames_of_next() {
        let (mut frames, mut long_files) = (0, 0);
        for path in captures() {
            let single = one_by_one(&path);
            let (batches, sizes) = batched(&path, None);
            assert_eq!(batches, single, "{}", path.display());
            assert!(sizes.iter().all(|(n, _)| *n <= file::BATCH), "{}", path.display());
            frames += single.0.len();
            long_files += usize::from(single.0.len() > file::BATCH);
        }
        // Enough fixtures span several batches for the comparison to mean something.
        assert!(frames > 1000 && long_files > 5, "{frames} frames, {long_files} files over a batch");
    }

    #[test]
    fn byte_budget_ends_batches_early_and_loses_nothing() {
        for path in captures() {
            let single = one_by_one(&path);
            let largest = single.0.iter().map(|f| f.1.len()).max().unwrap_or(0);
            // A budget of one largest frame: every batch must stop after its first frame.
            let ((got, end), sizes) = batched(&path, Some(largest.max(1)));
            assert_eq!((&got, &end), (&single.0, &single.1), "{}", path.display());
            assert!(sizes.iter().all(|(n, bytes)| *n <= 1 && *bytes <= largest.max(1)), "{}", path.display());
        }
    }

    /// The live path proper, on loopback: frames sent arrive in batches, and a quiet link hands
    /// control back within about [`LIVE_READ_TIMEOUT_MS`]. Skips where capturing is not allowed.
    #[test]
    fn live_loopback_batches_and_a_quiet_link_returns() {
        use std::time::{Duration, Instant};
        let opts = LiveOptions { interface: "lo".into(), snaplen: DEFAULT_SNAPLEN, buffer_bytes: 1 << 20, promiscuous: false };
        let mut src = match Source::open_live(&opts) {
            Ok(s) => s,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        src.set_filter(&format!("udp and src port {}", sock.local_addr().unwrap().port())).unwrap();
        const SENT: usize = 3 * file::BATCH;
        for i in 0..SENT {
            sock.send_to(&[i as u8; 100], "127.0.0.1:9").unwrap();
        }
        let (mut got, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(5));
        while got.len() < SENT && Instant::now() < deadline {
            let (batch, st) = src.next_batch();
            assert!(batch.len() <= file::BATCH && matches!(st, LiveStatus::More | LiveStatus::Idle), "{st:?}");
            got.extend(batch.iter().map(|f| f.data.last().copied()));
        }
        let want: Vec<Option<u8>> = (0..SENT).map(|i| Some(i as u8)).collect();
        assert_eq!(got, want, "every datagram, in order, with its last payload byte");
        for _ in 0..3 {
            let t = Instant::now();
            let (batch, st) = src.next_batch();
            assert!(batch.is_empty() && st == LiveStatus::Idle, "{} frames, {st:?}", batch.len());
            // A hang guard, not a speed target: a quiet link must hand control back at all
            // (each read waits LIVE_READ_TIMEOUT_MS at most; 40 of them is generous).
            assert!(t.elapsed() < Duration::from_millis(40 * LIVE_READ_TIMEOUT_MS as u64), "{:?}", t.elapsed());
        }
    }

    #[test]
    fn truncated_savefile_fails_after_its_good_frames() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/truncated.pcap");
        let ((got, end), _) = batched(&path, None);
        assert!(!got.is_empty() && end != "end", "{} frames, ended with {end:?}", got.len());
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
        assert!(matches!(expand_inputs(std::slice::from_ref(&dir)), Ok(v) if v == vec![f.clone()]));
        std::fs::remove_file(&f).unwrap();
        assert!(matches!(expand_inputs(std::slice::from_ref(&dir)), Err(CaptureError::EmptyDirectory(_))));
        std::fs::remove_dir(&dir).unwrap();
    }
}
