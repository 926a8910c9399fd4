//! How the process uses memory: the allocator's arenas, set before any thread starts, and
//! its heap, trimmed and measured while the worker runs (`worker::periodic::HeapTrim`).

/// One glibc malloc arena for the whole process, unless the operator chose otherwise
/// (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`).
///
/// Why: glibc gives each thread that allocates an arena of its own, and keeps what is freed
/// in it. The runtime's threads run every task in turn, so each arena grew to the worker's
/// busiest moment: at 100,000 tenants two of them held 11 to 20 MB each, most of the worker's
/// anonymous memory. With one arena a 10,000-tenant morning at concurrency 32 peaked at
/// 45.6 MiB instead of 52.4, at the same cycles per second (docs/capacity.md): the worker has
/// two busy threads, so the arena's lock is rarely contended.
pub fn one_malloc_arena() {
    let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
    if !chosen {
        cap_arenas(1);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cap_arenas(n: i32) {
    // SAFETY: mallopt only sets an allocator parameter; called from `main` before any other
    // thread exists. It returns 0 when the value is refused, which leaves glibc's default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_arenas(_: i32) {}

/// Gives the allocator's free heap pages back to the kernel (`malloc_trim`); true when some
/// were. glibc returns only the top of its heap on `free`, so after a burst the pages freed
/// below longer-lived blocks stay resident: at 100,000 tenants a watchdog sweep in the middle
/// of the morning's cycles took the heap from 21.6 to 34.7 MB within seconds while what it
/// held in use went from 14.5 to 19 MB, and the worker stayed at its peak from then on.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its lock.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

/// What the allocator holds, in bytes: handed out from its heap, kept free in its heap
/// (fragmentation, or pages not yet trimmed), and mapped apart for large blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    pub in_use: u64,
    pub free: u64,
    pub mapped: u64,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap() -> Option<Heap> {
    // SAFETY: mallinfo2 (glibc 2.33) only reads the allocator's counters, under its lock.
    let m = unsafe { libc::mallinfo2() };
    Some(Heap {
        in_use: m.uordblks as u64,
        free: m.fordblks as u64,
        mapped: m.hblkhd as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap() -> Option<Heap> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn a_trim_gives_back_what_a_freed_burst_left_in_the_heap() {
        // Blocks under the mmap threshold come from the heap; one kept block after them
        // pins its top, so `free` alone cannot shrink it.
        let burst: Vec<Vec<u8>> = (0..512).map(|_| vec![1u8; 64 * 1024]).collect();
        let pin = vec![2u8; 1024];
        let held = heap().expect("glibc").in_use;
        drop(burst);
        let after = heap().expect("glibc");
        assert!(after.in_use < held, "{after:?} against {held}");
        assert!(after.free >= 16 << 20, "{after:?}");
        // The pages are returned; the accounting of the heap does not change.
        trim();
        assert!(heap().expect("glibc").in_use <= after.in_use + (1 << 20));
        drop(pin);
    }
}
