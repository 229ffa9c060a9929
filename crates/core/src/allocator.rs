//! How the process's C allocator treats the large, short-lived buffers of a forward pass.
//!
//! libtorch takes every CPU tensor from `malloc`. glibc serves blocks above its mmap threshold (at most
//! 32 MB) with a fresh `mmap` and returns them with `munmap` on free, and trims the heap's free top back to
//! the kernel, so each new activation of a large image faults in and zeroes new pages: a third of the time of
//! a CPU upscale went to the kernel (docs/benchmarks.md, "CPU memory reuse"). Keeping freed memory in the
//! heap lets the next tensor of the same size reuse it.

/// Serve all blocks from the heap and never hand freed memory back to the kernel while the process runs.
/// The price is fragmentation: the peak resident memory of a 2-megapixel upscale in 1024-pixel tiles grows
/// from 1.2 to 1.9 GB (in 512-pixel tiles it is 0.9 GB, and faster still). Call it once, at start-up, before
/// other threads exist. Elsewhere than glibc it does nothing.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
