//! Reading a capture file: the reused 1 MiB read buffer of `capture::file` against a memory map
//! of the whole file (memmap2), each walking every record header and touching its first and
//! last byte as a parser would. The issue of throughput asked to measure both and keep the
//! faster; a map needs `unsafe` (the file may change under it), so it has to earn its place.
//!
//! Usage: `cargo bench --bench read_vs_mmap -- FILE [RUNS]` (a classic little-endian pcap, in the
//! page cache: `benches/whole_process.sh` makes `bench-out/big.pcap`). Without a file it walks a
//! small synthetic capture once, so `cargo test --all-targets` keeps it compiling and running.
//! Prints the median of each and the ratio; asserts nothing.

use std::io::{Read, Write};
use std::time::Instant;

/// Walks records from `off`; returns where the first incomplete record starts.
fn walk(buf: &[u8], mut off: usize, n: &mut u64, sum: &mut u64) -> usize {
    while let Some(h) = buf.get(off..off + 16) {
        let caplen = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let Some(data) = buf.get(off + 16..off + 16 + caplen) else { break };
        *sum = sum.wrapping_add(u64::from(data.first().copied().unwrap_or(0)) + u64::from(data.last().copied().unwrap_or(0)));
        *n += 1;
        off += 16 + caplen;
    }
    off
}

fn by_read(path: &str) -> (u64, u64) {
    let mut f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end, mut first) = (0usize, 0usize, true);
    let (mut n, mut sum) = (0, 0);
    loop {
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let r = f.read(&mut buf[end..]).expect("read");
        if r == 0 {
            return (n, sum);
        }
        end += r;
        if first {
            start = 24;
            first = false;
        }
        start = walk(&buf[..end], start, &mut n, &mut sum);
    }
}

fn by_map(path: &str) -> (u64, u64) {
    let f = std::fs::File::open(path).expect("open");
    // SAFETY: a benchmark over a file nobody writes while it runs; the sensor itself maps nothing.
    let m = unsafe { memmap2::Mmap::map(&f) }.expect("map");
    let (mut n, mut sum) = (0, 0);
    walk(&m, 24, &mut n, &mut sum);
    (n, sum)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let (path, runs, _tmp) = match args.first() {
        Some(p) => (p.clone(), args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5), None),
        None => {
            let dir = std::env::temp_dir().join(format!("read-vs-mmap-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("small.pcap");
            let mut f = std::fs::File::create(&path).expect("create");
            f.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]).expect("write");
            for i in 0..10_000u32 {
                let len = 60 + i % 1400;
                let mut rec = Vec::with_capacity(16 + len as usize);
                for v in [i, 0, len, len] {
                    rec.extend_from_slice(&v.to_le_bytes());
                }
                rec.resize(16 + len as usize, i as u8);
                f.write_all(&rec).expect("write");
            }
            (path.to_string_lossy().into_owned(), 1, Some(dir))
        }
    };
    let (mut read, mut map) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let a = by_read(&path);
        read.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let b = by_map(&path);
        map.push(t.elapsed().as_secs_f64());
        assert_eq!(a, b, "both walks see the same records");
    }
    let (r, m) = (median(read), median(map));
    println!("read into a reused 1 MiB buffer: {r:.3} s; memory map: {m:.3} s; map / read = {:.2}", m / r);
    if let Some(dir) = _tmp {
        let _ = std::fs::remove_dir_all(dir);
    }
}
