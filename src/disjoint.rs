//! A slice that parallel tasks write at indices no two tasks share.
//!
//! The sparse passes (the lookup's gather and scatter, the pyramid's
//! forward, adjoint and Adam step) split their work by pixel rows, sites or
//! colour planes, not by contiguous ranges of the buffer they write, so
//! `par_chunks_mut` cannot express the split (it would need one piece per
//! site). Each caller states why its tasks' indices are disjoint.

use std::marker::PhantomData;

#[derive(Clone, Copy)]
pub(crate) struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: the pointer is only dereferenced through `add` and `slice`, whose
// callers guarantee that no two threads use the same index at once; the
// borrow keeps the buffer alive and otherwise untouched meanwhile.
unsafe impl Send for Disjoint<'_> {}
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    pub(crate) fn new(buf: &'a mut [f32]) -> Disjoint<'a> {
        Disjoint { ptr: buf.as_mut_ptr(), len: buf.len(), _borrow: PhantomData }
    }

    /// The `len` entries from `start`, to read and write in place.
    ///
    /// # Safety
    /// No other thread reads or writes any of them while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start <= self.len && len <= self.len - start);
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }

    /// # Safety
    /// No other thread reads or writes index `i` during the parallel section.
    #[inline]
    pub(crate) unsafe fn add(&self, i: usize, v: f32) {
        assert!(i < self.len);
        unsafe { *self.ptr.add(i) += v }
    }
}
