//! Compiled handler code on disk, mapped into the process from its file.
//!
//! wasmtime's own cache (the `cache` feature) reads an entry into memory, decompresses it and
//! copies the code into anonymous pages: every handler's compiled code was private memory of
//! the host (7.7 MiB of the 25 MiB an idle host with the examples held). This cache stores
//! the precompiled component uncompressed and loads it with [`Component::deserialize_file`],
//! which maps the file: code pages are clean page-cache pages, shared by every host on the
//! machine that maps the same entry and dropped by the kernel under memory pressure, never
//! swapped. (They still count in RSS once touched: the kernel maps 64 KiB around each fault,
//! or a whole large folio, which is why entries are written in 64 KiB pieces; loading
//! touches a component's first and last pages, its headers and wasmtime's metadata.)
//! Loading is also faster: nothing to decompress or copy (100 routes from a warm cache: 54 ms
//! to `listening` without `.eh_frame` to register, 75–89 ms with it, 113 ms with wasmtime's
//! cache).
//!
//! An entry is `<key>.cwasm`, the output of `Engine::precompile_component`, beside
//! `<key>.sum`, the SHA-256 of that file. The key is the SHA-256 of the engine's compatibility
//! hash (wasmtime's version and every setting that changes code) followed by the handler's
//! bytes. Mapping compiled code runs whatever the file holds, so an entry is used only when
//! its digest matches (a flipped byte, a truncated or foreign file is recompiled and
//! replaced) and wasmtime's own header checks pass. Entries are written to a temporary file
//! and renamed into place, so a reader (another host sharing the directory) sees an old entry
//! or a whole new one, never half of one; and no file is ever modified in place, which is
//! what keeps a mapping valid. The directory keeps the [`MAX_ENTRIES`] most recently used
//! entries within [`MAX_BYTES`]: older ones are removed when a new one is written.
//!
//! Called from `Runtime::load` only, off the request path (start-up, reloads).

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash as _, Hasher as _};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tracing::{debug, warn};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Entries kept: a few hundred handlers, with room for the versions a dev loop writes.
pub const MAX_ENTRIES: usize = 512;

/// Bytes kept (entries are a few hundred KiB to a few MiB each).
pub const MAX_BYTES: u64 = 1 << 30;

/// A temporary file older than this was left by a host that died mid-write.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// The size of the writes an entry is stored with (the kernel's fault-around window).
const WRITE_PIECE: usize = 64 << 10;

const CODE: &str = "cwasm";
const SUM: &str = "sum";
const TEMP: &str = "tmp";

/// A directory of compiled components, keyed by engine settings and handler bytes.
pub struct CodeCache {
    dir: PathBuf,
    /// SHA-256 state after the engine's compatibility hash: each key continues it.
    engine: Sha256,
    /// The last write failed: the next failures are not warned about again (a directory that
    /// cannot be written to would otherwise warn once per handler).
    write_failing: AtomicBool,
}

/// The 32 bytes of a SHA-256 digest.
type Digest = [u8; 32];

impl CodeCache {
    /// A cache in `dir` (created if missing) for code compiled by `engine`.
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub fn open(dir: &Path, engine: &Engine) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // The compatibility hash is only `Hash`: fold it through a fixed-key hasher (stable
        // within a build of the host, which is all a key needs: a build that hashes
        // differently only misses once). wasmtime checks each entry's header against the
        // engine again when it maps it.
        let mut folded = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut folded);
        let engine = Sha256::new().chain_update(folded.finish().to_le_bytes());
        Ok(Self { dir: dir.to_path_buf(), engine, write_failing: AtomicBool::new(false) })
    }

    /// The component for `bytes`: mapped from its entry when there is a valid one, else
    /// compiled, written as a new entry and mapped from it. Returns whether it was cached.
    ///
    /// # Errors
    ///
    /// Only compilation errors (invalid wasm, an unsupported feature). A directory that
    /// cannot be written to is logged and the fresh code is used from memory.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, bool)> {
        let key = hex(&self.engine.clone().chain_update(bytes).finalize().into());
        let code = self.dir.join(format!("{key}.{CODE}"));
        match self.map_verified(engine, &code) {
            Ok(Some(component)) => return Ok((component, true)),
            Ok(None) => {}
            Err(reason) => {
                debug!(entry = %code.display(), reason = %format!("{reason:#}"), "cache entry not used; recompiling")
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        match self.write(&key, &compiled) {
            Ok(()) => {
                self.write_failing.store(false, Ordering::Relaxed);
                // SAFETY: `compiled` was just produced by `precompile_component` of this
                // engine and written whole under a name no other writer reuses for other
                // bytes (`write`); the entry's file is never modified in place.
                #[expect(unsafe_code, reason = "mapping code this engine compiled (module docs)")]
                match unsafe { Component::deserialize_file(engine, &code) } {
                    Ok(component) => {
                        prune(&self.dir, MAX_ENTRIES, MAX_BYTES);
                        return Ok((component, false));
                    }
                    Err(reason) => {
                        warn!(entry = %code.display(), reason = %format!("{reason:#}"), "cannot map a new cache entry")
                    }
                }
            }
            Err(reason) if self.write_failing.swap(true, Ordering::Relaxed) => {
                debug!(dir = %self.dir.display(), %reason, "cannot write to the compile cache")
            }
            Err(reason) => warn!(
                dir = %self.dir.display(), %reason,
                "cannot write to the compile cache; code is compiled at every start until it can (further failures are logged at debug level)"
            ),
        }
        // SAFETY: the bytes `precompile_component` of this very engine returned above.
        #[expect(unsafe_code, reason = "loading code this engine just compiled")]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, false))
    }

    /// Maps the entry at `code` if it exists and its digest matches; `Ok(None)` if absent.
    fn map_verified(&self, engine: &Engine, code: &Path) -> anyhow::Result<Option<Component>> {
        let mut file = match File::open(code) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let expected = std::fs::read(code.with_extension(SUM))?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher)?;
        anyhow::ensure!(hasher.finalize().as_slice() == expected, "its digest does not match");
        // Used now: `prune` keeps the most recently used entries.
        let _ = file.set_modified(SystemTime::now());
        // SAFETY: the file's contents are the ones `write` stored (the digest matches), i.e.
        // the output of `precompile_component` for an engine with these settings; wasmtime
        // checks its header against this engine again. Entries are replaced by rename, never
        // modified in place, so the mapping stays what was checked.
        #[expect(unsafe_code, reason = "mapping code this engine compiled (module docs)")]
        let component = unsafe { Component::deserialize_file(engine, code)? };
        Ok(Some(component))
    }

    /// Stores `compiled` as the entry `key`: both files written aside, then renamed in.
    fn write(&self, key: &str, compiled: &[u8]) -> io::Result<()> {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let digest: Digest = Sha256::digest(compiled).into();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let temp = |ext: &str| self.dir.join(format!("{key}.{ext}.{}.{serial}.{TEMP}", std::process::id()));
        let (code_temp, sum_temp) = (temp(CODE), temp(SUM));
        let written = (|| {
            let mut f = File::create(&code_temp)?;
            // In pieces no larger than what the kernel maps around a fault: one large write
            // makes the page cache hold the file in large folios, and touching one byte of
            // an entry's mapping would then map a whole folio (the whole file) into the host.
            for piece in compiled.chunks(WRITE_PIECE) {
                f.write_all(piece)?;
            }
            f.sync_data()?;
            std::fs::write(&sum_temp, digest)?;
            // The digest first: a reader between the two renames sees the new digest with
            // the old code (a mismatch, recompiled), never old code passing as new.
            std::fs::rename(&sum_temp, self.dir.join(format!("{key}.{SUM}")))?;
            std::fs::rename(&code_temp, self.dir.join(format!("{key}.{CODE}")))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&code_temp);
            let _ = std::fs::remove_file(&sum_temp);
        }
        written
    }
}

/// Removes from `dir` the least recently used entries past the `max_entries` newest or past
/// `max_bytes` in all, and temporary files a dead writer left.
fn prune(dir: &Path, max_entries: usize, max_bytes: u64) {
    let Ok(read) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let mut entries = Vec::new();
    for entry in read.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        match path.extension().and_then(|e| e.to_str()) {
            Some(CODE) => entries.push((modified, meta.len(), path)),
            Some(TEMP) if now.duration_since(modified).is_ok_and(|age| age > STALE_TEMP) => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    entries.sort_by_key(|(modified, ..)| std::cmp::Reverse(*modified)); // newest first
    let mut kept_bytes = 0u64;
    for (i, (_, len, path)) in entries.into_iter().enumerate() {
        kept_bytes = kept_bytes.saturating_add(len);
        if i >= max_entries || kept_bytes > max_bytes {
            debug!(entry = %path.display(), "compile cache: removing a least recently used entry");
            let _ = std::fs::remove_file(path.with_extension(SUM));
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Lower-case hex of a digest.
fn hex(digest: &Digest) -> String {
    use std::fmt::Write as _;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    /// An entry `name` of `len` bytes last used `age` ago, with its digest file.
    fn entry(dir: &Path, name: &str, len: usize, age: Duration) {
        let code = dir.join(format!("{name}.{CODE}"));
        std::fs::write(&code, vec![0u8; len]).unwrap();
        std::fs::write(code.with_extension(SUM), [0u8; 32]).unwrap();
        let f = File::options().write(true).open(&code).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn prune_keeps_the_most_recently_used_entries_with_their_digests() {
        let dir = tempfile::tempdir().unwrap();
        entry(dir.path(), "old", 10, Duration::from_secs(300));
        entry(dir.path(), "new", 10, Duration::from_secs(1));
        entry(dir.path(), "mid", 10, Duration::from_secs(60));
        prune(dir.path(), 2, u64::MAX);
        assert_eq!(names(dir.path()), ["mid.cwasm", "mid.sum", "new.cwasm", "new.sum"]);
    }

    #[test]
    fn prune_keeps_the_entries_within_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        entry(dir.path(), "old", 100, Duration::from_secs(300));
        entry(dir.path(), "new", 100, Duration::from_secs(1));
        prune(dir.path(), 10, 150);
        assert_eq!(names(dir.path()), ["new.cwasm", "new.sum"]);
    }

    #[test]
    fn prune_removes_only_stale_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, age) in [("dead.cwasm.1.0.tmp", STALE_TEMP * 2), ("writing.cwasm.2.0.tmp", Duration::ZERO)]
        {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            File::options().write(true).open(&path).unwrap().set_modified(SystemTime::now() - age).unwrap();
        }
        prune(dir.path(), 10, u64::MAX);
        assert_eq!(names(dir.path()), ["writing.cwasm.2.0.tmp"]);
    }
}
