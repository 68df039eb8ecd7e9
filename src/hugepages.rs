//! Large buffers: zeroed `f32` buffers that ask Linux for transparent huge
//! pages, and the allocator setting that lets freed large blocks be reused.
//!
//! The texture side's buffers (θ, Adam's moments, the pyramid's work
//! buffers: ~64 MB each at 2048²) are read and written at a view's sites,
//! scattered over the whole buffer, so with 4 KiB pages most accesses miss
//! the TLB. With 2 MiB pages the sparse passes took 0.82× the time
//! (`cargo bench --bench texture`, plain bunny at 2048², three alternating
//! runs). Kernels that give huge pages only on request (`madvise`, the
//! usual default) need the advice; elsewhere it is a no-op.

/// `n` zeros, on huge pages where the OS grants them. The advice is given
/// before the first write, so the pages are huge from the first fault on.
pub fn zeroed(n: usize) -> Vec<f32> {
    let v = vec![0.0f32; n];
    advise(&v);
    v
}

/// Advises huge pages for the whole 4 KiB pages inside `buf`.
fn advise(buf: &[f32]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (buf.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (buf.as_ptr() as usize + std::mem::size_of_val(buf)) / PAGE * PAGE;
        if end >= start + (2 << 20) {
            // SAFETY: the range lies inside `buf`'s allocation; MADV_HUGEPAGE
            // changes no contents, and a refusal (EINVAL on kernels without
            // THP) leaves ordinary pages.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// Makes glibc's `malloc` serve large blocks from its heap instead of a fresh
/// `mmap` each time. Every step allocates and frees the same ~38 MB blocks
/// (relu1 features at 384² views, their gradients); glibc maps any block over
/// 32 MB anew and unmaps it on free, so each step paid ~9,000 page faults per
/// block: 0.18 s of a 1.02 s step (textured bunny, default recipe, 2-core
/// EPYC). With the heap reused the step took 0.85 s and peak memory rose from
/// 1387 to 1403 MB. Call it first thing in `main`, before threads start; a
/// no-op off glibc.
pub fn reuse_freed_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
    }
}
