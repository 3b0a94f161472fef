//! Giving the heap's free memory back to the kernel after the bursts that need much of it
//! (loading handlers at start-up and on a reload), so an idle host stays small.

/// Returns the free memory at the top and in the middle of the heap to the kernel. glibc keeps
/// what start-up freed (≈2.6 MiB measured with the examples loaded) in the process until
/// something reuses it. Costs a few milliseconds; call it after a burst, never per request.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[expect(unsafe_code, reason = "a call into glibc that takes no pointers")]
    // SAFETY: `malloc_trim` only walks glibc's own arenas, under their locks; any thread may
    // call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
