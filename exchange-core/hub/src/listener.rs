//! The connection layer under every route: accepts TCP connections, speaks TLS (rustls) with optional client
//! certificates, bounds what a client may make the hub wait for or hold, and shuts down gracefully.
//!
//! - **Per-connection facts into each request**: the peer address ([`ConnectInfo`]) and, on a TLS connection
//!   that presented one, the client certificate's fingerprint ([`ClientCertificate`]) — which the
//!   authentication layer ([`crate::auth`]) checks against agencies bound to a certificate.
//! - **Limits a client cannot stretch**: at most `max_connections` connections at once (more are closed at
//!   accept); a connection's first byte, the TLS handshake and every request head must arrive within
//!   `header_read_timeout` (idle and slow-loris clients are dropped — a connection that never sends a byte
//!   included); a request head larger than `max_header_bytes` is answered `431` (HTTP/1.1) or refused by
//!   HTTP/2's header-list limit.
//! - **Graceful shutdown**: when the shutdown future completes the listener closes, in-flight requests may finish
//!   for up to `drain_timeout`, then the remaining connections are dropped.
//!
//! One loop for plain HTTP, HTTPS and — with the `tlcp` feature — TLCP (the `tlcp` module), so all get the same
//! limits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::Service;
use tracing::{debug, warn};

use crate::auth::ClientCertificate;

/// How connections are served.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// TLS settings; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Longest time for a TLS handshake, and for a request's head to arrive.
    pub header_read_timeout: Duration,
    /// How long in-flight requests may finish after shutdown was asked for.
    pub drain_timeout: Duration,
    /// Most connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// TLCP instead of TLS (the `tlcp` feature): connections are TLCP handshakes with the SM2 certificate pair.
    #[cfg(feature = "tlcp")]
    pub tlcp: Option<crate::tlcp::TlcpAcceptor>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            tls: None,
            max_header_bytes: 32 * 1024,
            header_read_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_connections: 4096,
            #[cfg(feature = "tlcp")]
            tlcp: None,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ListenerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    #[cfg(feature = "tlcp")]
    let tlcp = options.tlcp.clone();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(%peer, max = options.max_connections, "Connection refused: the hub holds its most connections ([limits] max_connections).");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        #[cfg(feature = "tlcp")]
        let tlcp = tlcp.clone();
        let handshake_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            // The first byte must come within the header timeout: before it the protocol is not known yet, and
            // no HTTP timer runs (an idle connection would be held forever).
            let mut first = [0u8; 1];
            match tokio::time::timeout(handshake_timeout, tcp.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return,
                Err(_) => {
                    debug!(%peer, "Connection closed: nothing was sent within the header timeout.");
                    return;
                }
            }
            #[cfg(feature = "tlcp")]
            if let Some(tlcp) = tlcp {
                let Some((stream, certificate)) =
                    handshake(peer, "TLCP", handshake_timeout, tlcp.accept(tcp)).await
                else {
                    return;
                };
                let conn = serve_connection(&builder, TokioIo::new(stream), app, peer, certificate);
                if let Err(e) = watcher.watch(conn).await {
                    debug!(%peer, error = %e, "Connection ended with an error.");
                }
                return;
            }
            match acceptor {
                None => {
                    let conn = serve_connection(&builder, TokioIo::new(tcp), app, peer, None);
                    if let Err(e) = watcher.watch(conn).await {
                        debug!(%peer, error = %e, "Connection ended with an error.");
                    }
                }
                Some(acceptor) => {
                    let Some(tls) =
                        handshake(peer, "TLS", handshake_timeout, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| ClientCertificate::of_der(leaf.as_ref()));
                    let conn =
                        serve_connection(&builder, TokioIo::new(tls), app, peer, certificate);
                    if let Err(e) = watcher.watch(conn).await {
                        debug!(%peer, error = %e, "Connection ended with an error.");
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.drain_timeout) => {
            warn!(timeout = ?options.drain_timeout, "Connections still open after the drain timeout; closing them.");
        }
    }
    Ok(())
}

/// A TLS or TLCP handshake bounded by `timeout`; `None` (logged at debug) when it fails or takes too long.
async fn handshake<T, E: std::fmt::Display>(
    peer: SocketAddr,
    protocol: &str,
    timeout: Duration,
    accept: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(done)) => Some(done),
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "{protocol} handshake failed.");
            None
        }
        Err(_) => {
            debug!(%peer, "{protocol} handshake timed out.");
            None
        }
    }
}

/// One connection, with the connection's facts put into every request.
fn serve_connection<I>(
    builder: &Builder<TokioExecutor>,
    io: TokioIo<I>,
    app: Router,
    peer: SocketAddr,
    certificate: Option<ClientCertificate>,
) -> impl hyper_util::server::graceful::GracefulConnection<
    Error = Box<dyn std::error::Error + Send + Sync>,
>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(c) = &certificate {
            request.extensions_mut().insert(c.clone());
        }
        let mut app = app.clone();
        async move { app.call(request.map(axum::body::Body::new)).await }
    });
    builder
        .serve_connection_with_upgrades(io, service)
        .into_owned()
}
