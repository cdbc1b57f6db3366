use super::signing::*;
use super::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unsilo_schemas::crypto::Suite;

/// HMAC-SM3("Jefe", `1700000000.{"a":1}`), from OpenSSL.
const GM_VECTOR: &str = "9e607ca7d5277a1c4ce4ce07abaa59116ebeeb3392c016888a8d7c45b7c443b2";
use rand::rngs::StdRng;
use rand::SeedableRng;

// ---------- signing ----------

#[test]
fn sign_covers_timestamp_dot_body_and_names_its_algorithm() {
    let signature = sign(Suite::International, b"Jefe", 1_700_000_000, br#"{"a":1}"#);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
    mac.update(br#"1700000000.{"a":1}"#);
    assert_eq!(
        signature,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );
    // HMAC-SM3 under gm, labelled so: checked against OpenSSL
    // (`printf %s '1700000000.{"a":1}' | openssl mac -digest SM3 -macopt key:Jefe HMAC`).
    let gm = sign(Suite::Gm, b"Jefe", 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(gm, format!("hmac-sm3={GM_VECTOR}"));
    assert!(verify_signature(
        b"Jefe",
        "1700000000",
        &gm,
        br#"{"a":1}"#,
        1_700_000_000,
        300
    ));
    let signature = sign(Suite::Gm, b"Jefe", 1_700_000_000, br#"{"a":1}"#);
    assert_ne!(
        signature,
        sign(Suite::Gm, b"Jefe", 1_700_000_001, br#"{"a":1}"#)
    );
    assert_ne!(
        signature,
        sign(Suite::Gm, b"Jefe", 1_700_000_000, br#"{"a":2}"#)
    );
    assert_ne!(
        signature,
        sign(Suite::Gm, b"jefe", 1_700_000_000, br#"{"a":1}"#)
    );
}

#[test]
fn verify_accepts_valid_and_rejects_tampering() {
    let key = b"subscription-key";
    let body = br#"{"record":"r-1"}"#;
    let ts = 1_700_000_000;
    let sig = sign(Suite::Gm, key, ts, body);
    let ts_header = ts.to_string();
    assert!(verify_signature(key, &ts_header, &sig, body, ts, 300));
    assert!(verify_signature(key, &ts_header, &sig, body, ts + 300, 300));
    assert!(verify_signature(key, &ts_header, &sig, body, ts - 300, 300));
    // Stale or from the future.
    assert!(!verify_signature(
        key,
        &ts_header,
        &sig,
        body,
        ts + 301,
        300
    ));
    assert!(!verify_signature(
        key,
        &ts_header,
        &sig,
        body,
        ts - 301,
        300
    ));
    // Tampered body, wrong key, timestamp swapped for another.
    assert!(!verify_signature(
        key,
        &ts_header,
        &sig,
        br#"{"record":"r-2"}"#,
        ts,
        300
    ));
    assert!(!verify_signature(
        b"other-key",
        &ts_header,
        &sig,
        body,
        ts,
        300
    ));
    assert!(!verify_signature(
        key,
        &(ts + 1).to_string(),
        &sig,
        body,
        ts,
        300
    ));
    // Malformed headers.
    assert!(!verify_signature(key, "soon", &sig, body, ts, 300));
    assert!(!verify_signature(key, &ts_header, &sig[3..], body, ts, 300));
    assert!(!verify_signature(key, &ts_header, "v1=zz", body, ts, 300));
    assert!(!verify_signature(key, &ts_header, "", body, ts, 300));
    assert!(!verify_signature(key, &ts_header, &sig, body, ts, -1));
    assert!(!verify_signature(
        b"",
        &ts_header,
        &sign(Suite::Gm, b"", ts, body),
        body,
        ts,
        300
    ));
    // Truncated signature.
    assert!(!verify_signature(
        key,
        &ts_header,
        &sig[..sig.len() - 2],
        body,
        ts,
        300
    ));
    // Key rotation: any listed v1 value may match.
    let rotated = format!("v1={}, {sig}", "00".repeat(32));
    assert!(verify_signature(key, &ts_header, &rotated, body, ts, 300));
    // Extreme timestamps do not overflow.
    assert!(!verify_signature(
        key,
        &i64::MIN.to_string(),
        &sig,
        body,
        i64::MAX,
        300
    ));
}

// ---------- back-off ----------

fn options_with_backoff(initial_ms: u64, max_ms: u64) -> WebhookOptions {
    WebhookOptions {
        initial_backoff: Duration::from_millis(initial_ms),
        max_backoff: Duration::from_millis(max_ms),
        ..WebhookOptions::default()
    }
}

#[test]
fn backoff_ceiling_doubles_and_caps() {
    let options = options_with_backoff(200, 30_000);
    let ceilings: Vec<u128> = (1..=10)
        .map(|a| backoff_ceiling(&options, a).as_millis())
        .collect();
    assert_eq!(
        ceilings,
        [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
    );
    assert_eq!(backoff_ceiling(&options, u32::MAX), Duration::from_secs(30));
    assert_eq!(backoff_ceiling(&options, 0), Duration::from_millis(200));
}

#[test]
fn full_jitter_stays_under_the_ceiling_and_spreads() {
    let options = options_with_backoff(200, 30_000);
    let mut rng = StdRng::seed_from_u64(7);
    for attempt in 1..=12 {
        let ceiling = backoff_ceiling(&options, attempt);
        let delays: Vec<Duration> = (0..200)
            .map(|_| retry_delay(&options, attempt, None, &mut rng))
            .collect();
        assert!(delays.iter().all(|d| *d <= ceiling));
        // Full jitter: both the lower and the upper half of the range are used.
        assert!(delays.iter().any(|d| *d < ceiling / 2));
        assert!(delays.iter().any(|d| *d > ceiling / 2));
    }
}

#[test]
fn retry_after_is_obeyed_and_capped() {
    let options = options_with_backoff(200, 30_000);
    let mut rng = StdRng::seed_from_u64(1);
    assert_eq!(
        retry_delay(&options, 1, Some(Duration::from_secs(7)), &mut rng),
        Duration::from_secs(7)
    );
    assert_eq!(
        retry_delay(&options, 1, Some(Duration::from_secs(3600)), &mut rng),
        Duration::from_secs(30)
    );
    let mut headers = HeaderMap::new();
    assert_eq!(parse_retry_after(&headers), None);
    headers.insert(RETRY_AFTER, HeaderValue::from_static(" 12 "));
    assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(12)));
    headers.insert(
        RETRY_AFTER,
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(parse_retry_after(&headers), None);
    headers.insert(RETRY_AFTER, HeaderValue::from_static("-3"));
    assert_eq!(parse_retry_after(&headers), None);
}

#[test]
fn statuses_are_classified() {
    for code in [200, 201, 202, 204, 299] {
        assert_eq!(
            classify(StatusCode::from_u16(code).unwrap()),
            StatusClass::Delivered
        );
    }
    for code in [408, 425, 429, 500, 502, 503, 504, 599] {
        assert_eq!(
            classify(StatusCode::from_u16(code).unwrap()),
            StatusClass::Retryable
        );
    }
    for code in [301, 302, 307, 400, 401, 403, 404, 409, 410, 413, 422] {
        assert_eq!(
            classify(StatusCode::from_u16(code).unwrap()),
            StatusClass::Permanent
        );
    }
}

// ---------- breaker state machine ----------

#[test]
fn breaker_opens_after_threshold_consecutive_failures() {
    let cooldown = Duration::from_secs(30);
    let t0 = Instant::now();
    let mut b = BreakerInner::default();
    assert!(!b.on_failure(false, t0, 3, cooldown));
    assert!(!b.on_failure(false, t0, 3, cooldown));
    // A success resets the count.
    b.on_success();
    assert!(!b.on_failure(false, t0, 3, cooldown));
    assert!(!b.on_failure(false, t0, 3, cooldown));
    assert_eq!(b.admit(t0), Admission::Send { probe: false });
    assert!(b.on_failure(false, t0, 3, cooldown));
    assert_eq!(b.public_state(t0), BreakerState::Open);
    assert_eq!(
        b.admit(t0 + Duration::from_secs(29)),
        Admission::WaitUntil(t0 + cooldown)
    );
    // Cooldown over: exactly one probe; others wait for it.
    let t1 = t0 + cooldown;
    assert_eq!(b.public_state(t1), BreakerState::HalfOpen);
    assert_eq!(b.admit(t1), Admission::Send { probe: true });
    assert_eq!(b.admit(t1), Admission::WaitForProbe);
    assert_eq!(b.public_state(t1), BreakerState::HalfOpen);
    // A straggler's failure does not decide; the probe's does.
    assert!(!b.on_failure(false, t1, 3, cooldown));
    assert!(b.on_failure(true, t1, 3, cooldown));
    assert_eq!(b.admit(t1), Admission::WaitUntil(t1 + cooldown));
    // Next probe succeeds: closed, everybody sends.
    let t2 = t1 + cooldown;
    assert_eq!(b.admit(t2), Admission::Send { probe: true });
    assert!(b.on_success());
    assert_eq!(b.public_state(t2), BreakerState::Closed);
    assert_eq!(b.admit(t2), Admission::Send { probe: false });
    assert_eq!(b, BreakerInner::Closed { failures: 0 });
}

#[test]
fn abandoned_probe_lets_another_delivery_probe() {
    let cooldown = Duration::from_secs(1);
    let t0 = Instant::now();
    let mut b = BreakerInner::default();
    assert!(b.on_failure(false, t0, 1, cooldown));
    let t1 = t0 + cooldown;
    assert_eq!(b.admit(t1), Admission::Send { probe: true });
    assert_eq!(b.admit(t1), Admission::WaitForProbe);
    b.on_probe_abandoned();
    assert_eq!(b.admit(t1), Admission::Send { probe: true });
}

#[test]
fn dropped_probe_permit_hands_back_the_probe() {
    let breaker = Breaker::default();
    let t0 = Instant::now();
    *lock(&breaker.state) = BreakerInner::Open { until: t0 };
    let admission = lock(&breaker.state).admit(t0);
    assert_eq!(admission, Admission::Send { probe: true });
    let permit = Permit {
        breaker: &breaker,
        probe: true,
        settled: false,
    };
    assert_eq!(lock(&breaker.state).admit(t0), Admission::WaitForProbe);
    drop(permit);
    assert_eq!(
        lock(&breaker.state).admit(t0),
        Admission::Send { probe: true }
    );
}

// ---------- options, targets, redaction ----------

#[test]
fn defaults_are_the_documented_values() {
    let o = WebhookOptions::default();
    assert_eq!(o.max_attempts, 8);
    assert_eq!(o.initial_backoff, Duration::from_millis(200));
    assert_eq!(o.max_backoff, Duration::from_secs(30));
    assert_eq!(o.request_timeout, Duration::from_secs(10));
    assert_eq!(o.breaker_threshold, 5);
    assert_eq!(o.breaker_cooldown, Duration::from_secs(30));
    assert_eq!(o.extra_root_certificates_pem, None);
    assert!(!o.allow_plain_http);
}

#[test]
fn unusable_options_are_refused_by_name() {
    let cases: Vec<(WebhookOptions, &str)> = vec![
        (
            WebhookOptions {
                max_attempts: 0,
                ..Default::default()
            },
            "max_attempts",
        ),
        (
            WebhookOptions {
                breaker_threshold: 0,
                ..Default::default()
            },
            "breaker_threshold",
        ),
        (
            WebhookOptions {
                request_timeout: Duration::ZERO,
                ..Default::default()
            },
            "request_timeout",
        ),
        (
            WebhookOptions {
                breaker_cooldown: Duration::from_secs(2 * 86_400),
                ..Default::default()
            },
            "breaker_cooldown",
        ),
    ];
    for (options, name) in cases {
        let err = WebhookClient::new(options).unwrap_err();
        assert!(matches!(err, WebhookError::InvalidOptions(_)), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = WebhookClient::new(WebhookOptions {
        extra_root_certificates_pem: Some(b"not a certificate".to_vec()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, WebhookError::InvalidRootCertificate(_)),
        "{err}"
    );
}

#[test]
fn debug_output_hides_key_and_body() {
    let target = WebhookTarget {
        url: "https://u:pw-s3cret@example.com/hook?token=tok-s3cret".into(),
        signing_key: b"top-secret-key".to_vec(),
    };
    let text = format!("{target:?}");
    assert!(!text.contains("top-secret-key"), "{text}");
    assert!(
        !text.contains(&format!("{:?}", b"top-secret-key".to_vec())),
        "{text}"
    );
    assert!(
        !text.contains("pw-s3cret") && !text.contains("tok-s3cret"),
        "{text}"
    );
    let message = WebhookMessage {
        record_id: "r-1".into(),
        subscription: "s".into(),
        body: Bytes::from_static(b"{\"citizen_id\":\"110101\"}"),
    };
    let text = format!("{message:?}");
    assert!(!text.contains("citizen_id"), "{text}");
    assert!(text.contains("r-1"), "{text}");
}

// ---------- over real HTTPS ----------

mod https {
    use super::super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap as AxumHeaderMap, StatusCode as AxumStatus};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::Router;

    const KEY: &[u8] = b"test-signing-key";
    /// Upper bound for things that must finish; only a hang or a broken implementation reaches it.
    const GUARD: Duration = Duration::from_secs(60);

    type Responder = Box<dyn Fn(usize) -> Response + Send + Sync>;

    struct Seen {
        headers: AxumHeaderMap,
        body: Bytes,
        signature_ok: bool,
    }

    struct ServerState {
        seen: Mutex<Vec<Seen>>,
        count: AtomicUsize,
        respond: Responder,
    }

    struct TestServer {
        url: String,
        state: Arc<ServerState>,
        cert_pem: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TestServer {
        fn count(&self) -> usize {
            self.state.count.load(Ordering::SeqCst)
        }

        fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
            self.state.seen.lock().unwrap()
        }

        async fn wait_for_count(&self, n: usize) {
            tokio::time::timeout(GUARD, async {
                while self.count() < n {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .expect("the server never saw the expected requests");
        }
    }

    async fn hook(
        State(state): State<Arc<ServerState>>,
        headers: AxumHeaderMap,
        body: Bytes,
    ) -> Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let signature_ok = verify_signature(
            KEY,
            &header(HEADER_TIMESTAMP),
            &header(HEADER_SIGNATURE),
            &body,
            unix_now(),
            300,
        );
        let n = {
            let mut seen = state.seen.lock().unwrap();
            seen.push(Seen {
                headers: headers.clone(),
                body,
                signature_ok,
            });
            seen.len()
        };
        state.count.store(n, Ordering::SeqCst);
        (state.respond)(n)
    }

    fn install_provider() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    fn self_signed() -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    fn router(respond: Responder) -> (Router, Arc<ServerState>) {
        let state = Arc::new(ServerState {
            seen: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            respond,
        });
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&state));
        (app, state)
    }

    async fn https_server(
        respond: impl Fn(usize) -> Response + Send + Sync + 'static,
    ) -> TestServer {
        install_provider();
        let (cert_pem, key_pem) = self_signed();
        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            cert_pem.clone().into_bytes(),
            key_pem.into_bytes(),
        )
        .await
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (app, state) = router(Box::new(respond));
        let server = axum_server::from_tcp_rustls(listener, config).unwrap();
        let task = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        TestServer {
            url: format!("https://127.0.0.1:{}/hook", addr.port()),
            state,
            cert_pem,
            task,
        }
    }

    async fn http_server(
        respond: impl Fn(usize) -> Response + Send + Sync + 'static,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (app, state) = router(Box::new(respond));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer {
            url: format!("http://127.0.0.1:{}/hook", addr.port()),
            state,
            cert_pem: String::new(),
            task,
        }
    }

    fn status(code: u16) -> Response {
        AxumStatus::from_u16(code).unwrap().into_response()
    }

    fn fast_options(server: &TestServer) -> WebhookOptions {
        WebhookOptions {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            request_timeout: Duration::from_secs(30),
            breaker_threshold: 100,
            breaker_cooldown: Duration::from_millis(5),
            extra_root_certificates_pem: Some(server.cert_pem.clone().into_bytes()),
            allow_plain_http: false,
            egress: Arc::new(EgressPolicy::new(&["127.0.0.0/8".into()]).unwrap()),
            suite: unsilo_schemas::crypto::Suite::Gm,
        }
    }

    #[tokio::test]
    async fn internal_targets_are_refused_at_every_delivery_unless_allowed() {
        let server = https_server(|_| status(200)).await;
        let (_tx, rx) = never();
        for url in [
            server.url.clone(),
            server.url.replace("127.0.0.1", "localhost"),
        ] {
            let client = WebhookClient::new(WebhookOptions {
                egress: Arc::new(EgressPolicy::default()),
                max_attempts: 1,
                ..fast_options(&server)
            })
            .unwrap();
            let target = WebhookTarget {
                url,
                signing_key: KEY.to_vec(),
            };
            let outcome = deliver(&client, &target, &rx).await.unwrap();
            let DeliveryOutcome::GaveUp { reason, .. } = outcome else {
                panic!("expected GaveUp, got {outcome:?}");
            };
            assert!(reason.contains("loopback"), "{reason}");
        }
        assert_eq!(server.count(), 0, "nothing reached the internal endpoint");
    }

    fn target(server: &TestServer) -> WebhookTarget {
        WebhookTarget {
            url: server.url.clone(),
            signing_key: KEY.to_vec(),
        }
    }

    fn message() -> WebhookMessage {
        WebhookMessage {
            record_id: "rec-0001".into(),
            subscription: "sub-health-bureau".into(),
            body: Bytes::from_static(br#"{"record_id":"rec-0001","name":"\u5f20\u4e09"}"#),
        }
    }

    fn never() -> (watch::Sender<bool>, watch::Receiver<bool>) {
        watch::channel(false)
    }

    async fn deliver(
        client: &WebhookClient,
        target: &WebhookTarget,
        cancel: &watch::Receiver<bool>,
    ) -> Result<DeliveryOutcome, WebhookError> {
        tokio::time::timeout(GUARD, client.deliver(target, &message(), cancel))
            .await
            .expect("deliver did not finish")
    }

    #[tokio::test]
    async fn delivers_signed_request_with_all_headers() {
        let server = https_server(|_| status(204)).await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 1,
                status: 204
            }
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 1);
        let request = &seen[0];
        assert!(
            request.signature_ok,
            "the server could not verify the signature"
        );
        assert_eq!(request.body, message().body);
        let h = |name: &str| {
            request
                .headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(h("content-type"), "application/json");
        assert_eq!(h("idempotency-key"), "rec-0001");
        assert_eq!(h("x-unsilo-subscription"), "sub-health-bureau");
        assert!(
            h("user-agent").starts_with("unsilo/"),
            "{}",
            h("user-agent")
        );
        assert!(h("x-unsilo-signature").starts_with("hmac-sm3="));
        let timestamp: i64 = h("x-unsilo-timestamp").parse().unwrap();
        assert!((unix_now() - timestamp).abs() < 3600);
        // The signature does not verify with another key.
        assert!(!verify_signature(
            b"another-key",
            &h("x-unsilo-timestamp"),
            &h("x-unsilo-signature"),
            &request.body,
            unix_now(),
            300
        ));
        drop(seen);
        assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
    }

    #[tokio::test]
    async fn retries_503_with_the_same_idempotency_key() {
        let server = https_server(|n| if n <= 2 { status(503) } else { status(200) }).await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 3,
                status: 200
            }
        );
        let seen = server.seen();
        assert_eq!(seen.len(), 3);
        for request in seen.iter() {
            assert_eq!(request.headers.get("idempotency-key").unwrap(), "rec-0001");
            assert!(request.signature_ok);
            assert_eq!(request.body, message().body);
        }
    }

    #[tokio::test]
    async fn retryable_statuses_408_425_429_are_retried() {
        let server = https_server(|n| match n {
            1 => status(408),
            2 => status(425),
            3 => status(429),
            _ => status(200),
        })
        .await;
        let options = WebhookOptions {
            max_attempts: 5,
            ..fast_options(&server)
        };
        let client = WebhookClient::new(options).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 4,
                status: 200
            }
        );
    }

    #[tokio::test]
    async fn always_500_gives_up_after_max_attempts() {
        let server = https_server(|_| status(500)).await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
            panic!("expected GaveUp, got {outcome:?}");
        };
        assert_eq!(attempts, 4);
        assert!(reason.contains("500"), "{reason}");
        assert_eq!(server.count(), 4);
    }

    #[tokio::test]
    async fn client_error_gives_up_at_once() {
        let server = https_server(|_| status(400)).await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
            panic!("expected GaveUp, got {outcome:?}");
        };
        assert_eq!(attempts, 1);
        assert!(reason.contains("400"), "{reason}");
        assert_eq!(server.count(), 1);
        // A permanent rejection is no breaker failure.
        assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = https_server(|_| {
            (
                AxumStatus::FOUND,
                [("location", "https://127.0.0.1:1/elsewhere")],
            )
                .into_response()
        })
        .await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
            panic!("expected GaveUp, got {outcome:?}");
        };
        assert_eq!(attempts, 1);
        assert!(reason.contains("302"), "{reason}");
    }

    #[tokio::test]
    async fn breaker_opens_sends_nothing_while_open_and_can_be_cancelled() {
        let server = https_server(|_| status(500)).await;
        let options = WebhookOptions {
            max_attempts: 50,
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(3600),
            ..fast_options(&server)
        };
        let client = WebhookClient::new(options).unwrap();
        let (tx, rx) = never();
        let task = {
            let client = client.clone();
            let target = target(&server);
            tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
        };
        server.wait_for_count(3).await;
        // The third failure opened the breaker; no fourth request may reach the server while it is open.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(client.breaker_state(&server.url), BreakerState::Open);
        assert_eq!(server.count(), 3);
        // Other deliveries to the same endpoint wait too.
        let (_tx2, rx2) = never();
        let second = {
            let client = client.clone();
            let target = target(&server);
            tokio::spawn(async move { client.deliver(&target, &message(), &rx2).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.count(), 3);
        assert!(!second.is_finished());
        second.abort();
        tx.send(true).unwrap();
        let result = tokio::time::timeout(GUARD, task).await.unwrap().unwrap();
        match result {
            Err(WebhookError::Cancelled { attempts, .. }) => assert_eq!(attempts, 3),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        assert_eq!(server.count(), 3);
    }

    #[tokio::test]
    async fn breaker_probe_success_closes_it() {
        let healthy = Arc::new(AtomicBool::new(false));
        let server = {
            let healthy = Arc::clone(&healthy);
            https_server(move |_| {
                if healthy.load(Ordering::SeqCst) {
                    status(200)
                } else {
                    status(503)
                }
            })
            .await
        };
        let options = WebhookOptions {
            max_attempts: 3,
            breaker_threshold: 2,
            breaker_cooldown: Duration::from_secs(3600),
            ..fast_options(&server)
        };
        let client = WebhookClient::new(options.clone()).unwrap();
        let (_tx, rx) = never();
        let task = {
            let client = client.clone();
            let target = target(&server);
            tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
        };
        server.wait_for_count(2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(client.breaker_state(&server.url), BreakerState::Open);
        assert_eq!(server.count(), 2);
        // Make the endpoint healthy and end the cooldown early (as if it had passed).
        healthy.store(true, Ordering::SeqCst);
        {
            let breaker = client.breaker_for(&server.url);
            *lock(&breaker.state) = BreakerInner::Open {
                until: Instant::now(),
            };
            breaker.changed.notify_waiters();
        }
        let outcome = tokio::time::timeout(GUARD, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // Two failures plus the probe: time spent waiting on the breaker used no attempt,
        // even though max_attempts is 3.
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 3,
                status: 200
            }
        );
        assert_eq!(server.count(), 3);
        assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
    }

    #[tokio::test]
    async fn breaker_failed_probe_reopens_then_later_probe_closes() {
        // Requests 1-2 open the breaker, probe 3 fails and re-opens it, probe 4 succeeds.
        let server = https_server(|n| if n <= 3 { status(500) } else { status(200) }).await;
        let options = WebhookOptions {
            max_attempts: 4,
            breaker_threshold: 2,
            breaker_cooldown: Duration::from_millis(20),
            ..fast_options(&server)
        };
        let client = WebhookClient::new(options).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 4,
                status: 200
            }
        );
        assert_eq!(server.count(), 4);
        assert_eq!(client.breaker_state(&server.url), BreakerState::Closed);
    }

    #[tokio::test]
    async fn retry_after_is_honoured() {
        let server = https_server(|n| {
            if n == 1 {
                (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "3600")]).into_response()
            } else {
                status(200)
            }
        })
        .await;
        // Without Retry-After the next attempt would come within 1 ms.
        let options = WebhookOptions {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_secs(7200),
            ..fast_options(&server)
        };
        let client = WebhookClient::new(options).unwrap();
        let (tx, rx) = never();
        let task = {
            let client = client.clone();
            let target = target(&server);
            tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
        };
        server.wait_for_count(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.count(), 1, "the retry did not wait for Retry-After");
        tx.send(true).unwrap();
        let result = tokio::time::timeout(GUARD, task).await.unwrap().unwrap();
        assert!(
            matches!(result, Err(WebhookError::Cancelled { attempts: 1, .. })),
            "{result:?}"
        );
        assert_eq!(server.count(), 1);
    }

    #[tokio::test]
    async fn retry_after_is_capped_by_max_backoff() {
        let server = https_server(|n| {
            if n == 1 {
                (AxumStatus::SERVICE_UNAVAILABLE, [("retry-after", "86400")]).into_response()
            } else {
                status(200)
            }
        })
        .await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        // Completes only if the one-day Retry-After was capped to max_backoff (5 ms).
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 2,
                status: 200
            }
        );
    }

    #[tokio::test]
    async fn plain_http_is_refused_unless_allowed() {
        let server = http_server(|_| status(200)).await;
        let mut options = fast_options(&server);
        options.extra_root_certificates_pem = None;
        let client = WebhookClient::new(options.clone()).unwrap();
        let (_tx, rx) = never();
        let secret_target = WebhookTarget {
            url: server.url.replace("http://", "http://alice:pa55word@") + "?token=t0ken",
            signing_key: KEY.to_vec(),
        };
        let err = deliver(&client, &secret_target, &rx).await.unwrap_err();
        assert!(
            matches!(err, WebhookError::PlainHttpNotAllowed { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("127.0.0.1"), "{text}");
        for secret in ["pa55word", "t0ken", "test-signing-key"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(server.count(), 0);

        let client = WebhookClient::new(WebhookOptions {
            allow_plain_http: true,
            ..options
        })
        .unwrap();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        assert_eq!(
            outcome,
            DeliveryOutcome::Delivered {
                attempts: 1,
                status: 200
            }
        );
        assert!(server.seen()[0].signature_ok);
    }

    #[tokio::test]
    async fn unusable_targets_are_errors() {
        let client = WebhookClient::new(WebhookOptions::default()).unwrap();
        let (_tx, rx) = never();
        let bad = |url: &str, key: &[u8]| WebhookTarget {
            url: url.into(),
            signing_key: key.to_vec(),
        };
        let err = deliver(&client, &bad("not a url", KEY), &rx)
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::InvalidUrl { .. }), "{err}");
        let err = deliver(&client, &bad("ftp://u:pw@example.com/x?k=v", KEY), &rx)
            .await
            .unwrap_err();
        assert!(
            matches!(err, WebhookError::UnsupportedScheme { .. }),
            "{err}"
        );
        assert!(
            !err.to_string().contains("pw") && !err.to_string().contains("k=v"),
            "{err}"
        );
        let err = deliver(&client, &bad("https://127.0.0.1:9/hook", b""), &rx)
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::EmptySigningKey { .. }), "{err}");
    }

    #[tokio::test]
    async fn untrusted_certificate_is_refused_as_tls_failure() {
        let server = https_server(|_| status(200)).await;
        // Trust a different self-signed certificate, not the server's.
        let (other_cert, _) = self_signed();
        let options = WebhookOptions {
            max_attempts: 2,
            extra_root_certificates_pem: Some(other_cert.into_bytes()),
            ..fast_options(&server)
        };
        let client = WebhookClient::new(options).unwrap();
        let (_tx, rx) = never();
        let outcome = deliver(&client, &target(&server), &rx).await.unwrap();
        let DeliveryOutcome::GaveUp { attempts, reason } = outcome else {
            panic!("expected GaveUp, got {outcome:?}");
        };
        assert_eq!(attempts, 2);
        assert!(reason.contains("TLS"), "{reason}");
        assert_eq!(
            server.count(),
            0,
            "no request may pass an untrusted TLS handshake"
        );
    }

    #[tokio::test]
    async fn cancellation_stops_an_in_flight_request() {
        // A server that never answers.
        let hanging = {
            install_provider();
            let (cert_pem, key_pem) = self_signed();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                cert_pem.clone().into_bytes(),
                key_pem.into_bytes(),
            )
            .await
            .unwrap();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let seen = Arc::new(AtomicUsize::new(0));
            let app = {
                let seen = Arc::clone(&seen);
                Router::new().route(
                    "/hook",
                    post(move || {
                        let seen = Arc::clone(&seen);
                        async move {
                            seen.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            AxumStatus::OK
                        }
                    }),
                )
            };
            let srv = axum_server::from_tcp_rustls(listener, config).unwrap();
            let task = tokio::spawn(async move {
                let _ = srv.serve(app.into_make_service()).await;
            });
            (
                format!("https://127.0.0.1:{port}/hook"),
                cert_pem,
                seen,
                task,
            )
        };
        let (url, cert_pem, seen, task) = hanging;
        let options = WebhookOptions {
            request_timeout: Duration::from_secs(3600),
            extra_root_certificates_pem: Some(cert_pem.into_bytes()),
            egress: Arc::new(EgressPolicy::new(&["127.0.0.0/8".into()]).unwrap()),
            ..WebhookOptions::default()
        };
        let client = WebhookClient::new(options).unwrap();
        let (tx, rx) = never();
        let delivery = {
            let client = client.clone();
            let target = WebhookTarget {
                url,
                signing_key: KEY.to_vec(),
            };
            tokio::spawn(async move { client.deliver(&target, &message(), &rx).await })
        };
        tokio::time::timeout(GUARD, async {
            while seen.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .unwrap();
        tx.send(true).unwrap();
        // The request would hang for an hour; only cancellation can end it within the guard.
        let result = tokio::time::timeout(GUARD, delivery)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(result, Err(WebhookError::Cancelled { attempts: 1, .. })),
            "{result:?}"
        );
        task.abort();
    }

    #[tokio::test]
    async fn cancelled_before_start_or_by_dropped_sender_sends_nothing() {
        let server = https_server(|_| status(200)).await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (tx, rx) = watch::channel(true);
        let err = deliver(&client, &target(&server), &rx).await.unwrap_err();
        assert!(
            matches!(err, WebhookError::Cancelled { attempts: 0, .. }),
            "{err}"
        );
        drop(tx);
        let (tx, rx) = watch::channel(false);
        drop(tx);
        let err = deliver(&client, &target(&server), &rx).await.unwrap_err();
        assert!(
            matches!(err, WebhookError::Cancelled { attempts: 0, .. }),
            "{err}"
        );
        assert_eq!(server.count(), 0);
    }

    #[tokio::test]
    async fn unusable_record_id_gives_up_without_sending() {
        let server = https_server(|_| status(200)).await;
        let client = WebhookClient::new(fast_options(&server)).unwrap();
        let (_tx, rx) = never();
        let mut bad = message();
        bad.record_id = "rec\r\nX-Injected: 1".into();
        let outcome = client.deliver(&target(&server), &bad, &rx).await.unwrap();
        assert!(
            matches!(outcome, DeliveryOutcome::GaveUp { attempts: 0, .. }),
            "{outcome:?}"
        );
        assert_eq!(server.count(), 0);
    }
}
