//! Byte buffers for a TCP connection: the send ring and the receive
//! assembler.
//!
//! Both allocate lazily and give their memory back when they hold nothing,
//! so an idle connection costs only the size of the structs themselves.
//! Neither knows about sequence numbers: the connection maps `SND.UNA` to
//! offset 0 of the [`SendBuffer`] and `RCV.NXT` to offset 0 of the
//! [`ReceiveBuffer`]'s window.

/// The smallest storage a buffer allocates once it needs any, in bytes.
const MIN_ALLOC: usize = 512;

/// Buffers kept at most by a [`BufferPool`].
const POOL_MAX_BUFFERS: usize = 16;
/// Bytes kept at most by a [`BufferPool`].
const POOL_MAX_BYTES: usize = 16 << 20;

/// Storage given back by drained buffers, kept (bounded) for the next
/// buffer that needs some: a connection that drains its buffer between
/// bursts (every read of a bulk receiver, every acknowledged request) would
/// otherwise free and re-grow its storage each time, paying the allocator,
/// the zero-fill and the kernel's page faults per burst. Idle connections
/// still hold nothing; the pool holds at most 16 MiB (16 buffers).
///
/// The interface owns one and lends it to its connections' buffers for the
/// calls that grow or free storage: no lock, nothing process-wide.
#[derive(Default)]
pub struct BufferPool {
    bufs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("buffers", &self.bufs.len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl BufferPool {
    /// The largest kept buffer whose size is in `[min, max]`, if any.
    fn take(&mut self, min: usize, max: usize) -> Option<Vec<u8>> {
        let i = self
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, v)| (min..=max).contains(&v.len()))
            .max_by_key(|(_, v)| v.len())
            .map(|(i, _)| i)?;
        Some(self.bufs.swap_remove(i))
    }

    /// Keeps `v` for reuse when there is room, else frees it.
    fn give(&mut self, v: Vec<u8>) {
        if v.is_empty() || v.len() > POOL_MAX_BYTES {
            return;
        }
        if self.bytes() + v.len() > POOL_MAX_BYTES {
            return;
        }
        if self.bufs.len() < POOL_MAX_BUFFERS {
            self.bufs.push(v);
        } else if let Some((i, _)) = self.bufs.iter().enumerate().min_by_key(|(_, b)| b.len()) {
            // Replace the smallest: large buffers are the costly ones
            // to rebuild.
            if self.bufs[i].len() < v.len() {
                self.bufs[i] = v;
            }
        }
    }

    /// Bytes kept.
    fn bytes(&self) -> usize {
        self.bufs.iter().map(Vec::len).sum()
    }
}

/// Size for grown storage: at least `needed`, at least double `old`, at least
/// [`MIN_ALLOC`], never above `cap` (callers guarantee `needed <= cap`).
fn grown_size(old: usize, needed: usize, cap: usize) -> usize {
    needed
        .max(old.saturating_mul(2))
        .max(MIN_ALLOC)
        .min(cap.max(needed))
}

/// A byte ring with lazily grown storage. Positions are logical offsets from
/// `head`; the caller keeps track of how many bytes are meaningful.
#[derive(Default)]
struct Ring {
    /// Physical storage; its length is the ring size (0 = unallocated).
    storage: Vec<u8>,
    /// Physical index of logical offset 0.
    head: usize,
}

impl Ring {
    fn size(&self) -> usize {
        self.storage.len()
    }

    /// Physical index of logical offset `off` (storage must be non-empty).
    fn phys(&self, off: usize) -> usize {
        let size = self.storage.len();
        let p = self.head + off % size;
        if p >= size {
            p - size
        } else {
            p
        }
    }

    /// Makes the ring at least `needed` bytes, keeping logical offsets.
    fn ensure(&mut self, needed: usize, cap: usize, pool: &mut BufferPool) {
        let old = self.storage.len();
        if needed <= old {
            return;
        }
        let new_size = grown_size(old, needed, cap);
        // A kept buffer of at least that size (and never above the cap):
        // its old contents are never read, every logical byte is written
        // before it is readable.
        let mut storage = match pool.take(new_size, cap.max(needed)) {
            Some(mut v) => {
                let n = old - self.head;
                v[..n].copy_from_slice(&self.storage[self.head..]);
                v[n..old].copy_from_slice(&self.storage[..self.head]);
                v
            }
            None => {
                let mut v = Vec::with_capacity(new_size);
                v.extend_from_slice(&self.storage[self.head..]);
                v.extend_from_slice(&self.storage[..self.head]);
                v.resize(new_size, 0);
                v
            }
        };
        std::mem::swap(&mut self.storage, &mut storage);
        pool.give(storage);
        self.head = 0;
    }

    /// Releases the storage (to the pool of kept buffers).
    fn release(&mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.storage));
        self.head = 0;
    }

    /// Moves logical offset 0 forward by `n`.
    fn advance(&mut self, n: usize) {
        if self.storage.is_empty() {
            self.head = 0;
        } else {
            self.head = self.phys(n);
        }
    }

    /// The logical bytes `[off, off + n)` as up to two slices.
    /// Requires `off + n <= size`.
    fn slices(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        if n == 0 || self.storage.is_empty() {
            return (&[], &[]);
        }
        let start = self.phys(off);
        let first = n.min(self.storage.len() - start);
        (
            &self.storage[start..start + first],
            &self.storage[..n - first],
        )
    }

    /// Copies `data` to logical offset `off`. Requires `off + len <= size`.
    fn write(&mut self, off: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let start = self.phys(off);
        let first = data.len().min(self.storage.len() - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Copies logical `[off, off + buf.len())` into `buf`.
    fn read(&self, off: usize, buf: &mut [u8]) {
        let (a, b) = self.slices(off, buf.len());
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..a.len() + b.len()].copy_from_slice(b);
    }
}

/// The send buffer: bytes the application wrote that are not yet
/// acknowledged, whether already sent or not.
///
/// Offset 0 is the oldest unacknowledged byte (`SND.UNA`, or the first byte
/// after the SYN). Storage grows on demand up to [`capacity`](Self::capacity)
/// and is freed whenever [`consume`](Self::consume) empties the buffer.
pub struct SendBuffer {
    ring: Ring,
    len: usize,
    capacity: usize,
}

impl SendBuffer {
    /// An empty buffer that will hold at most `capacity` bytes. Allocates
    /// nothing.
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            ring: Ring::default(),
            len: 0,
            capacity,
        }
    }

    /// The most bytes the buffer will hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the limit. Bytes already held are never dropped: if the new
    /// limit is below [`len`](Self::len), the buffer simply accepts nothing
    /// until enough has been consumed.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// Bytes held (unacknowledged, sent or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left for [`write`](Self::write).
    pub fn free(&self) -> usize {
        self.capacity.saturating_sub(self.len)
    }

    /// Bytes of memory currently allocated for storage (for accounting and
    /// tests; 0 when idle).
    pub fn allocated(&self) -> usize {
        self.ring.size()
    }

    /// Appends as much of `data` as fits; returns how many bytes were taken.
    pub fn write(&mut self, data: &[u8], pool: &mut BufferPool) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        self.ring.ensure(self.len + n, self.capacity, pool);
        self.ring.write(self.len, &data[..n]);
        self.len += n;
        n
    }

    /// Drops `n` bytes from the front (they were acknowledged). Clamps to
    /// [`len`](Self::len). Frees the storage when the buffer becomes empty.
    pub fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        let n = n.min(self.len);
        self.len -= n;
        if self.len == 0 {
            self.ring.release(pool);
        } else {
            self.ring.advance(n);
        }
    }

    /// Copies up to `buf.len()` bytes starting `offset` bytes after the
    /// front; returns how many were copied (0 if `offset >= len`).
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> usize {
        let (a, b) = self.slices_at(offset, buf.len());
        buf[..a.len()].copy_from_slice(a);
        buf[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }

    /// The bytes `[offset, offset + max)`, clipped to what is held, as up to
    /// two slices (the second is non-empty only when the range wraps around
    /// the ring). Both are empty if `offset >= len`.
    pub fn slices_at(&self, offset: usize, max: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let n = max.min(self.len - offset);
        self.ring.slices(offset, n)
    }
}

impl std::fmt::Debug for SendBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBuffer")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("allocated", &self.ring.size())
            .finish()
    }
}

/// What [`ReceiveBuffer::write_at`] did with a segment's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// Bytes of the payload inside the window (including any that
    /// duplicated data already held). Never more than the window was.
    pub accepted: usize,
    /// How far the contiguous edge moved, i.e. how much `RCV.NXT` advances.
    pub advanced: usize,
}

/// How many recently updated out-of-order blocks are remembered for SACK
/// ordering (RFC 2018 allows at most 4 blocks in an option).
const RECENT: usize = 4;

/// The receive buffer: bytes ready for the application followed by the
/// receive window, in which out-of-order segments are assembled.
///
/// The logical space is `capacity` bytes: `[0, readable)` holds in-order
/// data not yet read; `RCV.NXT` sits at `readable`; the window
/// `[readable, capacity)` may hold out-of-order ranges. All offsets in this
/// API other than those of [`read`](Self::read) are relative to `RCV.NXT`.
///
/// Out-of-order ranges are kept sorted, disjoint and non-adjacent; their
/// number is limited only by the window size. Storage grows on demand and is
/// freed when everything has been read and no out-of-order data is held.
pub struct ReceiveBuffer {
    ring: Ring,
    /// In-order bytes not yet read.
    readable: usize,
    /// Stream offset of `RCV.NXT` (total bytes ever made contiguous).
    nxt: u64,
    /// Out-of-order ranges, as stream offsets `[start, end)`, all `> nxt`.
    ooo: Vec<(u64, u64)>,
    /// Stream offsets inside recently updated ranges, most recent first.
    recent: [Option<u64>; RECENT],
    capacity: usize,
}

impl ReceiveBuffer {
    /// An empty buffer with `capacity` bytes of window space. Allocates
    /// nothing.
    pub fn new(capacity: usize) -> Self {
        ReceiveBuffer {
            ring: Ring::default(),
            readable: 0,
            nxt: 0,
            ooo: Vec::new(),
            recent: [None; RECENT],
            capacity,
        }
    }

    /// Total logical space (readable bytes plus window).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the space. Growing always works; shrinking only when nothing
    /// held (readable or out of order) lies beyond `capacity`. Returns
    /// whether the change was made.
    ///
    /// Note that RFC 9293 §3.8.6 discourages shrinking an advertised window;
    /// that policy is the connection's business.
    pub fn set_capacity(&mut self, capacity: usize) -> bool {
        if capacity < self.extent() {
            return false;
        }
        self.capacity = capacity;
        true
    }

    /// Logical bytes in use: readable data plus everything up to the end of
    /// the last out-of-order range.
    fn extent(&self) -> usize {
        self.readable + self.ooo.last().map_or(0, |&(_, e)| (e - self.nxt) as usize)
    }

    /// Contiguous bytes ready for the application.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Whether there is nothing for the application to read.
    pub fn is_empty(&self) -> bool {
        self.readable == 0
    }

    /// Room from `RCV.NXT` to the end of the space: the receive window.
    /// Out-of-order data sits inside it.
    pub fn window(&self) -> usize {
        self.capacity.saturating_sub(self.readable)
    }

    /// Bytes of memory currently allocated for storage (0 when idle).
    pub fn allocated(&self) -> usize {
        self.ring.size()
    }

    /// Stores `data` at `offset` bytes after `RCV.NXT`.
    ///
    /// The caller must already have trimmed anything before `RCV.NXT`.
    /// Bytes beyond the window are dropped; bytes overlapping data already
    /// held are accepted again (the later copy wins, which RFC 9293 allows).
    /// If the write fills the hole at `RCV.NXT`, the contiguous edge moves
    /// forward over it and over any out-of-order ranges it now reaches.
    pub fn write_at(&mut self, offset: usize, data: &[u8], pool: &mut BufferPool) -> WriteOutcome {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return WriteOutcome::default();
        }
        let n = data.len().min(window - offset);
        let rel_end = offset + n;
        self.ring
            .ensure(self.readable + rel_end, self.capacity, pool);
        self.ring.write(self.readable + offset, &data[..n]);

        let start = self.nxt + offset as u64;
        let end = self.nxt + rel_end as u64;
        self.insert_range(start, end);

        let mut advanced = 0;
        if let Some(&(s, e)) = self.ooo.first() {
            if s == self.nxt {
                advanced = (e - s) as usize;
                self.ooo.remove(0);
                self.nxt = e;
                self.readable += advanced;
                for r in self.recent.iter_mut() {
                    if r.is_some_and(|p| p < e) {
                        *r = None;
                    }
                }
            }
        }
        if start >= self.nxt {
            self.note_recent(start);
        }
        WriteOutcome {
            accepted: n,
            advanced,
        }
    }

    /// Inserts stream range `[start, end)` into the sorted, merged list.
    fn insert_range(&mut self, start: u64, end: u64) {
        // First range that ends at or after `start` (could merge).
        let i = self.ooo.partition_point(|&(_, e)| e < start);
        // Ranges from i up to j (exclusive) touch or overlap [start, end).
        let j = i + self.ooo[i..].partition_point(|&(s, _)| s <= end);
        if i == j {
            self.ooo.insert(i, (start, end));
        } else {
            let s = self.ooo[i].0.min(start);
            let e = self.ooo[j - 1].1.max(end);
            self.ooo[i] = (s, e);
            self.ooo.drain(i + 1..j);
        }
    }

    /// Records that the range containing stream offset `at` was just
    /// updated.
    fn note_recent(&mut self, at: u64) {
        let here = self.range_of(at);
        // Drop entries now inside the same range, then push to the front.
        let mut kept = [None; RECENT];
        kept[0] = Some(at);
        let mut k = 1;
        for p in self.recent.iter().flatten() {
            if k == RECENT {
                break;
            }
            if self.range_of(*p) != here {
                kept[k] = Some(*p);
                k += 1;
            }
        }
        self.recent = kept;
    }

    /// Index of the out-of-order range containing stream offset `at`.
    fn range_of(&self, at: u64) -> Option<usize> {
        let i = self.ooo.partition_point(|&(_, e)| e <= at);
        (i < self.ooo.len() && self.ooo[i].0 <= at).then_some(i)
    }

    /// The readable bytes as up to two slices (zero-copy reading; follow
    /// with [`consume`](Self::consume)).
    pub fn readable_slices(&self) -> (&[u8], &[u8]) {
        self.ring.slices(0, self.readable)
    }

    /// Discards up to `n` readable bytes (clamped); returns how many.
    pub fn consume(&mut self, n: usize, pool: &mut BufferPool) -> usize {
        let n = n.min(self.readable);
        self.readable -= n;
        if self.readable == 0 && self.ooo.is_empty() {
            self.ring.release(pool);
        } else {
            self.ring.advance(n);
        }
        n
    }

    /// Copies readable bytes into `buf` and removes them; returns how many.
    pub fn read(&mut self, buf: &mut [u8], pool: &mut BufferPool) -> usize {
        let n = self.peek(buf);
        self.consume(n, pool)
    }

    /// Copies readable bytes into `buf` without removing them; returns how
    /// many.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.readable);
        self.ring.read(0, &mut buf[..n]);
        n
    }

    /// Out-of-order ranges held beyond the contiguous edge, as `[start,
    /// end)` offsets relative to `RCV.NXT`, ascending. Every `start` is
    /// positive (a range at 0 would have been made contiguous).
    pub fn out_of_order_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ooo
            .iter()
            .map(move |&(s, e)| ((s - self.nxt) as usize, (e - self.nxt) as usize))
    }

    /// Whether any out-of-order data is held.
    pub fn has_out_of_order(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Replaces the contents of `out` with every out-of-order range, as
    /// offsets relative to `RCV.NXT`, most recently updated first (RFC 2018
    /// §4: the first block must contain the most recently received segment;
    /// the next ones repeat recently reported blocks). Ranges not updated
    /// recently follow in ascending order. The caller keeps as many as fit
    /// in the option.
    pub fn sack_blocks(&self, out: &mut Vec<(usize, usize)>) {
        out.clear();
        let mut used = [usize::MAX; RECENT];
        let mut k = 0;
        for p in self.recent.iter().flatten() {
            if let Some(i) = self.range_of(*p) {
                if !used[..k].contains(&i) {
                    used[k] = i;
                    k += 1;
                    let (s, e) = self.ooo[i];
                    out.push(((s - self.nxt) as usize, (e - self.nxt) as usize));
                }
            }
        }
        for (i, &(s, e)) in self.ooo.iter().enumerate() {
            if !used[..k].contains(&i) {
                out.push(((s - self.nxt) as usize, (e - self.nxt) as usize));
            }
        }
    }
}

impl std::fmt::Debug for ReceiveBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveBuffer")
            .field("readable", &self.readable)
            .field("window", &self.window())
            .field(
                "out_of_order",
                &self.out_of_order_ranges().collect::<Vec<_>>(),
            )
            .field("capacity", &self.capacity)
            .field("allocated", &self.ring.size())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn bytes(range: std::ops::Range<u32>) -> Vec<u8> {
        range.map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn send_lazy_and_released() {
        let mut pool = BufferPool::default();
        let mut b = SendBuffer::new(10_000);
        assert_eq!(b.allocated(), 0);
        assert!(b.is_empty());
        assert_eq!(b.write(b"hello", &mut pool), 5);
        assert!(b.allocated() >= 5 && b.allocated() <= 10_000);
        assert_eq!(b.len(), 5);
        assert_eq!(b.free(), 9_995);
        b.consume(2, &mut pool);
        let mut buf = [0; 8];
        assert_eq!(b.read_at(0, &mut buf), 3);
        assert_eq!(&buf[..3], b"llo");
        assert_eq!(b.read_at(3, &mut buf), 0);
        b.consume(100, &mut pool); // clamps
        assert!(b.is_empty());
        assert_eq!(b.allocated(), 0);
    }

    #[test]
    fn pool_keeps_bounded_and_hands_out_within_the_cap() {
        let mut p = BufferPool::default();
        p.give(vec![1u8; 200_000]);
        p.give(vec![2u8; 4096]);
        p.give(Vec::new());
        assert_eq!(p.bytes(), 204_096);
        assert!(p.take(512, 8).is_none(), "nothing above the cap");
        assert_eq!(
            p.take(512, 1 << 20).map(|v| v.len()),
            Some(200_000),
            "largest first"
        );
        assert_eq!(p.take(512, 1 << 20).map(|v| v.len()), Some(4096));
        assert!(p.take(1, 1 << 20).is_none());
        // Bounded in bytes...
        p.give(vec![0u8; 16 << 20]);
        p.give(vec![0u8; 1]);
        assert_eq!(p.bytes(), 16 << 20);
        assert!(p.take(1, usize::MAX).is_some());
        // ...and in count: beyond 16 buffers a larger one replaces the
        // smallest, a smaller one is dropped.
        for _ in 0..16 {
            p.give(vec![0u8; 100]);
        }
        p.give(vec![0u8; 50]);
        assert_eq!(p.bytes(), 1600);
        p.give(vec![0u8; 1000]);
        assert_eq!(p.bytes(), 2500);
    }

    #[test]
    fn reused_storage_shows_only_what_was_written() {
        let mut pool = BufferPool::default();
        // The storage r gives back is kept and handed to the buffers made
        // after it: old bytes in it are never readable.
        let mut r = ReceiveBuffer::new(1 << 20);
        let data = bytes(0..200_000);
        assert_eq!(r.write_at(0, &data, &mut pool).accepted, 200_000);
        let mut out = vec![0u8; 300_000];
        assert_eq!(r.read(&mut out, &mut pool), 200_000);
        assert_eq!(r.allocated(), 0, "drained: storage given back");
        let mut small = SendBuffer::new(8);
        assert_eq!(small.write(b"0123456789", &mut pool), 8);
        assert_eq!(small.allocated(), 8, "never above the capacity");
        let mut s = SendBuffer::new(1 << 20);
        assert_eq!(s.write(b"abc", &mut pool), 3);
        assert_eq!(s.allocated(), 200_000, "the kept storage is reused");
        let mut buf = [0u8; 8];
        assert_eq!(s.read_at(0, &mut buf), 3);
        assert_eq!(&buf[..3], b"abc");
        let mut r2 = ReceiveBuffer::new(1 << 20);
        assert_eq!(r2.write_at(5, b"xyz", &mut pool).accepted, 3);
        assert_eq!(r2.readable(), 0, "out of order: nothing readable yet");
        assert_eq!(r2.write_at(0, b"01234", &mut pool).advanced, 8);
        assert_eq!(r2.read(&mut buf, &mut pool), 8);
        assert_eq!(&buf, b"01234xyz");
    }

    #[test]
    fn send_capacity_limits_and_wraps() {
        let mut pool = BufferPool::default();
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"0123456789", &mut pool), 8);
        assert_eq!(b.allocated(), 8, "never allocates beyond capacity");
        assert_eq!(b.write(b"x", &mut pool), 0);
        b.consume(5, &mut pool);
        assert_eq!(b.write(b"abcdef", &mut pool), 5);
        assert_eq!(b.len(), 8);
        // [567abcde] with the ring wrapped after "567".
        let (x, y) = b.slices_at(0, 100);
        assert_eq!(x, b"567");
        assert_eq!(y, b"abcde");
        let (x, y) = b.slices_at(4, 3);
        assert_eq!((x, y), (&b"bcd"[..], &b""[..]));
        let (x, y) = b.slices_at(2, 3);
        assert_eq!((x, y), (&b"7"[..], &b"ab"[..]));
        assert_eq!(b.slices_at(8, 1), (&b""[..], &b""[..]));
        let mut buf = [0; 6];
        assert_eq!(b.read_at(1, &mut buf), 6);
        assert_eq!(&buf, b"67abcd");
        // Growing the limit lets the ring grow, keeping the order.
        b.set_capacity(20);
        assert_eq!(b.write(b"XYZ", &mut pool), 3);
        let mut all = [0; 11];
        assert_eq!(b.read_at(0, &mut all), 11);
        assert_eq!(&all, b"567abcdeXYZ");
        // Shrinking below len keeps the data but takes nothing more.
        b.set_capacity(4);
        assert_eq!(b.free(), 0);
        assert_eq!(b.write(b"q", &mut pool), 0);
        assert_eq!(b.len(), 11);
    }

    #[test]
    fn recv_in_order_and_release() {
        let mut pool = BufferPool::default();
        let mut r = ReceiveBuffer::new(100);
        assert_eq!(r.allocated(), 0);
        assert_eq!(
            r.write_at(0, b"abc", &mut pool),
            WriteOutcome {
                accepted: 3,
                advanced: 3
            }
        );
        assert_eq!(r.readable(), 3);
        assert_eq!(r.window(), 97);
        let mut buf = [0; 2];
        assert_eq!(r.peek(&mut buf), 2);
        assert_eq!(&buf, b"ab");
        assert_eq!(r.read(&mut buf, &mut pool), 2);
        assert_eq!(r.read(&mut buf, &mut pool), 1);
        assert_eq!(buf[0], b'c');
        assert_eq!(r.allocated(), 0);
        assert_eq!(r.window(), 100);
    }

    #[test]
    fn recv_out_of_order_fill_and_sack() {
        let mut pool = BufferPool::default();
        let data = bytes(0..60);
        let mut r = ReceiveBuffer::new(100);
        let w = |r: &mut ReceiveBuffer, pool: &mut BufferPool, s: usize, e: usize, nxt: usize| {
            r.write_at(s - nxt, &data[s..e], pool)
        };
        assert_eq!(w(&mut r, &mut pool, 10, 20, 0).advanced, 0);
        assert_eq!(w(&mut r, &mut pool, 30, 40, 0).advanced, 0);
        assert_eq!(w(&mut r, &mut pool, 50, 60, 0).advanced, 0);
        assert!(r.has_out_of_order());
        assert_eq!(r.readable(), 0);
        assert_eq!(r.window(), 100);
        let ranges: Vec<_> = r.out_of_order_ranges().collect();
        assert_eq!(ranges, vec![(10, 20), (30, 40), (50, 60)]);
        let mut sack = Vec::new();
        r.sack_blocks(&mut sack);
        assert_eq!(sack, vec![(50, 60), (30, 40), (10, 20)]);
        // A duplicate of the first block moves it to the front.
        let o = w(&mut r, &mut pool, 12, 18, 0);
        assert_eq!(o.accepted, 6);
        r.sack_blocks(&mut sack);
        assert_eq!(sack, vec![(10, 20), (50, 60), (30, 40)]);
        // Bridging two blocks merges them.
        w(&mut r, &mut pool, 20, 30, 0);
        assert_eq!(
            r.out_of_order_ranges().collect::<Vec<_>>(),
            vec![(10, 40), (50, 60)]
        );
        r.sack_blocks(&mut sack);
        assert_eq!(sack, vec![(10, 40), (50, 60)]);
        // Filling the head makes [0, 40) contiguous.
        let o = w(&mut r, &mut pool, 0, 10, 0);
        assert_eq!(
            o,
            WriteOutcome {
                accepted: 10,
                advanced: 40
            }
        );
        assert_eq!(r.readable(), 40);
        assert_eq!(r.window(), 60);
        assert_eq!(r.out_of_order_ranges().collect::<Vec<_>>(), vec![(10, 20)]);
        r.sack_blocks(&mut sack);
        assert_eq!(sack, vec![(10, 20)]);
        let mut buf = [0; 100];
        assert_eq!(r.read(&mut buf, &mut pool), 40);
        assert_eq!(&buf[..40], &data[..40]);
        assert!(r.allocated() > 0, "out-of-order data keeps the storage");
        assert_eq!(w(&mut r, &mut pool, 40, 55, 40).advanced, 20);
        assert!(!r.has_out_of_order());
        assert_eq!(r.read(&mut buf, &mut pool), 20);
        assert_eq!(&buf[..20], &data[40..60]);
        assert_eq!(r.allocated(), 0);
    }

    #[test]
    fn recv_trims_to_window() {
        let mut pool = BufferPool::default();
        let mut r = ReceiveBuffer::new(10);
        assert_eq!(r.write_at(0, &[1; 6], &mut pool).advanced, 6);
        assert_eq!(r.window(), 4);
        assert_eq!(r.write_at(2, &[2; 6], &mut pool).accepted, 2);
        assert_eq!(r.out_of_order_ranges().collect::<Vec<_>>(), vec![(2, 4)]);
        assert_eq!(r.write_at(4, &[3; 1], &mut pool), WriteOutcome::default());
        assert_eq!(
            r.write_at(usize::MAX, &[3; 1], &mut pool),
            WriteOutcome::default()
        );
        assert_eq!(r.write_at(1, &[], &mut pool), WriteOutcome::default());
        assert!(!r.set_capacity(9), "would cut off held data");
        assert!(r.set_capacity(10));
        assert!(r.set_capacity(1000));
        assert_eq!(r.window(), 994);
        let o = r.write_at(0, &[4; 3], &mut pool);
        assert_eq!(
            o,
            WriteOutcome {
                accepted: 3,
                advanced: 4
            }
        );
        let mut buf = [0; 16];
        assert_eq!(r.read(&mut buf, &mut pool), 10);
        assert_eq!(&buf[..10], &[1, 1, 1, 1, 1, 1, 4, 4, 4, 2]);
    }

    #[test]
    fn recv_zero_capacity() {
        let mut pool = BufferPool::default();
        let mut r = ReceiveBuffer::new(0);
        assert_eq!(r.window(), 0);
        assert_eq!(r.write_at(0, b"x", &mut pool), WriteOutcome::default());
        assert_eq!(r.allocated(), 0);
    }

    #[test]
    fn recv_readable_slices_wrap() {
        let mut pool = BufferPool::default();
        let mut r = ReceiveBuffer::new(8);
        r.write_at(0, b"abcdef", &mut pool);
        let mut buf = [0; 5];
        r.read(&mut buf, &mut pool);
        r.write_at(0, b"ghijklm", &mut pool);
        let (a, b) = r.readable_slices();
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        assert_eq!(v, b"fghijklm");
        assert_eq!(r.consume(100, &mut pool), 8);
        assert_eq!(r.allocated(), 0);
    }

    #[derive(Debug, Clone)]
    enum SendOp {
        Write(usize),
        Consume(usize),
        ReadAt(usize, usize),
        SetCapacity(usize),
    }

    fn send_op() -> impl Strategy<Value = SendOp> {
        prop_oneof![
            (0usize..3000).prop_map(SendOp::Write),
            (0usize..3000).prop_map(SendOp::Consume),
            (0usize..3000, 0usize..3000).prop_map(|(a, b)| SendOp::ReadAt(a, b)),
            (0usize..5000).prop_map(SendOp::SetCapacity),
        ]
    }

    /// Segments covering `0..len` exactly once, plus random extra ones.
    fn segments(len: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
        let cuts = proptest::collection::vec(0..=len, 0..20);
        let extra = proptest::collection::vec((0..len, 1usize..400), 0..30);
        (cuts, extra)
            .prop_map(move |(mut cuts, extra)| {
                cuts.push(0);
                cuts.push(len);
                cuts.sort_unstable();
                cuts.dedup();
                let mut segs: Vec<_> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
                segs.extend(extra.into_iter().map(|(s, l)| (s, (s + l).min(len))));
                segs
            })
            .prop_shuffle()
    }

    proptest! {
        #[test]
        fn send_matches_model(cap in 0usize..4000, ops in proptest::collection::vec(send_op(), 0..60)) {
            let mut pool = BufferPool::default();
            let mut b = SendBuffer::new(cap);
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut cap = cap;
            let mut next = 0u32;
            for op in ops {
                match op {
                    SendOp::Write(n) => {
                        let data = bytes(next..next + n as u32);
                        let took = b.write(&data, &mut pool);
                        prop_assert_eq!(took, n.min(cap.saturating_sub(model.len())));
                        model.extend(&data[..took]);
                        next += took as u32;
                    }
                    SendOp::Consume(n) => {
                        b.consume(n, &mut pool);
                        for _ in 0..n.min(model.len()) {
                            model.pop_front();
                        }
                    }
                    SendOp::ReadAt(off, n) => {
                        let mut buf = vec![0; n];
                        let got = b.read_at(off, &mut buf);
                        let want: Vec<u8> = model.iter().skip(off).take(n).copied().collect();
                        prop_assert_eq!(&buf[..got], &want[..]);
                        let (x, y) = b.slices_at(off, n);
                        prop_assert_eq!([x, y].concat(), want);
                    }
                    SendOp::SetCapacity(c) => {
                        b.set_capacity(c);
                        cap = c;
                    }
                }
                prop_assert_eq!(b.len(), model.len());
                prop_assert_eq!(b.free(), cap.saturating_sub(model.len()));
                prop_assert!(b.allocated() >= b.len());
                if b.is_empty() {
                    prop_assert_eq!(b.allocated(), 0);
                }
            }
        }

        #[test]
        fn recv_reassembles_any_order(
            (len, segs) in (1usize..3000).prop_flat_map(|len| (Just(len), segments(len))),
            cap in 1usize..2000,
            reads in proptest::collection::vec(0usize..700, 1..40),
        ) {
            let mut pool = BufferPool::default();
            let stream = bytes(0..len as u32);
            let mut r = ReceiveBuffer::new(cap);
            let mut out = Vec::new();
            let mut have = vec![false; len]; // model of bytes received
            let mut nxt = 0usize; // model RCV.NXT as a stream offset
            let mut reads = reads.iter().cycle();
            let mut sack = Vec::new();
            let mut rounds = 0;
            while out.len() < len {
                rounds += 1;
                prop_assert!(rounds <= len + 2, "no progress");
                for &(s, e) in &segs {
                    if e <= nxt {
                        continue;
                    }
                    let s = s.max(nxt);
                    let window = r.window();
                    let o = r.write_at(s - nxt, &stream[s..e], &mut pool);
                    prop_assert!(o.accepted <= window);
                    prop_assert_eq!(o.accepted, (e - s).min(window.saturating_sub(s - nxt)));
                    for h in &mut have[s..s + o.accepted] {
                        *h = true;
                    }
                    let old = nxt;
                    while nxt < len && have[nxt] {
                        nxt += 1;
                    }
                    prop_assert_eq!(o.advanced, nxt - old);
                    // Ranges match the model, sorted, disjoint, non-adjacent.
                    let ranges: Vec<_> = r.out_of_order_ranges().collect();
                    let mut want = Vec::new();
                    let mut i = nxt;
                    while i < len {
                        if have[i] {
                            let st = i;
                            while i < len && have[i] { i += 1; }
                            want.push((st - nxt, i - nxt));
                        } else {
                            i += 1;
                        }
                    }
                    prop_assert_eq!(&ranges, &want);
                    prop_assert_eq!(r.has_out_of_order(), !want.is_empty());
                    for &(a, b) in &ranges {
                        prop_assert!(a > 0 && a < b && b <= r.window());
                    }
                    r.sack_blocks(&mut sack);
                    let mut sorted = sack.clone();
                    sorted.sort_unstable();
                    prop_assert_eq!(&sorted, &want);
                    if o.accepted > 0 && s >= nxt {
                        // The segment lies beyond the edge: the first block has it.
                        prop_assert!(sack[0].0 <= s - nxt && s - nxt < sack[0].1);
                    }
                    prop_assert_eq!(r.readable() + r.window(), cap);
                    // Read a little sometimes.
                    let n = *reads.next().unwrap();
                    let mut buf = vec![0; n];
                    let got = r.read(&mut buf, &mut pool);
                    out.extend_from_slice(&buf[..got]);
                }
                let mut buf = vec![0; cap];
                let got = r.read(&mut buf, &mut pool);
                out.extend_from_slice(&buf[..got]);
                prop_assert_eq!(&out[..], &stream[..out.len()]);
            }
            prop_assert_eq!(out, stream);
            prop_assert_eq!(r.allocated(), 0);
        }
    }
}
