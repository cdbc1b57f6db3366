//! The link CA: the certificate authority with which a hub issues the client certificates of the nodes that
//! link to it (edges in departments, member hubs below it), when they enrol with a one-time code.
//!
//! The CA's key is made on the first start (ECDSA P-256, from `ring` through `rcgen`) and kept beside the
//! deployment secret (`link-ca.key`, 0600; `link-ca.pem`). The hub's TLS listener trusts it for client
//! certificates in addition to `[http.tls] client_ca`; the hub then binds each node to its own certificate's
//! SHA-256 fingerprint, so a certificate the CA issued to one node never authenticates another.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// How long an issued node certificate is valid.
pub const NODE_CERTIFICATE_DAYS: i64 = 825;

/// Why the link CA could not be loaded or could not issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The key or certificate file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rcgen refused.
    #[error("{0}")]
    Certificate(String),
    /// The certificate signing request is not usable.
    #[error("the certificate signing request is not usable: {0}")]
    Request(String),
}

/// The hub's link CA.
pub struct LinkCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl std::fmt::Debug for LinkCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCa").finish_non_exhaustive()
    }
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> CaError {
    CaError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl LinkCa {
    /// The CA kept in `dir` (made there on the first call) for the hub `hub`.
    pub fn load_or_create(dir: &Path, hub: &str) -> Result<Self, CaError> {
        let key_path: PathBuf = dir.join("link-ca.key");
        let cert_path: PathBuf = dir.join("link-ca.pem");
        if key_path.exists() && cert_path.exists() {
            let key_pem =
                crate::secrets::read_private(&key_path).map_err(|e| file_error(&key_path, e))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| file_error(&key_path, e))?;
            let ca_pem =
                std::fs::read_to_string(&cert_path).map_err(|e| file_error(&cert_path, e))?;
            let issuer =
                Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| file_error(&cert_path, e))?;
            return Ok(Self { issuer, ca_pem });
        }
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        let key = KeyPair::generate().map_err(|e| CaError::Certificate(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("unsilo link CA of {hub}"));
        name.push(DnType::OrganizationName, "unsilo");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(|e| CaError::Certificate(e.to_string()))?;
        crate::secrets::write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(|e| file_error(&key_path, e))?;
        std::fs::write(&cert_path, cert.pem()).map_err(|e| file_error(&cert_path, e))?;
        let ca_pem = cert.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            ca_pem,
        })
    }

    /// The CA's certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA's certificate, DER, for the TLS listener's trust store.
    pub fn ca_der(&self) -> Result<Vec<u8>, CaError> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map(|c| c.to_vec())
            .map_err(|e| CaError::Certificate(e.to_string()))
    }

    /// A client certificate for the node `node`, for the key of its signing request: the subject is the
    /// hub's choice (the node's id), never the request's; client authentication only.
    pub fn issue(&self, node: &str, csr_pem: &str) -> Result<(String, String), CaError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Request(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, node);
        name.push(DnType::OrganizationName, "unsilo link");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after =
            time::OffsetDateTime::now_utc() + time::Duration::days(NODE_CERTIFICATE_DAYS);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|e| CaError::Certificate(e.to_string()))?;
        let fingerprint = crate::auth::ClientCertificate::of_der(cert.der()).0;
        Ok((cert.pem(), fingerprint))
    }
}
