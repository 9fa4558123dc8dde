//! Capture files (pcap and pcapng, gzipped or not) read in large blocks and parsed in place.
//!
//! libpcap's offline reader copies every record through stdio (`fread` per record); on the
//! reference workload that alone cost more than the whole rest of the sensor. This reader fills
//! a [`READ_CHUNK`] buffer with plain `read` calls, lets `pcap-parser` (rusticata) parse the
//! records in place, and hands out batches of frames that borrow the buffer, so the engine can
//! look up a batch of flows before touching any of them (see `engine::Engine::handle_batch`).
//!
//! The contract with the caller: a file that is not a capture fails at [`FileReader::open`]; a
//! record cut short by the end of the file is [`Next::Truncated`] (everything before it was
//! delivered); a record header that cannot be right (a length over [`MAX_RECORD_LEN`], a
//! malformed pcapng block) is [`Next::Failed`].

use std::io::Read;

use pcap_parser::nom;
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapError, PcapHeader};

use super::CaptureError;
use crate::decode::{Frame, LinkType};
use crate::time::Timestamp;

/// Bytes read per `read` call and the size of the parse buffer (1 MiB).
pub const READ_CHUNK: usize = 1 << 20;

/// Largest record accepted (libpcap's own limit for snapshot lengths is 256 KiB; pcapng blocks
/// carry a little more). A larger length is a corrupt file, not a packet.
pub const MAX_RECORD_LEN: usize = 256 * 1024 + 4096;

/// Length of a classic pcap file header.
const PCAP_HEADER_LEN: usize = 24;

/// Frames handed out per batch.
pub const BATCH: usize = 32;

/// Interfaces remembered per pcapng section (a hostile file could declare millions).
pub const MAX_INTERFACES: usize = 256;

/// What a batch read ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// More frames may follow.
    More,
    /// The file ended cleanly.
    End,
    /// The file ends in the middle of a record.
    Truncated(String),
    /// The file is corrupt from here on.
    Failed(String),
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Option<LinkType>,
    dlt: i32,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

#[derive(Debug)]
enum Format {
    Pcap { big_endian: bool, nanos: bool, link: Option<LinkType>, dlt: i32 },
    PcapNg { big_endian: bool, interfaces: Vec<Interface> },
}

/// A pcap or pcapng file (or standard input) being read.
pub struct FileReader {
    src: Box<dyn Read>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    need_fill: bool,
    format: Format,
    /// Data link type of the first interface (for messages), libpcap numbering.
    pub dlt: i32,
    /// Link types met that the decoder does not support (DLT numbers), for a warning.
    pub unsupported_dlts: Vec<i32>,
}

/// A batch's vector emptied, to read the next batch into ([`FileReader::next_batch_in`]): it
/// keeps its allocation, because collecting a vector's own iterator into a vector of an element
/// of the same size and alignment reuses its buffer (the standard library's in-place
/// collection; `tests/allocations.rs` checks that reading a capture this way allocates nothing
/// per batch). The closure never runs: the vector is empty.
pub fn recycle<'b>(mut v: Vec<Frame<'_>>) -> Vec<Frame<'b>> {
    v.clear();
    v.into_iter().map(|f| Frame { data: &[], ..f }).collect()
}

fn io_err(name: &str, e: std::io::Error) -> CaptureError {
    CaptureError::Open { source_name: name.to_string(), reason: e.to_string(), hint: String::new() }
}

impl FileReader {
    /// Opens `path` (`-` is standard input; a name ending in `.gz` is decompressed as it is
    /// read) and reads its file header.
    ///
    /// # Errors
    /// [`CaptureError::Open`] naming the file when it cannot be read or is neither pcap nor pcapng.
    pub fn open(path: &std::path::Path) -> Result<FileReader, CaptureError> {
        let name = path.display().to_string();
        let src: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            let f = std::fs::File::open(path).map_err(|e| io_err(&name, e))?;
            if super::is_gzip_name(path) {
                // Multi-member, like gzip(1) reads a concatenation of gzipped files.
                Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)))
            } else {
                Box::new(f)
            }
        };
        Self::from_reader(src, &name)
    }

    /// Reads a capture from any byte source.
    ///
    /// # Errors
    /// As [`FileReader::open`].
    pub fn from_reader(src: Box<dyn Read>, name: &str) -> Result<FileReader, CaptureError> {
        let mut r = FileReader {
            src,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            need_fill: false,
            format: Format::Pcap { big_endian: false, nanos: false, link: None, dlt: -1 },
            dlt: -1,
            unsupported_dlts: Vec::new(),
        };
        // A pipe may hand the header over in pieces: read until it is whole or the input ends.
        while r.end - r.start < PCAP_HEADER_LEN && !r.eof {
            r.fill().map_err(|e| io_err(name, e))?;
        }
        let not_capture = |why: &str| CaptureError::Open {
            source_name: name.to_string(),
            reason: format!("not a pcap or pcapng file ({why})"),
            hint: String::new(),
        };
        let head = &r.buf[r.start..r.end];
        if head.len() < 4 {
            return Err(not_capture("too short"));
        }
        if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            r.format = Format::PcapNg { big_endian: false, interfaces: Vec::new() };
            return Ok(r);
        }
        match pcap_parser::parse_pcap_header(head) {
            Ok((rest, h)) => {
                let used = head.len() - rest.len();
                r.set_pcap_header(&h);
                r.start += used;
                if h.is_modified_format() {
                    return Err(not_capture("the modified pcap format of old Red Hat tcpdump is not supported"));
                }
                Ok(r)
            }
            Err(_) => Err(not_capture("unknown magic number")),
        }
    }

    fn set_pcap_header(&mut self, h: &PcapHeader) {
        let dlt = h.network.0;
        self.dlt = dlt;
        let link = LinkType::from_dlt(dlt);
        if link.is_none() {
            self.unsupported_dlts.push(dlt);
        }
        self.format = Format::Pcap { big_endian: h.is_bigendian(), nanos: h.is_nanosecond_precision(), link, dlt };
    }

    /// Moves unread bytes to the front and reads once (a regular file fills the buffer in one
    /// call; a pipe returns what is there, so a live `tcpdump -w - |` stream is not held back).
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() && !self.eof {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads up to [`BATCH`] frames, and says whether more may follow.
    ///
    /// The frames borrow the reader's buffer until the next call.
    pub fn next_batch(&mut self) -> (Vec<Frame<'_>>, Next) {
        self.next_batch_in(Vec::new())
    }

    /// [`FileReader::next_batch`] into `spare` (the vector of an earlier batch, through
    /// [`recycle`]): a run that hands each batch's vector back allocates none per batch.
    pub fn next_batch_in(&mut self, spare: Vec<Frame<'static>>) -> (Vec<Frame<'_>>, Next) {
        let mut out = recycle(spare);
        out.reserve(BATCH);
        // Refill only when the next record was found incomplete (or nothing is buffered): the
        // bytes moved to the front are then less than one record.
        if (self.need_fill || self.start == self.end) && !self.eof {
            if let Err(e) = self.fill() {
                return (out, Next::Failed(format!("read error: {e}")));
            }
        }
        self.need_fill = false;
        let Self { buf, start, end, eof, format, unsupported_dlts, need_fill, .. } = self;
        let mut pos = *start;
        let mut status = Next::More;
        while out.len() < BATCH {
            let input = &buf[pos..*end];
            if input.is_empty() {
                if *eof {
                    status = Next::End;
                }
                break;
            }
            match parse_one(format, input, unsupported_dlts) {
                Parsed::Frame(frame, used) => {
                    out.push(frame);
                    pos += used;
                }
                Parsed::Skip(used) => pos += used,
                Parsed::Incomplete => {
                    if *eof {
                        status = Next::Truncated(format!(
                            "the last record is cut short: {} bytes left at the end of the file",
                            input.len()
                        ));
                    } else if input.len() >= MAX_RECORD_LEN {
                        status = Next::Failed(format!("record longer than {MAX_RECORD_LEN} bytes"));
                    } else {
                        *need_fill = true;
                    }
                    break;
                }
                Parsed::Corrupt(why) => {
                    status = Next::Failed(why);
                    break;
                }
            }
        }
        *start = pos;
        (out, status)
    }
}

enum Parsed<'a> {
    Frame(Frame<'a>, usize),
    Skip(usize),
    Incomplete,
    Corrupt(String),
}

fn parse_one<'a>(format: &mut Format, input: &'a [u8], unsupported: &mut Vec<i32>) -> Parsed<'a> {
    match format {
        Format::Pcap { big_endian, nanos, link, dlt } => {
            let dlt = *dlt;
            if input.len() >= 16 {
                let caplen_bytes = [input[8], input[9], input[10], input[11]];
                let caplen = if *big_endian {
                    u32::from_be_bytes(caplen_bytes)
                } else {
                    u32::from_le_bytes(caplen_bytes)
                } as usize;
                if caplen > MAX_RECORD_LEN {
                    return Parsed::Corrupt(format!("record header claims {caplen} captured bytes"));
                }
            }
            let r = if *big_endian {
                pcap_parser::pcap::parse_pcap_frame_be(input)
            } else {
                pcap_parser::pcap::parse_pcap_frame(input)
            };
            match r {
                Ok((rest, b)) => {
                    let frac = b.ts_usec as i64;
                    let micros = if *nanos { frac / 1000 } else { frac };
                    let frame = Frame {
                        ts: Timestamp::from_parts(b.ts_sec as i64, micros),
                        data: b.data,
                        wire_len: b.origlen,
                        link: *link,
                        dlt,
                    };
                    Parsed::Frame(frame, input.len() - rest.len())
                }
                Err(nom::Err::Incomplete(_)) => Parsed::Incomplete,
                Err(_) => Parsed::Corrupt("malformed pcap record".into()),
            }
        }
        Format::PcapNg { big_endian, interfaces } => {
            // The block length is checked here, before pcap-parser sees the block, as soon as its
            // bytes are in: pcap-parser 0.17 subtracts 12 from a length it has only checked against
            // its smaller block header size (an overflow, found by fuzzing, when fewer than 12
            // bytes of a block with a length below 12 were buffered and this check used to wait).
            let Some(&[t0, t1, t2, t3, l0, l1, l2, l3]) = input.first_chunk::<8>() else {
                return Parsed::Incomplete;
            };
            let block_type = u32::from_le_bytes([t0, t1, t2, t3]);
            // A section header announces its own byte order; other blocks follow the section's.
            let be = if block_type == 0x0a0d_0d0a {
                match input.get(8..12) {
                    Some(magic) => magic == [0x1a, 0x2b, 0x3c, 0x4d],
                    None => return Parsed::Incomplete,
                }
            } else {
                *big_endian
            };
            let len_bytes = [l0, l1, l2, l3];
            let len = if be { u32::from_be_bytes(len_bytes) } else { u32::from_le_bytes(len_bytes) } as usize;
            if !(12..=MAX_RECORD_LEN).contains(&len) {
                return Parsed::Corrupt(format!("pcapng block claims {len} bytes"));
            }
            *big_endian = be;
            let r = if *big_endian {
                pcap_parser::pcapng::parse_block_be(input)
            } else {
                pcap_parser::pcapng::parse_block_le(input)
            };
            let (rest, block) = match r {
                Ok(x) => x,
                Err(nom::Err::Incomplete(_)) => return Parsed::Incomplete,
                Err(e) => return Parsed::Corrupt(format!("malformed pcapng block: {}", describe(&e))),
            };
            let used = input.len() - rest.len();
            match block {
                Block::SectionHeader(shb) => {
                    *big_endian = shb.big_endian();
                    interfaces.clear();
                    Parsed::Skip(used)
                }
                Block::InterfaceDescription(idb) => {
                    if interfaces.len() < MAX_INTERFACES {
                        let dlt = idb.linktype.0;
                        let link = LinkType::from_dlt(dlt);
                        if link.is_none() && !unsupported.contains(&dlt) {
                            unsupported.push(dlt);
                        }
                        interfaces.push(Interface {
                            link,
                            dlt,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset_secs: idb.ts_offset(),
                        });
                    }
                    Parsed::Skip(used)
                }
                Block::EnhancedPacket(epb) => {
                    let Some(iface) = interfaces.get(epb.if_id as usize) else {
                        return Parsed::Corrupt(format!("packet on undeclared interface {}", epb.if_id));
                    };
                    let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                    let secs = (raw / iface.resolution) as i64;
                    let micros = ((raw % iface.resolution) as u128 * 1_000_000 / iface.resolution as u128) as i64;
                    let frame = Frame {
                        ts: Timestamp::from_parts(secs.saturating_add(iface.offset_secs), micros),
                        data: &epb.data[..(epb.caplen as usize).min(epb.data.len())],
                        wire_len: epb.origlen,
                        link: iface.link,
                        dlt: iface.dlt,
                    };
                    Parsed::Frame(frame, used)
                }
                Block::SimplePacket(spb) => {
                    let Some(iface) = interfaces.first() else {
                        return Parsed::Corrupt("simple packet before any interface".into());
                    };
                    let frame =
                        Frame { ts: Timestamp(0), data: spb.data, wire_len: spb.origlen, link: iface.link, dlt: iface.dlt };
                    Parsed::Frame(frame, used)
                }
                _ => Parsed::Skip(used),
            }
        }
    }
}

fn describe(e: &nom::Err<PcapError<&[u8]>>) -> String {
    match e {
        nom::Err::Error(p) | nom::Err::Failure(p) => match p {
            PcapError::NomError(_, kind) => format!("{kind:?}"),
            other => format!("{other:?}").chars().take(80).collect(),
        },
        nom::Err::Incomplete(_) => "incomplete".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_file(records: &[(&[u8], u32)]) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
        for (i, (data, origlen)) in records.iter().enumerate() {
            f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            f.extend_from_slice(&7u32.to_le_bytes());
            f.extend_from_slice(&(data.len() as u32).to_le_bytes());
            f.extend_from_slice(&origlen.to_le_bytes());
            f.extend_from_slice(data);
        }
        f
    }

    fn read_all(bytes: Vec<u8>) -> (Vec<(Timestamp, Vec<u8>, u32)>, Next) {
        let mut r = FileReader::from_reader(Box::new(std::io::Cursor::new(bytes)), "t").unwrap();
        let mut got = Vec::new();
        loop {
            let (batch, st) = r.next_batch();
            got.extend(batch.iter().map(|f| (f.ts, f.data.to_vec(), f.wire_len)));
            if st != Next::More {
                return (got, st);
            }
        }
    }

    #[test]
    fn reads_classic_pcap() {
        let big = vec![7u8; 3000];
        let (got, st) = read_all(pcap_file(&[(b"abc", 60), (&big, 3000)]));
        assert_eq!(st, Next::End);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Timestamp::from_parts(1_700_000_000, 7), b"abc".to_vec(), 60));
        assert_eq!(got[1].1.len(), 3000);
    }

    #[test]
    fn many_records_cross_buffer_refills() {
        let rec = vec![1u8; 1500];
        let records: Vec<(&[u8], u32)> = (0..2000).map(|_| (&rec[..], 1500)).collect();
        let (got, st) = read_all(pcap_file(&records));
        assert_eq!(st, Next::End);
        assert_eq!(got.len(), 2000);
    }

    #[test]
    fn truncated_file_yields_what_it_holds() {
        let mut f = pcap_file(&[(b"first", 5), (b"second-record", 13)]);
        f.truncate(f.len() - 4);
        let (got, st) = read_all(f);
        assert_eq!(got.len(), 1);
        assert!(matches!(st, Next::Truncated(_)), "{st:?}");
    }

    #[test]
    fn huge_caplen_is_corrupt_not_a_hang() {
        let mut f = pcap_file(&[(b"ok", 2)]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let (got, st) = read_all(f);
        assert_eq!(got.len(), 1);
        assert!(matches!(st, Next::Failed(_)), "{st:?}");
    }

    #[test]
    fn not_a_capture() {
        let r = FileReader::from_reader(Box::new(std::io::Cursor::new(b"hello world, not pcap".to_vec())), "x.pcap");
        let msg = r.err().unwrap().to_string();
        assert!(msg.contains("x.pcap") && msg.contains("not a pcap"), "{msg}");
        assert!(FileReader::from_reader(Box::new(std::io::Cursor::new(vec![])), "e").is_err());
    }

    #[test]
    fn nanosecond_and_big_endian_headers() {
        let mut f = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1];
        f.extend_from_slice(&10u32.to_be_bytes());
        f.extend_from_slice(&123_456_789u32.to_be_bytes());
        f.extend_from_slice(&2u32.to_be_bytes());
        f.extend_from_slice(&2u32.to_be_bytes());
        f.extend_from_slice(b"hi");
        let (got, st) = read_all(f);
        assert_eq!(st, Next::End);
        assert_eq!(got[0].0, Timestamp::from_parts(10, 123_456));
    }

    /// Fuzzing (target `pcap_reader`): a big-endian section, then a Process Information block
    /// header claiming 10 bytes as the last 10 bytes of the file. pcap-parser computed `10 - 12`
    /// (an overflow panic in debug builds); the length is now refused first.
    #[test]
    fn pcapng_block_shorter_than_its_header_at_the_end() {
        let mut f = vec![0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x1a, 0x2b, 0x3c, 0x4d, 0, 1, 0, 0];
        f.extend_from_slice(&[0xff; 8]);
        f.extend_from_slice(&28u32.to_be_bytes());
        f.extend_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 10, 0, 0]);
        let (got, st) = read_all(f);
        assert!(got.is_empty());
        assert_eq!(st, Next::Failed("pcapng block claims 10 bytes".into()));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let base = pcap_file(&[(b"abcdefgh", 8), (b"ijkl", 4)]);
        let mut rng = crate::testutil::XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut f = base.clone();
            rng.mutate(&mut f, 4);
            let cut = (rng.next() >> 40) as usize % (f.len() + 1);
            f.truncate(cut);
            if let Ok(mut r) = FileReader::from_reader(Box::new(std::io::Cursor::new(f)), "fuzz") {
                for _ in 0..100 {
                    if r.next_batch().1 != Next::More {
                        break;
                    }
                }
            }
        }
    }
}
