//! How the process uses memory, set before any thread starts.

/// One glibc malloc arena for the whole process, unless the operator chose otherwise
/// (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`).
///
/// Why: glibc gives each thread that allocates an arena of its own, and keeps what is freed
/// in it. The runtime's threads run every task in turn, so each arena grew to the worker's
/// busiest moment: at 100,000 tenants two of them held 11 to 20 MB each, most of the worker's
/// anonymous memory. With one arena a 10,000-tenant morning at concurrency 32 peaked at
/// 45.6 MiB instead of 52.4, at the same cycles per second (README, Capacity): the worker has
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
