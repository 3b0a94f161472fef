//! Giving memory back to the kernel after the bursts that need much of it (loading handlers
//! at start-up and on a reload), so an idle host stays small: the heap's free memory, and the
//! file pages (code, read-only data) only the burst used.

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

/// Drops this process's mappings of the file pages of its code it holds resident but does
/// not need: start-up (parsing arguments, compiling or mapping handlers) touched much of the
/// binary and its libraries that it never runs again, and RSS counts every such page. Only
/// mappings of the executable and of shared libraries (which stay mapped as long as the
/// process runs: a compiled handler's file can be unmapped and its range reused by another
/// mapping meanwhile) that cannot be written and hold no private copy of any page
/// (`Anonymous: 0 kB` in `/proc/self/smaps`) are dropped: their pages are exactly the file's,
/// so nothing is lost and the next use maps a page back from the page cache (a minor fault).
/// An idle host with the examples loaded measured 15.7 MiB before and 6.5 MiB after, one that
/// compiled them at start 29.7 → 16.5 MiB. Call it after a burst, never per request.
pub fn release_file_pages() {
    #[cfg(target_os = "linux")]
    {
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
        let lasting = |path: &str| std::path::Path::new(path) == exe || is_shared_library(path);
        for (start, end) in clean_file_mappings(&smaps, lasting) {
            #[expect(unsafe_code, reason = "dropping clean file pages, which the kernel maps back on use")]
            // SAFETY: the range is one of this process's private mappings of its executable or
            // of a shared library (the host never unloads one), without write permission and
            // without a private copy of any page: every page of it is the file's, so dropping
            // it changes no contents; the next access faults it back in.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

/// Whether `path` names a shared library (`libc.so.6`, `ld-linux-x86-64.so.2`, `x.so`).
fn is_shared_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".so")
        || name.split_once(".so.").is_some_and(|(_, version)| {
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
}

/// The address ranges of `smaps` (the text of `/proc/PID/smaps`) that map a file for which
/// `wanted` holds privately, cannot be written, hold resident pages and no anonymous
/// (copied-on-write) page. (A page the file itself has dirty in the page cache, e.g. a binary
/// just built, shows as `Private_Dirty` without being a copy: only `Anonymous` and `Swap` say
/// a page is private.)
#[cfg_attr(not(target_os = "linux"), allow(dead_code, reason = "smaps is Linux's"))]
fn clean_file_mappings(smaps: &str, wanted: impl Fn(&str) -> bool) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    // The mapping being read: its range, whether it qualifies so far, its resident KiB.
    let mut current: Option<(usize, usize, bool, u64)> = None;
    let finish = |current: Option<(usize, usize, bool, u64)>, found: &mut Vec<_>| {
        if let Some((start, end, true, rss)) = current
            && rss > 0
        {
            found.push((start, end));
        }
    };
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
        {
            finish(current.take(), &mut found);
            let perms = fields.next().unwrap_or("");
            // offset, device, inode, then the path.
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or("");
            let clean_kind = perms.len() == 4
                && perms.as_bytes()[1] == b'-'
                && perms.ends_with('p')
                && inode != "0"
                && path.starts_with('/')
                && !line.ends_with(" (deleted)")
                && wanted(path);
            current = Some((start, end, clean_kind, 0));
            continue;
        }
        let Some(mapping) = current.as_mut() else { continue };
        let kib = fields.next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => mapping.3 = kib.unwrap_or(0),
            "Anonymous:" | "Swap:" if kib != Some(0) => mapping.2 = false,
            _ => {}
        }
    }
    finish(current, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::{clean_file_mappings, is_shared_library};

    /// One mapping of `/proc/PID/smaps` with these fields (KiB).
    fn mapping(range: &str, perms: &str, inode: &str, path: &str, rss: u64, anon: u64, swap: u64) -> String {
        format!(
            "{range} {perms} 00000000 fe:00 {inode}    {path}\nSize: 64 kB\nRss: {rss} kB\n\
             Private_Dirty: 8 kB\nAnonymous: {anon} kB\nSwap: {swap} kB\nVmFlags: rd mr mw me\n"
        )
    }

    #[test]
    fn only_unwritable_private_file_mappings_without_copies_are_dropped() {
        let smaps = [
            mapping("1000-2000", "r-xp", "7", "/usr/bin/wasm-host", 4, 0, 0), // code: dropped
            mapping("2000-3000", "r--p", "7", "/usr/bin/wasm-host", 4, 0, 0), // read-only data: dropped
            mapping("3000-4000", "r--p", "7", "/usr/bin/wasm-host", 4, 4, 0), // relocated (RELRO): kept
            mapping("4000-5000", "rw-p", "7", "/usr/bin/wasm-host", 4, 0, 0), // writable: kept
            mapping("5000-6000", "r--p", "9", "/usr/lib/libm.so.6", 4, 0, 4), // a copy swapped out: kept
            mapping("6000-7000", "r--s", "9", "/usr/lib/libm.so.6", 4, 0, 0), // shared: kept
            mapping("7000-8000", "r-xp", "0", "", 4, 0, 0),                   // anonymous: kept
            mapping("8000-9000", "r-xp", "9", "/gone (deleted)", 4, 0, 0),    // deleted file: kept
            mapping("9000-a000", "r-xp", "9", "/usr/lib/libc.so.6", 0, 0, 0), // nothing resident
            mapping("a000-b000", "r-xp", "9", "/usr/lib/libc.so.6", 4, 0, 0), // dropped
            mapping("b000-c000", "r-xp", "9", "/cache/a.cwasm", 4, 0, 0),     // not wanted: kept
        ]
        .concat();
        let wanted = |path: &str| !path.ends_with(".cwasm");
        assert_eq!(
            clean_file_mappings(&smaps, wanted),
            [(0x1000, 0x2000), (0x2000, 0x3000), (0xa000, 0xb000)]
        );
    }

    #[test]
    fn the_last_mapping_counts_and_a_missing_field_keeps_nothing_out() {
        let smaps = "1000-2000 r-xp 00000000 fe:00 7 /bin/x\nRss: 8 kB\nAnonymous: 0 kB\n";
        assert_eq!(clean_file_mappings(smaps, |_| true), [(0x1000, 0x2000)]);
        // Without an Rss line it holds nothing worth dropping.
        assert_eq!(clean_file_mappings("1000-2000 r-xp 00000000 fe:00 7 /bin/x\n", |_| true), []);
    }

    #[test]
    fn shared_libraries_are_told_by_their_names() {
        for path in ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/opt/x.so"] {
            assert!(is_shared_library(path), "{path}");
        }
        for path in
            ["/cache/0a8a.cwasm", "/cache/x.so.cwasm", "/usr/bin/wasm-host", "/so/wasm-host", "/x/.sock"]
        {
            assert!(!is_shared_library(path), "{path}");
        }
    }
}
