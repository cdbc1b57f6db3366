//! The TLCP listener (GB/T 38636-2020, 国密 SSL; the `tlcp` feature): the hub's routes served over TLCP with an
//! SM2 signing certificate and an SM2 encryption certificate, from Tongsuo (built from source by `tongsuo-src`).
//! It runs beside the rustls listener, on a port of its own (`[http.tlcp] listen`), with the same router, the
//! same limits and the same graceful shutdown ([`crate::listener`]); the client certificate of a mutual TLCP
//! connection is put into each request like a TLS one, so agencies and operators bound to a certificate work
//! over either.
//!
//! Suites: `ECC-SM2-SM4-GCM-SM3` and `ECC-SM2-SM4-CBC-SM3` — ECC key exchange with the encryption certificate.
//! (The ECDHE-SM2 suites need the client's own encryption certificate, which browsers' and most clients'
//! TLCP stacks do not send; they are not offered.)

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tongsuo::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};

use crate::auth::ClientCertificate;
use crate::config::TlcpConfig;
use crate::server::ServerError;

/// The TLCP suites the listener offers, strongest first.
pub const CIPHERS: &str = "ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3";

/// A configured TLCP acceptor.
#[derive(Clone)]
pub struct TlcpAcceptor(Arc<SslAcceptor>);

impl std::fmt::Debug for TlcpAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlcpAcceptor")
    }
}

/// A TLCP connection after its handshake.
pub type TlcpStream = tokio_tongsuo::SslStream<TcpStream>;

impl TlcpAcceptor {
    /// The acceptor of `[http.tlcp]`: the two certificates and keys, and client CAs if given. Errors name the
    /// file and what is wrong, never a key's contents.
    pub fn load(config: &TlcpConfig) -> Result<Self, ServerError> {
        let bad = |what: &Path, why: String| ServerError::Tls(format!("{}: {why}", what.display()));
        for key in [&config.sign_key, &config.enc_key] {
            crate::secrets::read_private(key).map_err(|e| bad(key, e.to_string()))?;
        }
        let mut b = SslAcceptor::mozilla_intermediate(SslMethod::ntls_server())
            .map_err(|e| ServerError::Tls(format!("TLCP: {e}")))?;
        b.enable_ntls();
        b.set_sign_certificate_file(&config.sign_cert, SslFiletype::PEM)
            .map_err(|e| {
                bad(
                    &config.sign_cert,
                    format!("not an SM2 signing certificate ({e})"),
                )
            })?;
        b.set_sign_private_key_file(&config.sign_key, SslFiletype::PEM)
            .map_err(|e| {
                bad(
                    &config.sign_key,
                    format!("not the signing certificate's key ({e})"),
                )
            })?;
        b.set_enc_certificate_file(&config.enc_cert, SslFiletype::PEM)
            .map_err(|e| {
                bad(
                    &config.enc_cert,
                    format!("not an SM2 encryption certificate ({e})"),
                )
            })?;
        b.set_enc_private_key_file(&config.enc_key, SslFiletype::PEM)
            .map_err(|e| {
                bad(
                    &config.enc_key,
                    format!("not the encryption certificate's key ({e})"),
                )
            })?;
        b.set_cipher_list(CIPHERS)
            .map_err(|e| ServerError::Tls(format!("TLCP suites: {e}")))?;
        if let Some(ca) = &config.client_ca {
            b.set_ca_file(ca)
                .map_err(|e| bad(ca, format!("not a PEM CA file ({e})")))?;
            // Presenting a certificate is optional; one that is presented must chain to these CAs.
            b.set_verify(SslVerifyMode::PEER);
        }
        Ok(Self(Arc::new(b.build())))
    }

    /// Runs the TLCP handshake on `tcp`; the stream and the client certificate's fingerprint, if it sent one.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlcpStream, Option<ClientCertificate>), String> {
        let ssl = Ssl::new(self.0.context()).map_err(|e| e.to_string())?;
        let mut stream = tokio_tongsuo::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
        std::pin::Pin::new(&mut stream)
            .accept()
            .await
            .map_err(|e| e.to_string())?;
        let certificate = stream
            .ssl()
            .peer_certificate()
            .and_then(|c| c.to_der().ok())
            .map(|der| ClientCertificate::of_der(&der));
        Ok((stream, certificate))
    }
}
