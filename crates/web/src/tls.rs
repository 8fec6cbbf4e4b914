//! HTTPS: a certificate from the configuration, or a self-signed one made on first start and
//! kept in the state directory (`tls/cert.pem`, `tls/key.pem` mode 0600), so browsers can pin
//! it once. rustls with the ring provider; HTTP/1.1.

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the certificate comes from.
#[derive(Clone, Debug)]
pub enum TlsSource {
    /// PEM files from the configuration (`[daemon] tls_cert`, `tls_key`).
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate in `dir` (made if missing), for these extra names.
    SelfSigned { dir: PathBuf, names: Vec<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {detail}")]
    File { path: PathBuf, detail: String },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS setup: {0}")]
    Config(String),
}

/// Open connections at most.
const MAX_CONNECTIONS: usize = 256;

/// The peer address of a connection, for rate limiting and the audit.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

fn file_err(path: &Path, detail: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// The certificate and key files of the self-signed certificate in `dir`, made if missing.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::symlink_metadata(&key)
            .map_err(|e| file_err(&key, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(file_err(
                &key,
                format!(
                    "the private key is readable by others (mode {:o}); chmod 600 it, or delete both files to make a new pair",
                    mode & 0o777
                ),
            ));
        }
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let mut all = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    for n in names {
        if !all.contains(n) {
            all.push(n.clone());
        }
    }
    let made =
        rcgen::generate_simple_self_signed(all).map_err(|e| TlsError::Generate(e.to_string()))?;
    // The key is written first, owner-only, then the certificate: a crash in between leaves
    // no certificate, so the pair is made again.
    let tmp = dir.join(".key.pem.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Left over from an interrupted start (never followed if it is a link: create_new).
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_err(&tmp, e)),
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| file_err(&tmp, e))?;
        f.write_all(made.signing_key.serialize_pem().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| file_err(&tmp, e))?;
    }
    std::fs::rename(&tmp, &key).map_err(|e| file_err(&key, e))?;
    let tmp = dir.join(".cert.pem.tmp");
    std::fs::write(&tmp, made.cert.pem()).map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, &cert).map_err(|e| file_err(&cert, e))?;
    tracing::info!(cert = %cert.display(), "made a self-signed TLS certificate");
    Ok((cert, key))
}

/// The rustls configuration for `source`.
pub fn server_config(source: &TlsSource) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned { dir, names } => ensure_self_signed(dir, names)?,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| file_err(&cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&cert, e))?;
    if certs.is_empty() {
        return Err(file_err(&cert, "no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| file_err(&key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| file_err(&key, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accept TLS connections forever, each served on a task of its own.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    // Connections beyond this many are closed at once, so that a flood cannot take every file
    // descriptor the daemon's jobs need.
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("web server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "web server: {MAX_CONNECTIONS} connections are open; closing this one");
            drop(tcp);
            continue;
        };
        let acceptor = acceptor.clone();
        let svc = router.clone().layer(axum::Extension(ClientAddr(peer)));
        tokio::spawn(async move {
            let _permit = permit;
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
