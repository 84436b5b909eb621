//! `FileBytes`: the whole content of an immutable file without a copy — a read-only memory
//! map of a local file, or a shared buffer of the memory backend — and the 64-byte
//! aligned buffer behind the latter.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

/// The bytes of an immutable file, cheap to clone. The start is at least 64-byte aligned
/// (a memory map starts on a page; the memory backend's buffers are aligned), which is
/// what a segment's zero-copy view needs.
#[derive(Clone)]
pub struct FileBytes(Repr);

#[derive(Clone)]
enum Repr {
    Mapped(Arc<Mmap>),
    Shared(Arc<AlignedBytes>),
}

impl FileBytes {
    /// Bytes of a memory map (the local backend).
    pub(crate) fn mapped(map: Mmap) -> FileBytes {
        FileBytes(Repr::Mapped(Arc::new(map)))
    }

    /// Bytes of a shared buffer (the memory backend; empty local files).
    pub(crate) fn shared(bytes: Arc<AlignedBytes>) -> FileBytes {
        FileBytes(Repr::Shared(bytes))
    }

    /// A handle that tells whether any clone of these bytes is still alive, without
    /// keeping them alive.
    pub fn watch(&self) -> BytesWatch {
        BytesWatch(match &self.0 {
            Repr::Mapped(map) => WeakRepr::Mapped(Arc::downgrade(map)),
            Repr::Shared(bytes) => WeakRepr::Shared(Arc::downgrade(bytes)),
        })
    }

    /// Drop this process's resident pages of a memory map: they stay in the page cache and
    /// fault back in on the next read. A no-op for buffers in memory. Compaction calls it
    /// after streaming a segment once, so that a merge does not hold every input and output
    /// page at the same time.
    pub fn release_pages(&self) {
        if let Repr::Mapped(map) = &self.0 {
            // SAFETY: MADV_DONTNEED on a read-only, shared file mapping only discards this
            // process's page-table entries: the next access faults the same bytes back in
            // from the file (which is immutable, see `LocalStorage::map`), so no borrowed
            // slice ever observes different data. The range is the whole map, which the
            // `Arc` keeps alive for this call. Failure is harmless (the pages just stay
            // resident), so the result is ignored.
            let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
        }
    }
}

/// Whether a [`FileBytes`] is still held somewhere ([`FileBytes::watch`]).
#[derive(Debug, Clone)]
pub struct BytesWatch(WeakRepr);

#[derive(Debug, Clone)]
enum WeakRepr {
    Mapped(std::sync::Weak<Mmap>),
    Shared(std::sync::Weak<AlignedBytes>),
}

impl BytesWatch {
    /// True while some clone of the watched bytes exists.
    pub fn in_use(&self) -> bool {
        match &self.0 {
            WeakRepr::Mapped(w) => w.strong_count() > 0,
            WeakRepr::Shared(w) => w.strong_count() > 0,
        }
    }
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Mapped(map) => map,
            Repr::Shared(bytes) => bytes.as_bytes(),
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Repr::Mapped(_) => "mapped",
            Repr::Shared(_) => "shared",
        };
        f.debug_struct("FileBytes")
            .field("kind", &kind)
            .field("len", &self.len())
            .finish()
    }
}

/// 64 bytes on a 64-byte boundary.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([u8; 64]);

/// A growable byte buffer whose start is 64-byte aligned.
#[derive(Clone, Default)]
pub(crate) struct AlignedBytes {
    words: Vec<Block>,
    len: usize,
}

impl AlignedBytes {
    /// The bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Block` is 64 initialized bytes with no padding (size 64, align 64), so
        // the vector's memory is `words.len() * 64` initialized bytes, valid as `u8`; `len`
        // never exceeds that (`write_at` grows the words first); the slice borrows `self`,
        // so the words outlive it and cannot be reallocated while it lives.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.words.len() * 64;
        // SAFETY: as in `as_bytes`, over all `words.len() * 64` bytes; the mutable borrow
        // of `self` makes this the only access to the words while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Write `bytes` at `pos`, growing the buffer (zero-filled) as needed.
    pub(crate) fn write_at(&mut self, pos: usize, bytes: &[u8]) {
        let end = pos + bytes.len();
        if end > self.words.len() * 64 {
            self.words.resize(end.div_ceil(64), Block([0; 64]));
        }
        self.as_bytes_mut()[pos..end].copy_from_slice(bytes);
        self.len = self.len.max(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_bytes_grow_and_stay_aligned() {
        let mut b = AlignedBytes::default();
        b.write_at(0, b"hello");
        assert_eq!(b.as_bytes(), b"hello");
        b.write_at(100, b"x");
        assert_eq!(b.len(), 101);
        assert_eq!(b.as_bytes()[5..100], [0u8; 95]);
        b.write_at(0, b"J");
        assert_eq!(&b.as_bytes()[..5], b"Jello");
        assert!((b.as_bytes().as_ptr() as usize).is_multiple_of(64));
        let f = FileBytes::shared(Arc::new(b));
        assert_eq!(f.len(), 101);
        f.release_pages();
    }
}
