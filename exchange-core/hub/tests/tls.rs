//! HTTPS with rustls: the hub serves its API over TLS with the configured certificate, a client that trusts it
//! gets answers, plain HTTP to the TLS port gets none, and an unusable key file is refused naming the file.

use std::time::Duration;

use tokio::net::TcpListener;
use unsilo_hub::config::{Config, TlsConfig};
use unsilo_hub::server::{self, Hub};

fn write_self_signed(dir: &std::path::Path) -> (TlsConfig, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("generate certificate");
    let cert_pem = certified.cert.pem();
    let cert = dir.join("hub.crt");
    let key = dir.join("hub.key");
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    // The hub refuses a private key other users can read.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    (
        TlsConfig {
            cert,
            key,
            client_ca: None,
        },
        cert_pem,
    )
}

#[tokio::test]
async fn the_api_is_served_over_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tls, cert_pem) = write_self_signed(dir.path());
    let server_tls = server::load_tls(&tls).expect("load certificate and key");

    let mut config = Config::default();
    config.bus.embedded.data_dir = dir.path().join("data");
    let hub = Hub::start(&config).await.expect("hub");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        hub.serve_with(listener, Some(server_tls), async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("cert"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let r = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("https request");
    assert_eq!(r.status().as_u16(), 200);
    // Over TLS too, the registry answers no anonymous caller.
    let r = client
        .get(format!("https://localhost:{port}/subjects"))
        .send()
        .await
        .expect("https request");
    assert_eq!(r.status().as_u16(), 401);

    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert!(untrusting
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .is_err());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = untrusting
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("response").status().is_success());

    let _ = stop.send(());
    task.await.expect("server task");
}

#[test]
fn an_unusable_key_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut tls, _) = write_self_signed(dir.path());
    let bad = dir.path().join("broken.key");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    tls.key = bad;
    let err = server::load_tls(&tls).expect_err("must fail").to_string();
    assert!(err.contains("broken.key"), "{err}");
    tls.cert = dir.path().join("missing.crt");
    let err = server::load_tls(&tls).expect_err("must fail").to_string();
    assert!(err.contains("missing.crt"), "{err}");
}
