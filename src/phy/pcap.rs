//! Packet captures: a device wrapper that records traffic, a standalone
//! classic-pcap [`Writer`], and a [`Reader`] for classic pcap and pcapng.
//!
//! [`PcapWriter`] records both directions of any [`Device`] to a classic pcap
//! file (microsecond timestamps, version 2.4, snaplen 262144) with link type
//! 1 (Ethernet) or 101 (raw IP) according to the device's medium. Timestamps
//! are the wall clock at construction plus the offset of each `now` from the
//! first `now` the wrapper saw, so a virtual-time run still yields a capture
//! with sensible, reproducible spacing.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Checksum, Device, DeviceCaps, FrameBatch, FrameMeta, Medium};
use crate::time::Instant;

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_RAW: bare IPv4/IPv6 packets.
pub const LINKTYPE_RAW: u16 = 101;
/// Snapshot length written to classic pcap headers.
pub const SNAPLEN: u32 = 262_144;
/// Largest packet the reader accepts (guards against absurd lengths in
/// corrupt files).
const MAX_RECORD: usize = 64 << 20;

/// How often a [`PcapWriter`] that recorded something flushes its writer
/// (measured in the `now` it is given): a process that dies without
/// dropping it (killed, or `exit` with the device still owned by another
/// thread) loses at most this much of the capture's end.
pub const FLUSH_EVERY: crate::time::Duration = crate::time::Duration::from_millis(200);

/// The pcap link type for a medium.
pub fn linktype_for(medium: Medium) -> u16 {
    match medium {
        Medium::Ethernet => LINKTYPE_ETHERNET,
        Medium::Ip => LINKTYPE_RAW,
    }
}

/// Writes classic pcap (magic 0xa1b2c3d4, microseconds, version 2.4) in the
/// host's byte order.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    /// One record (header and data), written with one call.
    rec: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the file header for `linktype` and returns the writer.
    pub fn new(mut out: W, linktype: u16) -> io::Result<Writer<W>> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
        h[4..6].copy_from_slice(&2u16.to_ne_bytes());
        h[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone = 0, sigfigs = 0
        h[16..20].copy_from_slice(&SNAPLEN.to_ne_bytes());
        h[20..24].copy_from_slice(&u32::from(linktype).to_ne_bytes());
        out.write_all(&h)?;
        Ok(Writer {
            out,
            rec: Vec::new(),
        })
    }

    /// Writes one packet with a timestamp in microseconds since the Unix
    /// epoch. Packets longer than the snaplen are truncated in the file
    /// (the original length is kept in the record).
    ///
    /// The record goes to the underlying writer in one `write_all`, so a
    /// `BufWriter` (which writes its buffer out before a record that does
    /// not fit) leaves the file ending on a record boundary: a process
    /// killed between two writes leaves a capture that reads to its end,
    /// not one "cut short" in the middle of a record.
    pub fn write_packet(&mut self, timestamp_micros: u64, data: &[u8]) -> io::Result<()> {
        let incl = data.len().min(SNAPLEN as usize);
        let mut h = [0u8; 16];
        let secs = u32::try_from(timestamp_micros / 1_000_000).unwrap_or(u32::MAX);
        h[0..4].copy_from_slice(&secs.to_ne_bytes());
        h[4..8].copy_from_slice(&((timestamp_micros % 1_000_000) as u32).to_ne_bytes());
        h[8..12].copy_from_slice(&(incl as u32).to_ne_bytes());
        let orig = u32::try_from(data.len()).unwrap_or(u32::MAX);
        h[12..16].copy_from_slice(&orig.to_ne_bytes());
        self.rec.clear();
        self.rec.extend_from_slice(&h);
        self.rec.extend_from_slice(&data[..incl]);
        self.out.write_all(&self.rec)
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Unwraps the underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A [`Device`] wrapper that records every frame received and sent to a
/// classic pcap file. See the [module documentation](self).
///
/// Only frames the inner device actually accepted are recorded on send.
/// Write errors to the capture are remembered and reported by
/// [`PcapWriter::flush`] (they never disturb the traffic).
pub struct PcapWriter<D: Device, W: Write = BufWriter<File>> {
    inner: D,
    writer: Writer<W>,
    wall_start_micros: u64,
    first_now: Option<Instant>,
    /// The last timestamp written: timestamps never go backwards.
    last_ts: u64,
    /// When the capture was last flushed, and whether anything was
    /// recorded since (see [`FLUSH_EVERY`]).
    flushed_at: Option<Instant>,
    unflushed: bool,
    error: Option<io::Error>,
    /// A frame with its offloaded checksum completed, as recorded.
    scratch: Vec<u8>,
}

impl<D: Device> PcapWriter<D> {
    /// Records `inner` to a new file at `path` (truncated if present),
    /// through a `BufWriter`.
    pub fn create(inner: D, path: impl AsRef<Path>) -> io::Result<PcapWriter<D>> {
        let file = File::create(path.as_ref()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create capture file {}: {e}",
                    path.as_ref().display()
                ),
            )
        })?;
        PcapWriter::new(inner, BufWriter::new(file))
    }
}

impl<D: Device, W: Write> PcapWriter<D, W> {
    /// Records `inner` to `out`; writes the file header now.
    pub fn new(inner: D, out: W) -> io::Result<PcapWriter<D, W>> {
        let linktype = linktype_for(inner.caps().medium);
        let wall_start_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Ok(PcapWriter {
            inner,
            writer: Writer::new(out, linktype)?,
            wall_start_micros,
            first_now: None,
            last_ts: 0,
            flushed_at: None,
            unflushed: false,
            error: None,
            scratch: Vec::new(),
        })
    }

    /// Flushes the capture; also reports an earlier write error, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.writer.flush()
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, mutable.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The capture's writer.
    pub fn writer(&self) -> &Writer<W> {
        &self.writer
    }

    /// The timestamp of frames seen at `now`: never below the last one
    /// written (a caller that passes an earlier `now` than before gets the
    /// previous timestamp, so the capture's time never steps back).
    fn timestamp(&mut self, now: Instant) -> u64 {
        let first = *self.first_now.get_or_insert(now);
        let ts = self.wall_start_micros + (now - first).as_micros() as u64;
        self.last_ts = self.last_ts.max(ts);
        self.last_ts
    }

    /// Flushes the capture when something was recorded and
    /// [`FLUSH_EVERY`] has passed since the last flush.
    fn flush_due(&mut self, now: Instant) {
        let at = *self.flushed_at.get_or_insert(now);
        if self.unflushed && now >= at + FLUSH_EVERY && self.error.is_none() {
            if let Err(e) = self.writer.flush() {
                self.error = Some(e);
            }
            self.unflushed = false;
            self.flushed_at = Some(now);
        }
    }

    fn record<'a>(&mut self, now: Instant, frames: impl Iterator<Item = (&'a [u8], FrameMeta)>) {
        let ts = self.timestamp(now);
        self.unflushed = true;
        for (f, meta) in frames {
            if self.error.is_some() {
                return;
            }
            let f = match completed(f, meta, &mut self.scratch) {
                true => &self.scratch[..],
                false => f,
            };
            if let Err(e) = self.writer.write_packet(ts, f) {
                self.error = Some(e);
            }
        }
    }
}

/// A frame whose transport checksum the device completes (offload) is
/// recorded as it will be on the wire: with the checksum filled in (into
/// `scratch`; true). A super-segment is recorded whole, as `tcpdump` on a
/// Linux host with offload shows it.
fn completed(frame: &[u8], meta: FrameMeta, scratch: &mut Vec<u8>) -> bool {
    if !matches!(meta.checksum, Checksum::Partial { .. }) {
        return false;
    }
    scratch.clear();
    scratch.extend_from_slice(frame);
    meta.checksum.complete(scratch)
}

impl<D: Device, W: Write> Device for PcapWriter<D, W> {
    fn wants_writable(&self) -> bool {
        self.inner.wants_writable()
    }

    fn dropped(&mut self) -> u64 {
        self.inner.dropped()
    }

    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn recv_batch(&mut self, now: Instant, batch: &mut FrameBatch) -> io::Result<usize> {
        let before = batch.len();
        let n = self.inner.recv_batch(now, batch)?;
        let end = batch.len();
        let frames = (before..end).filter_map(|i| Some((batch.get(i)?, batch.meta(i)?)));
        self.record(now, frames);
        self.flush_due(now);
        Ok(n)
    }

    fn send_batch(&mut self, now: Instant, batch: &FrameBatch) -> io::Result<usize> {
        let n = self.inner.send_batch(now, batch)?;
        self.record(now, batch.iter_meta().take(n));
        self.flush_due(now);
        Ok(n)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        self.inner.as_raw_fd()
    }

    /// The inner device's deadline, or the next periodic flush of a
    /// capture with unflushed records, whichever is first.
    fn poll_at(&self) -> Option<Instant> {
        let flush = match (self.unflushed, self.flushed_at) {
            (true, Some(at)) => Some(at + FLUSH_EVERY),
            _ => None,
        };
        [self.inner.poll_at(), flush].into_iter().flatten().min()
    }

    fn service(&mut self, now: Instant) -> io::Result<()> {
        self.flush_due(now);
        self.inner.service(now)
    }
}

impl<D: Device, W: Write> Drop for PcapWriter<D, W> {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}

/// One packet read from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Microseconds since the Unix epoch (0 for pcapng simple packet blocks,
    /// which carry no timestamp).
    pub timestamp_micros: u64,
    /// The pcap link type of the interface the packet was captured on.
    pub linktype: u16,
    /// The captured bytes.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u16,
    snaplen: u32,
    /// Timestamp units per second, as (is_power_of_two, exponent).
    tsresol: (bool, u8),
}

enum Format {
    Unknown,
    Classic {
        swapped: bool,
        nanos: bool,
        linktype: u16,
    },
    Ng {
        swapped: bool,
        ifaces: Vec<Iface>,
    },
}

/// Reads classic pcap (either byte order, microsecond or nanosecond magic)
/// and pcapng (section header, interface description, enhanced, simple and
/// obsolete packet blocks; other blocks are skipped). Iterating yields
/// records until the end of the file; a malformed or truncated file yields
/// one error and then ends. It never panics on bad input.
pub struct Reader<R: Read> {
    input: R,
    format: Format,
    done: bool,
}

impl Reader<BufReader<File>> {
    /// Opens the capture at `path`.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Reader<BufReader<File>>> {
        let f = File::open(path.as_ref()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open capture {}: {e}", path.as_ref().display()),
            )
        })?;
        Ok(Reader::new(BufReader::new(f)))
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn u16_at(b: &[u8], at: usize, swapped: bool) -> u16 {
    let v = u16::from_le_bytes([b[at], b[at + 1]]);
    if swapped {
        v.swap_bytes()
    } else {
        v
    }
}

fn u32_at(b: &[u8], at: usize, swapped: bool) -> u32 {
    let v = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if swapped {
        v.swap_bytes()
    } else {
        v
    }
}

/// Reads exactly `len` bytes without trusting `len` for the allocation.
fn read_vec<R: Read>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(len as u64).read_to_end(&mut v)?;
    if v.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "capture truncated in the middle of a record",
        ));
    }
    Ok(v)
}

impl<R: Read> Reader<R> {
    /// A reader over `input`; the format is detected from the first bytes.
    pub fn new(input: R) -> Reader<R> {
        Reader {
            input,
            format: Format::Unknown,
            done: false,
        }
    }

    /// Fills `buf`; Ok(false) at a clean end of file before any byte.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.input.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got == 0 {
            return Ok(false);
        }
        if got < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "capture truncated in the middle of a header",
            ));
        }
        Ok(true)
    }

    fn start(&mut self) -> io::Result<bool> {
        let mut m = [0u8; 4];
        if !self.fill(&mut m)? {
            return Err(bad("empty capture file"));
        }
        let le = u32::from_le_bytes(m);
        let classic = match le {
            0xa1b2_c3d4 => Some((false, false)),
            0xd4c3_b2a1 => Some((true, false)),
            0xa1b2_3c4d => Some((false, true)),
            0x4d3c_b2a1 => Some((true, true)),
            _ => None,
        };
        if let Some((swapped, nanos)) = classic {
            let mut h = [0u8; 20];
            if !self.fill(&mut h)? {
                return Err(bad("capture truncated in the file header"));
            }
            let linktype = (u32_at(&h, 16, swapped) & 0xffff) as u16;
            self.format = Format::Classic {
                swapped,
                nanos,
                linktype,
            };
            return Ok(true);
        }
        if le == 0x0a0d_0d0a {
            self.read_shb_rest()?;
            return Ok(true);
        }
        Err(bad(format!("not a pcap or pcapng file (magic {le:#010x})")))
    }

    /// After the 4-byte SHB type: length, byte-order magic, body.
    fn read_shb_rest(&mut self) -> io::Result<()> {
        let mut h = [0u8; 8];
        if !self.fill(&mut h)? {
            return Err(bad("pcapng truncated in a section header"));
        }
        let swapped = match u32::from_le_bytes([h[4], h[5], h[6], h[7]]) {
            0x1a2b_3c4d => false,
            0x4d3c_2b1a => true,
            m => return Err(bad(format!("pcapng: bad byte-order magic {m:#010x}"))),
        };
        let total = u32_at(&h, 0, swapped) as usize;
        if total < 28 || total % 4 != 0 || total > MAX_RECORD {
            return Err(bad(format!("pcapng: bad section header length {total}")));
        }
        // Version, section length, options, trailing length: skip.
        read_vec(&mut self.input, total - 12)?;
        self.format = Format::Ng {
            swapped,
            ifaces: Vec::new(),
        };
        Ok(())
    }

    fn next_classic(
        &mut self,
        swapped: bool,
        nanos: bool,
        linktype: u16,
    ) -> io::Result<Option<Record>> {
        let mut h = [0u8; 16];
        if !self.fill(&mut h)? {
            return Ok(None);
        }
        let secs = u32_at(&h, 0, swapped) as u64;
        let frac = u32_at(&h, 4, swapped) as u64;
        let incl = u32_at(&h, 8, swapped) as usize;
        if incl > MAX_RECORD {
            return Err(bad(format!("pcap record length {incl} is implausible")));
        }
        let data = read_vec(&mut self.input, incl)?;
        let sub = if nanos { frac / 1000 } else { frac };
        Ok(Some(Record {
            timestamp_micros: secs * 1_000_000 + sub,
            linktype,
            data,
        }))
    }

    fn next_ng(&mut self) -> io::Result<Option<Record>> {
        loop {
            let mut h = [0u8; 8];
            if !self.fill(&mut h)? {
                return Ok(None);
            }
            let Format::Ng { swapped, .. } = self.format else {
                unreachable!("next_ng only in pcapng")
            };
            let btype = u32_at(&h, 0, swapped);
            if btype == 0x0a0d_0d0a {
                // A new section: its own byte order and interfaces. Re-read
                // from the length field on.
                let mut rest = [0u8; 4];
                if !self.fill(&mut rest)? {
                    return Err(bad("pcapng truncated in a section header"));
                }
                let swapped = match u32::from_le_bytes(rest) {
                    0x1a2b_3c4d => false,
                    0x4d3c_2b1a => true,
                    m => return Err(bad(format!("pcapng: bad byte-order magic {m:#010x}"))),
                };
                let total = u32_at(&h, 4, swapped) as usize;
                if total < 28 || total % 4 != 0 || total > MAX_RECORD {
                    return Err(bad(format!("pcapng: bad section header length {total}")));
                }
                read_vec(&mut self.input, total - 12)?;
                self.format = Format::Ng {
                    swapped,
                    ifaces: Vec::new(),
                };
                continue;
            }
            let total = u32_at(&h, 4, swapped) as usize;
            if total < 12 || total % 4 != 0 || total > MAX_RECORD {
                return Err(bad(format!(
                    "pcapng: bad block length {total} (block type {btype:#x})"
                )));
            }
            let body = read_vec(&mut self.input, total - 8)?;
            let body = &body[..body.len() - 4]; // trailing length
            let Format::Ng { swapped, ifaces } = &mut self.format else {
                unreachable!("next_ng only in pcapng")
            };
            let swapped = *swapped;
            match btype {
                1 => ifaces.push(parse_idb(body, swapped)?),
                6 | 2 => {
                    // Enhanced (6) or obsolete (2) packet block.
                    if body.len() < 20 {
                        return Err(bad("pcapng: packet block too short"));
                    }
                    let id = if btype == 6 {
                        u32_at(body, 0, swapped) as usize
                    } else {
                        u16_at(body, 0, swapped) as usize
                    };
                    let iface = *ifaces.get(id).ok_or_else(|| {
                        bad(format!("pcapng: packet on undeclared interface {id}"))
                    })?;
                    let ts = (u64::from(u32_at(body, 4, swapped)) << 32)
                        | u64::from(u32_at(body, 8, swapped));
                    let caplen = u32_at(body, 12, swapped) as usize;
                    let data = body
                        .get(20..20usize.saturating_add(caplen))
                        .ok_or_else(|| bad("pcapng: packet data overruns its block"))?;
                    return Ok(Some(Record {
                        timestamp_micros: ts_to_micros(ts, iface.tsresol),
                        linktype: iface.linktype,
                        data: data.to_vec(),
                    }));
                }
                3 => {
                    let iface = *ifaces
                        .first()
                        .ok_or_else(|| bad("pcapng: simple packet block before any interface"))?;
                    if body.len() < 4 {
                        return Err(bad("pcapng: simple packet block too short"));
                    }
                    let orig = u32_at(body, 0, swapped) as usize;
                    let mut caplen = orig.min(body.len() - 4);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    return Ok(Some(Record {
                        timestamp_micros: 0,
                        linktype: iface.linktype,
                        data: body[4..4 + caplen].to_vec(),
                    }));
                }
                _ => {} // name resolution, statistics, custom...: skipped
            }
        }
    }
}

fn parse_idb(body: &[u8], swapped: bool) -> io::Result<Iface> {
    if body.len() < 8 {
        return Err(bad("pcapng: interface description block too short"));
    }
    let mut iface = Iface {
        linktype: u16_at(body, 0, swapped),
        snaplen: u32_at(body, 4, swapped),
        tsresol: (false, 6),
    };
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, swapped);
        let len = u16_at(opts, 2, swapped) as usize;
        let padded = (len + 3) & !3;
        if code == 0 {
            break;
        }
        let Some(val) = opts.get(4..4 + len) else {
            break;
        };
        if code == 9 && len >= 1 {
            let v = val[0];
            iface.tsresol = (v & 0x80 != 0, v & 0x7f);
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    Ok(iface)
}

fn ts_to_micros(ts: u64, (pow2, exp): (bool, u8)) -> u64 {
    let ts = u128::from(ts);
    let micros = if pow2 {
        if exp >= 127 {
            0
        } else {
            (ts * 1_000_000) >> exp
        }
    } else {
        match 10u128.checked_pow(u32::from(exp)) {
            Some(per_sec) => ts * 1_000_000 / per_sec,
            None => 0,
        }
    };
    u64::try_from(micros).unwrap_or(u64::MAX)
}

impl<R: Read> Iterator for Reader<R> {
    type Item = io::Result<Record>;

    fn next(&mut self) -> Option<io::Result<Record>> {
        if self.done {
            return None;
        }
        let r = (|| {
            if let Format::Unknown = self.format {
                self.start()?;
            }
            match self.format {
                Format::Classic {
                    swapped,
                    nanos,
                    linktype,
                } => self.next_classic(swapped, nanos, linktype),
                Format::Ng { .. } => self.next_ng(),
                Format::Unknown => Ok(None),
            }
        })();
        match r {
            Ok(Some(rec)) => Some(Ok(rec)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::PipeDevice;
    use crate::time::Duration;
    use proptest::prelude::*;

    fn read_all(bytes: &[u8]) -> io::Result<Vec<Record>> {
        Reader::new(bytes).collect()
    }

    #[test]
    fn writer_reader_round_trip() {
        let mut w = Writer::new(Vec::new(), LINKTYPE_RAW).unwrap();
        w.write_packet(1_700_000_000_123_456, b"hello").unwrap();
        w.write_packet(1_700_000_001_000_000, &[]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len(), 24 + 16 + 5 + 16);
        let recs = read_all(&bytes).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].timestamp_micros, 1_700_000_000_123_456);
        assert_eq!(recs[0].linktype, LINKTYPE_RAW);
        assert_eq!(recs[0].data, b"hello");
        assert_eq!(recs[1].data, b"");
    }

    #[test]
    fn swapped_and_nanosecond_classic() {
        // Big-endian, nanosecond magic, linktype 1, one 3-byte packet.
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
        b.extend_from_slice(&2u16.to_be_bytes());
        b.extend_from_slice(&4u16.to_be_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&10u32.to_be_bytes());
        b.extend_from_slice(&5_000_999u32.to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        b.extend_from_slice(b"abc");
        let recs = read_all(&b).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].timestamp_micros, 10_005_000);
        assert_eq!(recs[0].linktype, 1);
        assert_eq!(recs[0].data, b"abc");
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let mut w = Writer::new(Vec::new(), LINKTYPE_ETHERNET).unwrap();
        w.write_packet(1, &[7; 60]).unwrap();
        let bytes = w.into_inner();
        let mut rd = Reader::new(&bytes[..bytes.len() - 10]);
        let e = rd.next().unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(rd.next().is_none());
        assert!(read_all(b"").is_err());
        assert!(read_all(b"not a capture").is_err());
    }

    fn ng_block(btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&btype.to_le_bytes());
        b.extend_from_slice(&total.to_le_bytes());
        b.extend_from_slice(&body);
        b.extend_from_slice(&total.to_le_bytes());
        b
    }

    #[test]
    fn pcapng_blocks() {
        let mut f = Vec::new();
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        f.extend(ng_block(0x0a0d_0d0a, &shb));
        // Interface 0: Ethernet, default µs. Interface 1: raw IP, ns resolution.
        f.extend(ng_block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        let mut idb = vec![101, 0, 0, 0, 0, 0, 0, 0];
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        f.extend(ng_block(1, &idb));
        f.extend(ng_block(0x0bad, &[1, 2, 3, 4])); // unknown: skipped
        let epb = |iface: u32, ts: u64, data: &[u8]| {
            let mut b = Vec::new();
            b.extend_from_slice(&iface.to_le_bytes());
            b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            b.extend_from_slice(&(ts as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            ng_block(6, &b)
        };
        f.extend(epb(0, 1_000_000, b"eth"));
        f.extend(epb(1, 2_000_000_000, b"ip!"));
        let mut spb = 2u32.to_le_bytes().to_vec();
        spb.extend_from_slice(b"xy");
        f.extend(ng_block(3, &spb));
        let recs = read_all(&f).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].timestamp_micros, recs[0].linktype), (1_000_000, 1));
        assert_eq!(recs[0].data, b"eth");
        assert_eq!(
            (recs[1].timestamp_micros, recs[1].linktype),
            (2_000_000, 101)
        );
        assert_eq!(recs[2].data, b"xy");
        // Packet on an undeclared interface: error.
        let mut g = f[..f.len()].to_vec();
        g.extend(epb(7, 0, b"?"));
        let res: Vec<_> = Reader::new(&g[..]).collect();
        assert!(res.last().unwrap().is_err());
    }

    #[test]
    fn real_pcapng_captures() {
        // `../shared/pcaps` beside the repository (present in CI).
        let dir = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps");
        if !dir.is_dir() {
            crate::testkit::netns::skip(
                "real_pcapng_captures",
                &format!("{} is absent", dir.display()),
            );
            return;
        }
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("pcapng") {
                continue;
            }
            files += 1;
            let recs: Vec<Record> = Reader::open(&path)
                .unwrap()
                .collect::<io::Result<_>>()
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!recs.is_empty(), "{}: no packets", path.display());
            assert!(
                recs.len() < 1_000_000,
                "{}: implausible count",
                path.display()
            );
            for r in &recs {
                assert_eq!(r.linktype, LINKTYPE_ETHERNET, "{}", path.display());
                assert!(r.data.len() >= 14, "{}: runt frame", path.display());
                // After 2000-01-01 unless the capture has no timestamps.
                assert!(r.timestamp_micros == 0 || r.timestamp_micros > 946_684_800_000_000);
            }
        }
        assert!(files > 0, "no .pcapng files in {}", dir.display());
    }

    #[test]
    fn device_wrapper_records_both_directions() {
        let (a, mut b) = PipeDevice::pair(Medium::Ethernet, 1500);
        let mut cap = PcapWriter::new(a, Vec::new()).unwrap();
        let mut out = FrameBatch::new(4, 1514);
        out.push(&[1; 60]);
        out.push(&[2; 70]);
        assert_eq!(cap.send_batch(Instant::from_secs(5), &out).unwrap(), 2);
        let mut back = FrameBatch::new(4, 1514);
        back.push(&[3; 64]);
        b.send_batch(Instant::ZERO, &back).unwrap();
        let mut inb = FrameBatch::new(4, 1514);
        inb.push(b"already here");
        assert_eq!(
            cap.recv_batch(Instant::from_millis(5250), &mut inb)
                .unwrap(),
            1
        );
        cap.flush().unwrap();
        let bytes = cap.writer().get_ref().clone();
        let recs = read_all(&bytes).unwrap();
        assert_eq!(recs.len(), 3);
        assert!(recs.iter().all(|r| r.linktype == LINKTYPE_ETHERNET));
        assert_eq!(recs[0].data, vec![1; 60]);
        assert_eq!(recs[2].data, vec![3; 64]);
        assert_eq!(recs[2].timestamp_micros - recs[0].timestamp_micros, 250_000);
    }

    /// A sink that keeps what reached it, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().concat()
        }
    }

    #[test]
    fn a_buffered_capture_ends_on_a_record_boundary_after_every_write() {
        // A process killed at any moment leaves what the BufWriter wrote
        // so far: that must always read as whole records (before, a
        // record's 16-byte header could be written without its data).
        let sink = Sink::default();
        let mut w = Writer::new(io::BufWriter::with_capacity(100, sink.clone()), 1).unwrap();
        for i in 0..40usize {
            w.write_packet(i as u64, &vec![i as u8; (i * 7) % 90])
                .unwrap();
        }
        let writes = sink.0.lock().unwrap().clone();
        assert!(writes.len() > 5, "the buffer was written out several times");
        let mut so_far = Vec::new();
        for chunk in &writes {
            so_far.extend_from_slice(chunk);
            let recs = read_all(&so_far).expect("whole records after every write");
            assert!(recs
                .iter()
                .enumerate()
                .all(|(i, r)| r.timestamp_micros == i as u64));
        }
    }

    #[test]
    fn capture_time_never_steps_back_and_is_flushed_while_running() {
        let (a, _b) = PipeDevice::pair(Medium::Ethernet, 1500);
        let sink = Sink::default();
        let mut cap = PcapWriter::new(a, io::BufWriter::new(sink.clone())).unwrap();
        let mut out = FrameBatch::new(4, 1514);
        out.push(&[1; 60]);
        let t = Instant::from_secs(5);
        cap.send_batch(t, &out).unwrap();
        // A caller that read its clock earlier than the last one.
        cap.send_batch(t - Duration::from_millis(9), &out).unwrap();
        cap.send_batch(t + Duration::from_millis(1), &out).unwrap();
        assert!(sink.bytes().is_empty(), "still buffered");
        assert_eq!(cap.poll_at(), Some(t + FLUSH_EVERY), "a flush is due");
        cap.service(t + FLUSH_EVERY).unwrap();
        let recs = read_all(&sink.bytes()).unwrap();
        assert_eq!(
            recs.len(),
            3,
            "flushed by service() with nothing else to do"
        );
        let ts: Vec<u64> = recs.iter().map(|r| r.timestamp_micros).collect();
        assert_eq!(ts[1], ts[0], "an earlier reading keeps the last timestamp");
        assert_eq!(ts[2] - ts[0], 1_000);
        assert_eq!(cap.poll_at(), None, "nothing left to flush");
    }

    #[test]
    fn tshark_parses_our_output() {
        // tshark from PATH (scripts/install-deps.sh installs it).
        let tshark = "tshark";
        if !crate::testkit::netns::installed(tshark) {
            crate::testkit::netns::skip(
                "tshark_parses_our_output",
                "tshark is not installed (scripts/install-deps.sh installs it)",
            );
            return;
        }
        let path = std::env::temp_dir().join(format!("ustk-pcap-{}.pcap", std::process::id()));
        {
            let f = BufWriter::new(File::create(&path).unwrap());
            let mut w = Writer::new(f, LINKTYPE_ETHERNET).unwrap();
            for (i, len) in [60usize, 98, 1514].into_iter().enumerate() {
                let mut frame = vec![0u8; len];
                frame[..6].copy_from_slice(&[0xff; 6]);
                frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
                frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental
                w.write_packet(1_700_000_000_000_000 + i as u64, &frame)
                    .unwrap();
            }
            w.flush().unwrap();
        }
        let out = std::process::Command::new(tshark)
            .args(["-r"])
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.len"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "tshark: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lens: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .collect();
        assert_eq!(lens, ["60", "98", "1514"]);
    }

    proptest! {
        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Reader::new(&bytes[..]).take(1000).count();
        }

        #[test]
        fn reader_never_panics_on_mangled_pcapng(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..8),
            cut in 0usize..200,
        ) {
            let mut f = Vec::new();
            let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
            shb.extend_from_slice(&[1, 0, 0, 0]);
            shb.extend_from_slice(&(-1i64).to_le_bytes());
            f.extend(ng_block(0x0a0d_0d0a, &shb));
            f.extend(ng_block(1, &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 0x8a, 0, 0, 0]));
            let mut epb = vec![0; 20];
            epb[12] = 8;
            epb.extend_from_slice(&[0xab; 8]);
            f.extend(ng_block(6, &epb));
            for (at, v) in flips {
                if at < f.len() {
                    f[at] = v;
                }
            }
            f.truncate(cut.min(f.len()));
            let _ = Reader::new(&f[..]).take(1000).count();
        }

        #[test]
        fn round_trip(pkts in proptest::collection::vec(
            (any::<u32>(), 0u32..1_000_000, proptest::collection::vec(any::<u8>(), 0..300)), 0..20)) {
            let mut w = Writer::new(Vec::new(), LINKTYPE_ETHERNET).unwrap();
            for (s, us, d) in &pkts {
                w.write_packet(u64::from(*s) * 1_000_000 + u64::from(*us), d).unwrap();
            }
            let recs = read_all(&w.into_inner()).unwrap();
            prop_assert_eq!(recs.len(), pkts.len());
            for (r, (s, us, d)) in recs.iter().zip(&pkts) {
                prop_assert_eq!(r.timestamp_micros, u64::from(*s) * 1_000_000 + u64::from(*us));
                prop_assert_eq!(&r.data, d);
                prop_assert_eq!(r.linktype, LINKTYPE_ETHERNET);
            }
        }
    }
}
