//! TLCP (GB/T 38636-2020) with Tongsuo — the `tlcp` feature, which `tests/run.sh` turns on: the hub serves its
//! API over TLCP with an SM2 signing and an SM2 encryption certificate; a TLCP client (Tongsuo's NTLS) that
//! trusts the CA completes the handshake with an SM2/SM4/SM3 suite and gets answers; the same client without the
//! CA is refused, and a TLS client gets no answer on the TLCP port.
#![cfg(feature = "tlcp")]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tongsuo::asn1::Asn1Time;
use tongsuo::bn::{BigNum, MsbOption};
use tongsuo::ec::{EcGroup, EcKey};
use tongsuo::hash::MessageDigest;
use tongsuo::nid::Nid;
use tongsuo::pkey::{PKey, Private};
use tongsuo::ssl::{SslConnector, SslMethod, SslVerifyMode};
use tongsuo::x509::extension::{BasicConstraints, KeyUsage};
use tongsuo::x509::{X509NameBuilder, X509};
use unsilo_hub::config::{Config, TlcpConfig};
use unsilo_hub::server::Hub;
use unsilo_hub::tlcp::TlcpAcceptor;

fn sm2_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::SM2).expect("SM2 curve");
    PKey::from_ec_key(EcKey::generate(&group).expect("key")).expect("pkey")
}

/// A certificate for `key`, signed with SM3/SM2 by `issuer` (self-signed without one).
fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    usage: &mut KeyUsage,
) -> X509 {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_nid(Nid::COMMONNAME, cn).expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let mut serial = BigNum::new().expect("bn");
    serial
        .rand(64, MsbOption::MAYBE_ZERO, false)
        .expect("serial");
    b.set_serial_number(&serial.to_asn1_integer().expect("int"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .expect("issuer");
    b.set_pubkey(key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("time"))
        .expect("not after");
    if issuer.is_none() {
        b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
            .expect("bc");
    }
    b.append_extension(usage.build().expect("usage"))
        .expect("usage");
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sm3())
        .expect("sign");
    b.build()
}

/// Writes a CA and the hub's signing and encryption certificates (SM2); returns the configuration and the CA.
fn write_certificates(dir: &std::path::Path) -> (TlcpConfig, X509) {
    let ca_key = sm2_key();
    let ca = certificate(
        "unsilo test SM2 CA",
        &ca_key,
        None,
        KeyUsage::new().key_cert_sign().crl_sign(),
    );
    let sign_key = sm2_key();
    let sign = certificate(
        "127.0.0.1",
        &sign_key,
        Some((&ca, &ca_key)),
        KeyUsage::new().digital_signature(),
    );
    let enc_key = sm2_key();
    let enc = certificate(
        "127.0.0.1",
        &enc_key,
        Some((&ca, &ca_key)),
        KeyUsage::new()
            .key_encipherment()
            .data_encipherment()
            .key_agreement(),
    );
    let write = |name: &str, bytes: Vec<u8>, private: bool| {
        let path = dir.join(name);
        if private {
            unsilo_hub::secrets::write_private(&path, &bytes).expect("write key");
        } else {
            std::fs::write(&path, bytes).expect("write cert");
        }
        path
    };
    let config = TlcpConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        sign_cert: write("sign.crt", sign.to_pem().expect("pem"), false),
        sign_key: write(
            "sign.key",
            sign_key.private_key_to_pem_pkcs8().expect("pem"),
            true,
        ),
        enc_cert: write("enc.crt", enc.to_pem().expect("pem"), false),
        enc_key: write(
            "enc.key",
            enc_key.private_key_to_pem_pkcs8().expect("pem"),
            true,
        ),
        client_ca: None,
    };
    (config, ca)
}

/// A TLCP request over a fresh connection: the negotiated protocol and suite, and the raw HTTP answer.
async fn tlcp_get(
    addr: std::net::SocketAddr,
    ca: Option<&X509>,
    request: &str,
) -> Result<(String, String, String), String> {
    let mut b = SslConnector::builder(SslMethod::ntls_client()).map_err(|e| e.to_string())?;
    b.enable_ntls();
    b.set_cipher_list(unsilo_hub::tlcp::CIPHERS)
        .map_err(|e| e.to_string())?;
    if let Some(ca) = ca {
        b.cert_store_mut()
            .add_cert(ca.clone())
            .map_err(|e| e.to_string())?;
    }
    b.set_verify(SslVerifyMode::PEER);
    let connector = b.build();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut configured = connector.configure().map_err(|e| e.to_string())?;
    configured.set_verify_hostname(false);
    let ssl = configured
        .into_ssl("127.0.0.1")
        .map_err(|e| e.to_string())?;
    let mut stream = tokio_tongsuo::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let version = stream.ssl().version_str().to_owned();
    let cipher = stream
        .ssl()
        .current_cipher()
        .map(|c| c.name().to_owned())
        .unwrap_or_default();
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    Ok((
        version,
        cipher,
        String::from_utf8_lossy(&answer).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tlcp_with_sm2_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tlcp, ca) = write_certificates(dir.path());
    let acceptor = TlcpAcceptor::load(&tlcp).expect("the certificate pair loads");
    let mut config = Config::default();
    config.bus.embedded.data_dir = dir.path().join("data");
    let hub = Hub::start(&config).await.expect("hub");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = hub.clone();
    let server = tokio::spawn(async move {
        serving
            .serve_tlcp(listener, acceptor, async {
                let _ = stopped.await;
            })
            .await
    });

    let (version, cipher, answer) = tlcp_get(
        addr,
        Some(&ca),
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("TLCP handshake");
    assert_eq!(version, "NTLSv1.1", "TLCP (GB/T 38636) is NTLS 1.1");
    assert!(
        cipher.contains("SM2") && cipher.contains("SM4") && cipher.contains("SM3"),
        "{cipher}"
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    // Default deny holds over TLCP as over TLS.
    let (_, _, answer) = tlcp_get(
        addr,
        Some(&ca),
        "GET /admin/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("TLCP handshake");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // A client that does not trust the CA refuses the hub's certificates.
    assert!(
        tlcp_get(addr, None, "GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .is_err(),
        "an untrusted TLCP server must be refused"
    );
    // A TLS client gets no answer on the TLCP port.
    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(format!("https://{addr}/healthz"))
        .send()
        .await;
    assert!(tls.is_err(), "TLS on the TLCP port: {tls:?}");

    let _ = stop.send(());
    server.await.expect("join").expect("served");
    hub.shutdown().await.expect("shutdown");
}

#[test]
fn an_unusable_certificate_pair_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut tlcp, _) = write_certificates(dir.path());
    std::fs::write(&tlcp.enc_cert, "not a certificate").expect("write");
    let err = TlcpAcceptor::load(&tlcp).expect_err("refused").to_string();
    assert!(err.contains("enc.crt"), "{err}");
    tlcp.enc_cert = dir.path().join("missing.crt");
    let err = TlcpAcceptor::load(&tlcp).expect_err("refused").to_string();
    assert!(err.contains("missing.crt"), "{err}");
}
