//! The console in a real browser: Debian's Chromium, driven over WebDriver (chromedriver) with fantoccini,
//! against `unsilo demo` running in this process on a loopback port — the same demo a newcomer starts.
//!
//! `tests/run.sh` installs `chromium` and `chromium-driver`; without them these tests fail saying so. Set
//! `UNSILO_CONSOLE_SCREENSHOTS=<dir>` to keep the screenshots (`docs/console.md` shows them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The demo, serving on a loopback port.
struct Demo {
    base: String,
    tokens: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (stop, stopped) = oneshot::channel::<()>();
        let options = unsilo_cli::demo::DemoOptions {
            data_dir: dir.path().to_owned(),
            listen: format!("127.0.0.1:{port}").parse().expect("address"),
            rate: 40.0,
            malformed_share: 0.1,
            seed: 7,
            postgres_url: None,
            mysql_url: None,
            quiet: true,
        };
        let task = tokio::spawn(async move {
            unsilo_cli::demo::run(options, async {
                let _ = stopped.await;
            })
            .await
            .expect("the demo runs");
        });
        let base = format!("http://127.0.0.1:{port}");
        let tokens = dir.path().join("demo-tokens");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = reqwest::get(format!("{base}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if up && tokens.join("audit.totp").exists() {
                break;
            }
            assert!(Instant::now() < deadline, "the demo did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Demo {
            base,
            tokens,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    fn token(&self, who: &str) -> String {
        std::fs::read_to_string(self.tokens.join(who)).expect("a demo token")
    }

    /// A fresh one-time code of the demo operator whose files are `<file>` and `<file>.totp`.
    async fn code(&self, file: &str) -> String {
        let uri = std::fs::read_to_string(self.tokens.join(format!("{file}.totp")))
            .expect("a demo enrolment");
        let secret = unsilo_hub::totp::secret_of_uri(&uri).expect("a secret in the URI");
        unsilo_tests::console::fresh_code(file, &secret).await
    }

    /// Signs `browser` in as the demo's operator of `file` (`system`, `security`, `audit`), named `name`.
    async fn sign_in_operator(&self, browser: &Browser, file: &str, name: &str) {
        let code = self.code(file).await;
        browser
            .sign_in(&self.base, name, &self.token(file), Some(&code))
            .await;
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut self.task).await;
    }
}

/// Chromium under chromedriver.
struct Browser {
    client: Client,
    driver: Child,
    shots: Option<PathBuf>,
}

/// ChromeDriver's log endpoint: what the page's console printed.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

impl Browser {
    async fn open() -> Browser {
        for program in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: tests/run.sh installs Debian's chromium and chromium-driver"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--lang=zh-CN"]
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "chromedriver did not answer: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let shots = std::env::var_os("UNSILO_CONSOLE_SCREENSHOTS").map(PathBuf::from);
        Browser {
            client,
            driver,
            shots,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The text of the element `css` selects, waiting for it; read again if the page's script replaced it
    /// in between (the overview refreshes itself).
    async fn text(&self, css: &str) -> String {
        for _ in 0..5 {
            let found = self
                .client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(css))
                .await;
            let element = match found {
                Ok(element) => element,
                Err(e) => {
                    let page = self.client.current_url().await.ok();
                    panic!("no `{css}` on {page:?}: {e}")
                }
            };
            match element.text().await {
                Ok(text) => return text,
                // The page was replaced between finding the element and reading it (a navigation or the
                // live refresh): find it again.
                Err(e)
                    if e.to_string().contains("stale")
                        || e.to_string().contains("does not belong to the document") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => panic!("text of `{css}`: {e}"),
            }
        }
        panic!("`{css}` kept being replaced")
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"));
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    async fn sign_in(&self, base: &str, name: &str, token: &str, code: Option<&str>) {
        self.goto(&format!("{base}/console/")).await;
        self.type_into("#name", name).await;
        self.type_into("#token", token).await;
        if let Some(code) = code {
            self.type_into("#code", code).await;
        }
        self.click("form.signin button[type=submit]").await;
        if let Err(e) = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("header.top .principal"))
            .await
        {
            let page = self.client.source().await.unwrap_or_default();
            panic!("{name} not signed in ({e}); the page:\n{page}");
        }
    }

    async fn sign_out(&self) {
        self.click("header.top form button").await;
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#token"))
            .await
            .expect("signed out");
    }

    async fn heading(&self) -> String {
        self.text("main h1").await
    }

    async fn shot(&self, name: &str) {
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir).expect("screenshot folder");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
        }
    }

    /// The severe console messages since the last call, except the load failures the test caused on purpose.
    async fn console_errors(&self, expected_statuses: &[u16]) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .filter(|m| {
                !expected_statuses
                    .iter()
                    .any(|s| m.contains(&format!("status of {s}")))
            })
            .collect()
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Waits until `probe` gives `Some`, for up to `secs` seconds.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn number(text: &str) -> u64 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_the_flows_reads_a_dead_letter_approves_narrowed_and_revokes() {
    let demo = Demo::start().await;
    let browser = Browser::open().await;
    let base = demo.base.clone();

    // 三员分立, with two factors each (token and a one-time code). The system administrator lands on the
    // overview; the grid connector's count moves without a reload (the page's script).
    demo.sign_in_operator(&browser, "system", "demo-system")
        .await;
    assert_eq!(browser.heading().await, "概览");
    assert_eq!(browser.text("#role").await, "系统管理员");
    let nav = browser.text("header.top nav").await;
    assert!(!nav.contains("审计") && !nav.contains("待审批"), "{nav}");
    let accepted = "#connectors tr[data-connector=grid] td.accepted";
    let first = number(&browser.text(accepted).await);
    eventually(30, "the grid count to move", || async {
        let now = number(&browser.text(accepted).await);
        (now > first).then_some(now)
    })
    .await;
    let chart = browser
        .client
        .find(Locator::Css(
            "#connectors tr[data-connector=grid] svg.chart rect.ok",
        ))
        .await;
    assert!(chart.is_ok(), "the per-minute chart shows bars");
    browser.shot("overview").await;

    // A rejected record: its reason, and the original shown as text.
    browser
        .click("#connectors tr[data-connector=grid] a[href$='dead-letters']")
        .await;
    eventually(30, "a dead letter", || async {
        let found = browser
            .client
            .find(Locator::Css("details.dead-letter summary"))
            .await
            .is_ok();
        if !found {
            browser.client.refresh().await.expect("reloads");
        }
        found.then_some(())
    })
    .await;
    browser.click("details.dead-letter summary").await;
    let reason = browser.text("details.dead-letter[open] td").await;
    assert!(!reason.is_empty());
    let original = browser.text("details.dead-letter[open] pre.original").await;
    assert!(!original.is_empty(), "the original is shown");
    browser.shot("dead-letters").await;
    // Requests are not the system administrator's to decide.
    browser.goto(&format!("{base}/console/requests")).await;
    assert!(
        browser.text("main").await.contains("security"),
        "refused, naming who may"
    );
    browser.goto(&format!("{base}/console/")).await;
    browser.sign_out().await;

    // The security administrator lands on the request queue: approve it with the name narrowed from clear to
    // masked.
    demo.sign_in_operator(&browser, "security", "demo-security")
        .await;
    assert_eq!(browser.text("#role").await, "安全管理员");
    let nav = browser.text("header.top nav").await;
    assert!(
        nav.contains("待审批") && !nav.contains("审计") && !nav.contains("概览"),
        "{nav}"
    );
    browser
        .click("a[href='/console/subscriptions/health-commission.elderly-follow-up']")
        .await;
    // The request is 有条件 data of the grid centre: the page shows its answer deadline (10 working days), and
    // the decision is the provider's (政务数据共享条例 Art. 21).
    assert_eq!(browser.text("#deadline-state").await, "answering");
    assert!(
        browser.text("#deadlines").await.contains("10"),
        "{}",
        browser.text("#deadlines").await
    );
    browser.sign_out().await;

    // The provider's reviewer signs in to the portal with the organisation's id and the reviewer's token, sees
    // the request among those for its resources, and approves it with the name narrowed from clear to masked.
    browser
        .sign_in(
            &base,
            "grid-center",
            &demo.token("grid-center.reviewer"),
            None,
        )
        .await;
    let nav = browser.text("header.top nav").await;
    assert!(
        nav.contains("待我审核") && !nav.contains("申请订阅"),
        "{nav}"
    );
    browser.goto(&format!("{base}/console/requests")).await;
    browser
        .click("a[href='/console/subscriptions/health-commission.elderly-follow-up']")
        .await;
    let above = browser
        .client
        .find(Locator::Css("tr.above .above-tag"))
        .await
        .expect("fields above the agency's clearance are marked");
    assert!(!above.text().await.expect("text").is_empty());
    browser
        .client
        .find(Locator::Css("select[data-field=name]"))
        .await
        .expect("the name's treatment")
        .select_by_value("mask")
        .await
        .expect("narrowed to mask");
    for checkbox in browser
        .client
        .find_all(Locator::Css("#approve input[name^='above.']"))
        .await
        .expect("above-clearance confirmations")
    {
        checkbox.click().await.expect("confirmed");
    }
    browser.shot("approve").await;
    browser.click("#approve button[type=submit]").await;
    eventually(20, "the subscription to be active", || async {
        let text = browser.text("main p .badge").await;
        (text == "active").then_some(())
    })
    .await;

    // The agency receives it, with the name masked.
    let client = reqwest::Client::new();
    let agency_token = demo.token("health-commission");
    let records: Value = eventually(30, "records for the agency", || async {
        let r = client
            .get(format!(
                "{base}/v1/subscriptions/health-commission.elderly-follow-up/records?max=50"
            ))
            .bearer_auth(&agency_token)
            .send()
            .await
            .ok()?;
        let body: Value = r.json().await.ok()?;
        let any = body["records"].as_array().is_some_and(|a| !a.is_empty());
        any.then_some(body)
    })
    .await;
    for r in records["records"].as_array().expect("records") {
        let name = r["record"]["name"].as_str().expect("a name");
        assert!(name.contains('*'), "the name is masked: {name}");
    }
    // A reviewer decides; it does not pause or revoke: that is the security administrator's again.
    browser
        .goto(&format!(
            "{base}/console/subscriptions/health-commission.elderly-follow-up"
        ))
        .await;
    assert!(browser
        .client
        .find(Locator::Css("#pause-reason"))
        .await
        .is_err());
    browser.sign_out().await;
    demo.sign_in_operator(&browser, "security", "demo-security")
        .await;

    // Pause: the page says so and offers resume; resume: active again.
    browser
        .goto(&format!(
            "{base}/console/subscriptions/health-commission.elderly-follow-up"
        ))
        .await;
    browser.type_into("#pause-reason", "系统维护").await;
    browser.click("form[action$='/pause'] button").await;
    eventually(20, "the subscription to be paused", || async {
        (browser.text("main p .badge").await == "paused").then_some(())
    })
    .await;
    let paused = client
        .get(format!(
            "{base}/v1/subscriptions/health-commission.elderly-follow-up/records?max=1&wait_ms=100"
        ))
        .bearer_auth(&agency_token)
        .send()
        .await
        .expect("pull");
    assert_eq!(
        paused.status().as_u16(),
        403,
        "a paused subscription delivers nothing"
    );
    browser.click("form[action$='/resume'] button").await;
    eventually(20, "the subscription to be active again", || async {
        (browser.text("main p .badge").await == "active").then_some(())
    })
    .await;

    // Revoke, then the evidence verifies.
    browser.type_into("#revoke-reason", "演示结束").await;
    browser
        .client
        .find(Locator::Css("form[action$='/revoke'] button"))
        .await
        .expect("revoke button")
        .click()
        .await
        .expect("clicked");
    browser.client.accept_alert().await.expect("confirmed");
    eventually(20, "the subscription to be revoked", || async {
        (browser.text("main p .badge").await == "revoked").then_some(())
    })
    .await;
    // The evidence is the audit administrator's.
    browser.goto(&format!("{base}/console/audit/verify")).await;
    assert!(
        browser.text("main").await.contains("audit"),
        "refused, naming who may"
    );
    browser.goto(&format!("{base}/console/requests")).await;
    browser.sign_out().await;
    demo.sign_in_operator(&browser, "audit", "demo-auditor")
        .await;
    assert_eq!(browser.text("#role").await, "审计管理员");
    browser.goto(&format!("{base}/console/audit/verify")).await;
    let verdict = browser.text("#verdict").await;
    assert!(verdict.contains("intact"), "{verdict}");
    browser.shot("audit").await;
    // The supervisor's monthly report: the demo's organisations as providers and requesters, its sources.
    browser
        .goto(&format!("{base}/console/reports/monthly"))
        .await;
    let providers = browser.text("#as-provider").await;
    assert!(providers.contains("grid-center"), "{providers}");
    let requesters = browser.text("#as-requester").await;
    assert!(requesters.contains("civil-affairs"), "{requesters}");
    let sources = browser.text("#sources").await;
    assert!(sources.contains("grid"), "{sources}");
    browser.shot("monthly-report").await;

    // The only load failures are the two pages refused on purpose above.
    let errors = browser.console_errors(&[403]).await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.sign_out().await;
    browser.close().await;
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_sees_its_filter_checked_and_cannot_reach_operator_pages_or_post_without_csrf() {
    let demo = Demo::start().await;
    let browser = Browser::open().await;
    let base = demo.base.clone();
    browser
        .sign_in(&base, "civil-affairs", &demo.token("civil-affairs"), None)
        .await;
    assert_eq!(browser.heading().await, "我的订阅");
    assert!(
        browser
            .client
            .find(Locator::Css(
                "a[href='/console/subscriptions/civil-affairs.red-households']"
            ))
            .await
            .is_ok(),
        "the agency sees its own subscription"
    );

    // The last records its pull subscription received, rendered as the pull API gives them.
    browser
        .goto(&format!(
            "{base}/console/subscriptions/civil-affairs.red-households"
        ))
        .await;
    let record = eventually(60, "a released record on the portal", || async {
        match browser
            .client
            .find(Locator::Css("details.record pre"))
            .await
        {
            Ok(pre) => pre.html(true).await.ok(),
            Err(_) => {
                browser.client.refresh().await.expect("reloads");
                None
            }
        }
    })
    .await;
    assert!(record.contains("care_level"), "{record}");

    // A request with a misspelt filter field: the live check says so as it is typed, and so does the submit.
    browser
        .goto(&format!("{base}/console/subscriptions/new?schema=resident"))
        .await;
    browser.click("input[name=pick][value=village_code]").await;
    browser.type_into("#name", "village-roster").await;
    browser.type_into("#purpose", "走访 / visits").await;
    fill_article_20(&browser).await;
    browser
        .type_into("#filter", "vilage_code.startsWith(\"610921\")")
        .await;
    let live = eventually(10, "the live filter check", || async {
        let t = browser.text("#filter-result").await;
        t.contains("vilage_code").then_some(t)
    })
    .await;
    assert!(
        live.contains("village_code"),
        "suggests the right field: {live}"
    );
    browser.shot("request-form").await;
    browser.click("#request button[type=submit]").await;
    let error = browser.text("#request-error").await;
    assert!(
        error.contains("vilage_code") && error.contains("village_code"),
        "{error}"
    );
    let errors = browser.console_errors(&[422]).await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");

    // Operator pages, even by direct URL, are refused.
    for page in ["/console/agencies", "/console/requests", "/console/audit"] {
        browser.goto(&format!("{base}{page}")).await;
        assert_eq!(browser.heading().await, "无权访问", "{page}");
    }
    browser
        .goto(&format!(
            "{base}/console/subscriptions/public-security.grid-events"
        ))
        .await;
    assert_eq!(
        browser.heading().await,
        "未找到",
        "another agency's subscription"
    );

    // A form posted without its CSRF token is refused.
    browser
        .goto(&format!("{base}/console/subscriptions/new?schema=resident"))
        .await;
    browser
        .client
        .execute(
            "document.querySelector('#request input[name=csrf]').remove();",
            vec![],
        )
        .await
        .expect("script runs");
    browser.click("input[name=pick][value=village_code]").await;
    browser.type_into("#name", "no-csrf").await;
    browser.type_into("#purpose", "x").await;
    fill_article_20(&browser).await;
    browser.click("#request button[type=submit]").await;
    // The answer is a new page: wait for it rather than read the form's own heading.
    eventually(20, "the refusal page", || async {
        (browser.heading().await == "无权访问").then_some(())
    })
    .await;
    assert!(browser.text("main .error").await.contains("CSRF"));

    // Nothing was filed by that form.
    let subscriptions: Value = reqwest::Client::new()
        .get(format!("{base}/admin/subscriptions"))
        .bearer_auth(demo.token("civil-affairs"))
        .send()
        .await
        .expect("admin API")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = subscriptions["subscriptions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(!ids.contains(&"civil-affairs.no-csrf"), "{ids:?}");

    // In English too.
    browser.goto(&format!("{base}/console/?lang=en")).await;
    assert_eq!(browser.heading().await, "My subscriptions");
    let errors = browser.console_errors(&[403, 404]).await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.close().await;
    demo.stop().await;
}

/// 校核纠错 in the portal: civil affairs files a correction on a household it received, from the record on its
/// subscription's page; the grid centre's reviewer sees it, corrects the member count, and the corrected record's
/// new version is on record.
#[tokio::test]
async fn an_agency_files_a_correction_and_the_provider_corrects_it_in_the_portal() {
    let demo = Demo::start().await;
    let browser = Browser::open().await;
    let base = demo.base.clone();
    browser
        .sign_in(&base, "civil-affairs", &demo.token("civil-affairs"), None)
        .await;
    browser
        .goto(&format!(
            "{base}/console/subscriptions/civil-affairs.red-households"
        ))
        .await;
    eventually(60, "a released record with its correction link", || async {
        match browser.client.find(Locator::Css("a.file-correction")).await {
            Ok(_) => Some(()),
            Err(_) => {
                browser.client.refresh().await.expect("reloads");
                None
            }
        }
    })
    .await;
    browser.click("a.file-correction").await;
    assert_eq!(browser.heading().await, "提出纠错");
    let record_id = browser
        .client
        .find(Locator::Css("#record_id"))
        .await
        .expect("the record id")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert_eq!(
        record_id.len(),
        32,
        "prefilled from the record: {record_id}"
    );
    // A field the subscription was not granted is refused, naming it.
    browser.type_into("#field", "phone").await;
    browser.type_into("#problem", "户内人数有误").await;
    browser.type_into("#evidence", "入户走访记录").await;
    browser.type_into("#proposed", "5").await;
    browser.click("#correction button[type=submit]").await;
    let error = browser.text("#correction-error").await;
    assert!(error.contains("phone"), "{error}");
    browser
        .client
        .find(Locator::Css("#field"))
        .await
        .expect("field")
        .clear()
        .await
        .expect("cleared");
    browser.type_into("#field", "member_count").await;
    browser.click("#correction button[type=submit]").await;
    eventually(20, "the filed correction", || async {
        (browser.heading().await == "校核纠错").then_some(())
    })
    .await;
    // The demo files a correction of its own too: this one is the card with this test's problem.
    let correction_id = browser
        .client
        .find(Locator::XPath(
            "//section[contains(@class,'correction')][.//td[contains(., '户内人数有误')]]",
        ))
        .await
        .expect("the filed correction's card")
        .attr("data-id")
        .await
        .expect("attribute")
        .expect("its id");
    let card_css = format!("section.correction[data-id='{correction_id}']");
    let card = browser.text(&card_css).await;
    assert!(
        card.contains("待答复") && card.contains(&record_id) && card.contains("grid-center"),
        "{card}"
    );
    browser.shot("correction-filed").await;
    browser.sign_out().await;

    // The provider's reviewer answers it: corrected to 5.
    browser
        .sign_in(
            &base,
            "grid-center",
            &demo.token("grid-center.reviewer"),
            None,
        )
        .await;
    browser.goto(&format!("{base}/console/corrections")).await;
    let value = browser
        .client
        .find(Locator::Css(&format!(
            "{card_css} form.answer input[name=value]"
        )))
        .await
        .expect("the answer form")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert_eq!(value, "5", "the proposed value is offered");
    browser
        .type_into(
            &format!("{card_css} form.answer input[name=reason]"),
            "已核实",
        )
        .await;
    browser
        .click(&format!("{card_css} form.answer button"))
        .await;
    let answered = eventually(20, "the correction answered", || async {
        let t = browser.text(&card_css).await;
        t.contains("已更正").then_some(t)
    })
    .await;
    let new_record = browser.text(&format!("{card_css} code.new-record")).await;
    assert_eq!(new_record.len(), 32, "{answered}");
    assert_ne!(new_record, record_id);
    browser.shot("correction-answered").await;
    let errors = browser.console_errors(&[422]).await;
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    browser.sign_out().await;
    browser.close().await;
    demo.stop().await;
}

/// Fills the items a request must state (政务数据共享条例 Art. 20) on the portal's request form: basis, scenario,
/// scope, and the time limit (set by script: a date input's typed format depends on the browser's locale).
async fn fill_article_20(browser: &Browser) {
    browser
        .type_into("#legal_basis", "《政务数据共享条例》")
        .await;
    browser.type_into("#scenario", "走访帮扶").await;
    browser.type_into("#scope", "本县网格登记人员").await;
    browser
        .client
        .execute(
            "document.querySelector('#expires_at').value = '2030-12-31';",
            vec![],
        )
        .await
        .expect("script runs");
}
