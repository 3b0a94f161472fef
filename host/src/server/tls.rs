//! HTTPS: turns an accepted TCP stream into a TLS stream (rustls with the ring provider, ALPN
//! `http/1.1`, a handshake deadline), and keeps the certificate current: the PEM pair is
//! reloaded when either file changes (or on SIGHUP) and swapped in for new handshakes, while
//! connections already established keep the session they have. A pair that fails to load keeps
//! the previous one serving, and the reason is logged.
//!
//! Owns certificate loading and rotation; hands the TLS stream to `conn::serve`, which never
//! learns it is TLS. Must not depend on `conn`, `http` framing or the runtime (it writes one
//! canned answer for plain HTTP sent to the TLS port).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher as _};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config;

/// The only application protocol advertised with ALPN: the host speaks HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How long the certificate files must stay quiet after a change before the pair is reloaded:
/// `cp cert.pem … && cp key.pem …` writes two files; reloading between them would only log a
/// mismatch (and keep the old pair) before the next event fixes it.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// The answer to a plain HTTP request sent to the TLS port (as nginx does), so a user who typed
/// `http://` learns why instead of seeing a reset.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
content-length: 41\r\nconnection: close\r\n\r\nthis port speaks https, not plain http.\r\n";

/// A certificate or key that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read the TLS {what} {}: {source}", .path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file holds no usable PEM section of the expected kind.
    #[error("the TLS {what} {} holds no {expected}: {reason}", .path.display())]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was looked for.
        expected: &'static str,
        /// The PEM parser's reason.
        reason: String,
    },
    /// The key cannot be used, or does not belong to the certificate.
    #[error("the TLS key {} cannot be used with the certificate {}: {reason}", .key.display(), .cert.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        reason: rustls::Error,
    },
    /// rustls refused the configuration (no usable protocol versions).
    #[error("cannot configure TLS: {0}")]
    Config(rustls::Error),
}

/// Why a connection did not become a TLS stream (logged at debug level: scanners and typos
/// are common and not the server's problem).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish its handshake within the deadline.
    #[error("tls handshake not completed in time")]
    TimedOut,
    /// The client sent plain HTTP; it was told so.
    #[error("plain http sent to the tls port")]
    PlainHttp,
    /// The handshake failed (not TLS, no common cipher or protocol, the client gave up).
    #[error("tls handshake failed: {0}")]
    Failed(io::Error),
}

/// The certificate new handshakes get; swapped on reload.
#[derive(Debug)]
struct RotatingCert {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A loaded pair and the hash of the files' bytes it came from.
struct LoadedPair {
    key: CertifiedKey,
    digest: [u8; 32],
}

/// The TLS side of the listener: the acceptor and the certificate it presents.
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    certs: Arc<RotatingCert>,
    files: config::Tls,
    provider: Arc<CryptoProvider>,
    /// The hash of the pair serving now, so a change event that changed nothing is ignored.
    digest: std::sync::Mutex<[u8; 32]>,
}

impl Tls {
    /// Loads the certificate and key named in `files` and builds the server configuration.
    ///
    /// # Errors
    ///
    /// A [`TlsError`] naming the file that is missing, unreadable, not PEM, or a key that does
    /// not match the certificate.
    pub fn load(files: &config::Tls) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(files, &provider)?;
        let certs = Arc::new(RotatingCert { current: ArcSwap::from_pointee(pair.key) });
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        server.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            certs,
            files: files.clone(),
            provider,
            digest: std::sync::Mutex::new(pair.digest),
        })
    }

    /// Runs the TLS handshake on an accepted stream, within the handshake deadline. A client
    /// that starts with a plain HTTP request line gets a short 400 saying this port speaks
    /// HTTPS; anything else that is not TLS is closed.
    ///
    /// # Errors
    ///
    /// A [`HandshakeError`]; the stream is closed then.
    pub async fn handshake(&self, stream: TcpStream) -> Result<TlsStream<TcpStream>, HandshakeError> {
        tokio::time::timeout(self.files.handshake_timeout, self.handshake_now(stream))
            .await
            .unwrap_or(Err(HandshakeError::TimedOut))
    }

    async fn handshake_now(&self, mut stream: TcpStream) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let mut first = [0u8; 1];
        // A TLS connection starts with a handshake record (0x16); an HTTP request line with a
        // method token (upper-case letters).
        if stream.peek(&mut first).await.map_err(HandshakeError::Failed)? == 1
            && first[0].is_ascii_uppercase()
        {
            let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return Err(HandshakeError::PlainHttp);
        }
        self.acceptor.accept(stream).await.map_err(HandshakeError::Failed)
    }

    /// Reloads the pair from its files. `Ok(true)` if a new pair now serves, `Ok(false)` if
    /// the files hold the pair already serving. Blocks on the file system.
    ///
    /// # Errors
    ///
    /// A [`TlsError`]; the previous pair keeps serving.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let pair = load_pair(&self.files, &self.provider)?;
        let mut digest = self.digest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *digest == pair.digest {
            return Ok(false);
        }
        self.certs.current.store(Arc::new(pair.key));
        *digest = pair.digest;
        Ok(true)
    }

    /// Starts watching the files' folders (not the files, so an atomic `mv` or a symlink swap
    /// of Kubernetes secrets is seen too) and SIGHUP. Call before announcing readiness, so no
    /// change made after it is missed. Must run inside a tokio runtime.
    pub fn watcher(&self) -> CertWatcher {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = match self.watch_folders(tx) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!("cannot watch the TLS certificate files ({e}); they are reloaded on SIGHUP only");
                None
            }
        };
        #[cfg(unix)]
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        CertWatcher {
            _watcher: watcher,
            events,
            #[cfg(unix)]
            hangup,
        }
    }

    /// Reloads the pair whenever `watcher` reports a change (debounced by [`RELOAD_DEBOUNCE`])
    /// or SIGHUP arrives, until `shutdown`.
    pub async fn watch(self: Arc<Self>, watcher: CertWatcher, shutdown: CancellationToken) {
        let CertWatcher {
            _watcher,
            mut events,
            #[cfg(unix)]
            mut hangup,
        } = watcher;
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<Option<()>>();
            tokio::select! {
                e = events.recv() => {
                    if e.is_none() {
                        return;
                    }
                    // Let a burst of writes (cert, then key) settle.
                    while let Ok(Some(())) = tokio::time::timeout(RELOAD_DEBOUNCE, events.recv()).await {}
                }
                _ = hup => {}
                () = shutdown.cancelled() => return,
            }
            let tls = self.clone();
            match tokio::task::spawn_blocking(move || tls.reload()).await {
                Ok(Ok(true)) => info!(cert = %self.files.cert.display(), "TLS certificate reloaded"),
                Ok(Ok(false)) => debug!("TLS certificate files unchanged"),
                Ok(Err(e)) => warn!("{e}; keeping the previous certificate"),
                Err(e) => warn!("TLS certificate reload failed: {e}; keeping the previous certificate"),
            }
        }
    }

    fn watch_folders(&self, tx: mpsc::UnboundedSender<()>) -> notify::Result<notify::RecommendedWatcher> {
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if res.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })?;
        let mut folders: Vec<PathBuf> =
            [&self.files.cert, &self.files.key].iter().map(|p| folder_of(p)).collect();
        folders.dedup();
        for folder in folders {
            watcher.watch(&folder, RecursiveMode::NonRecursive)?;
        }
        Ok(watcher)
    }
}

/// A live watch on the certificate files' folders and on SIGHUP; see [`Tls::watcher`].
pub struct CertWatcher {
    _watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<()>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

/// The folder a file is in (`.` for a bare name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads and checks a certificate chain and its key.
fn load_pair(files: &config::Tls, provider: &CryptoProvider) -> Result<LoadedPair, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_path_buf(), source })
    };
    let cert_pem = read("certificate", &files.cert)?;
    let key_pem = read("key", &files.key)?;
    let pem_error = |what, path: &Path, expected, reason: String| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        expected,
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificate", &files.cert, "certificate", e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            "certificate",
            &files.cert,
            "certificate",
            "no `BEGIN CERTIFICATE` section found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_error("key", &files.key, "private key", e.to_string()))?;
    let key = CertifiedKey::from_der(chain, key, provider).map_err(|reason| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason,
    })?;
    let mut hash = Sha256::new();
    hash.update(&cert_pem);
    hash.update([0]);
    hash.update(&key_pem);
    Ok(LoadedPair { key, digest: hash.finalize().into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> config::Tls {
        config::Tls {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            handshake_timeout: config::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }

    fn write_pair(dir: &Path) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("cert.pem"), pair.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), pair.signing_key.serialize_pem()).unwrap();
        pair
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let e = Tls::load(&f).err().unwrap().to_string();
        assert!(e.contains("cert.pem") && e.contains("cannot read"), "{e}");
        write_pair(dir.path());
        std::fs::write(&f.cert, b"not pem").unwrap();
        let e = Tls::load(&f).err().unwrap().to_string();
        assert!(e.contains("cert.pem") && e.contains("holds no certificate"), "{e}");
        write_pair(dir.path());
        std::fs::write(&f.key, b"junk").unwrap();
        let e = Tls::load(&f).err().unwrap().to_string();
        assert!(e.contains("key.pem") && e.contains("private key"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        write_pair(dir.path());
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&f.key, other.serialize_pem()).unwrap();
        let e = Tls::load(&f).err().unwrap().to_string();
        assert!(e.contains("cannot be used with the certificate"), "{e}");
    }

    #[test]
    fn reload_swaps_only_a_changed_valid_pair() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let first = write_pair(dir.path());
        let tls = Tls::load(&f).unwrap();
        let serving = || tls.certs.current.load().cert[0].to_vec();
        assert_eq!(serving(), first.cert.der().to_vec());
        assert!(!tls.reload().unwrap(), "unchanged files change nothing");
        std::fs::write(&f.cert, b"broken").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(serving(), first.cert.der().to_vec(), "a broken pair keeps the old one");
        let second = write_pair(dir.path());
        assert!(tls.reload().unwrap());
        assert_eq!(serving(), second.cert.der().to_vec());
    }
}
