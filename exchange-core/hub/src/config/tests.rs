//! The configuration's own tests: defaults, the shipped files, and every check that refuses a file.

use super::*;

#[test]
fn empty_file_means_embedded_defaults() {
    let c = Config::parse("").expect("parse");
    assert_eq!(c.bus.kind, BusKind::Embedded);
    assert_eq!(c.bus.embedded.data_dir, PathBuf::from("./data"));
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.registry.default_compatibility, Compatibility::Backward);
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let err =
        Config::parse("[http]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n").expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains("listne"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn kafka_needs_its_section() {
    let err = Config::parse("[bus]\nkind = \"kafka\"\n").expect_err("must fail");
    assert!(err.to_string().contains("[bus.kafka]"), "{err}");
    let kafka = "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n";
    let err = Config::parse(kafka).expect_err("a Kafka hub needs a shared secret file");
    assert!(err.to_string().contains("secret_file"), "{err}");
    let c = Config::parse(&format!(
        "{kafka}[security]\nsecret_file = \"/etc/unsilo/hub.secret\"\n"
    ))
    .expect("parse");
    assert_eq!(c.bus.kafka.expect("kafka").replication_factor, 1);
}

#[test]
fn connectors_are_checked() {
    let ok = "[[connectors]]\nname = \"grid\"\ndefinition = \"builtin:grid\"\ntransport = \"http_push\"\n\
              [connectors.http_push]\ntoken_sha256 = \"a3441838fdce64b1baee82b7b285f6153f583b672251831340cb950da075bdeb\"\n";
    let c = Config::parse(ok).expect("parse");
    assert_eq!(c.connectors[0].transport, TransportKind::HttpPush);
    let err = Config::parse(&ok.replace("a344", "zz44")).expect_err("bad hex");
    assert!(err.to_string().contains("token_sha256"), "{err}");
    let err = Config::parse(&format!("{ok}{ok}")).expect_err("twice");
    assert!(err.to_string().contains("configured twice"), "{err}");
    let err = Config::parse(&ok.replace(
        "transport = \"http_push\"",
        "transport = \"carrier_pigeon\"",
    ))
    .expect_err("unknown transport");
    assert!(err.to_string().contains("carrier_pigeon"), "{err}");
    let missing = "[[connectors]]\nname = \"grid\"\ndefinition = \"builtin:grid\"\ntransport = \"http_push\"\n";
    let err = Config::parse(missing).expect_err("no section");
    assert!(err.to_string().contains("[connectors.http_push]"), "{err}");
}

#[test]
fn the_commented_connector_examples_parse_when_uncommented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/embedded.toml");
    let text = std::fs::read_to_string(path).expect("read");
    let start = text.find("# [[connectors]]").expect("examples");
    let uncommented: String = text[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| {
            l.replace(
                "\"…\"",
                "\"a3441838fdce64b1baee82b7b285f6153f583b672251831340cb950da075bdeb\"",
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = Config::parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(c.connectors.len(), 5);
}

#[test]
fn one_token_names_one_principal_and_security_settings_are_checked() {
    let digest = "a3441838fdce64b1baee82b7b285f6153f583b672251831340cb950da075bdeb";
    let twice = format!(
        "[[admin.operators]]\nname = \"a\"\nrole = \"system\"\ntoken_sha256 = \"{digest}\"\n\n[[admin.operators]]\nname = \"b\"\nrole = \"audit\"\ntoken_sha256 = \"{digest}\"\n"
    );
    let err = Config::parse(&twice).expect_err("shared token");
    assert!(err.to_string().contains("same token"), "{err}");
    let err = Config::parse("[delivery]\negress_allow_cidrs = [\"10.0.0.0/33\"]\n")
        .expect_err("bad cidr");
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    let err = Config::parse("[limits]\nadmin = { per_second = 0.0, burst = 1 }\n")
        .expect_err("zero rate");
    assert!(err.to_string().contains("limits.admin"), "{err}");
    let c =
        Config::parse("[limits]\nrequest_timeout = \"5s\"\n[registry]\nanonymous_read = true\n")
            .expect("parses");
    assert_eq!(c.limits.request_timeout, std::time::Duration::from_secs(5));
    assert!(c.registry.anonymous_read);
}

#[test]
fn an_obvious_operator_or_push_token_is_refused_naming_the_command_that_makes_one() {
    let digest = crate::auth::token_digest("changeme");
    let err = Config::parse(&format!(
        "[[admin.operators]]\nname = \"ops\"\nrole = \"security\"\ntoken_sha256 = \"{digest}\"\n"
    ))
    .expect_err("obvious operator token");
    let err = err.to_string();
    assert!(
        err.contains("obvious") && err.contains("unsilo operator token new"),
        "{err}"
    );
    let (_, strong) = crate::auth::new_token();
    Config::parse(&format!(
        "[[admin.operators]]\nname = \"ops\"\nrole = \"security\"\ntoken_sha256 = \"{strong}\"\n"
    ))
    .expect("a real token");
}

#[test]
fn an_operator_holds_exactly_one_role() {
    let (_, a) = crate::auth::new_token();
    let (_, b) = crate::auth::new_token();
    let err = Config::parse(&format!(
        "[[admin.operators]]\nname = \"li\"\nrole = \"system\"\ntoken_sha256 = \"{a}\"\n\n[[admin.operators]]\nname = \"li\"\nrole = \"audit\"\ntoken_sha256 = \"{b}\"\n"
    ))
    .expect_err("one name, two roles");
    assert!(err.to_string().contains("三员分立"), "{err}");
    let err = Config::parse(&format!(
        "[[admin.operators]]\nname = \"li\"\ntoken_sha256 = \"{a}\"\n"
    ))
    .expect_err("no role");
    assert!(err.to_string().contains("role"), "{err}");
    let err = Config::parse(&format!(
        "[[admin.operators]]\nname = \"li\"\nrole = \"root\"\ntoken_sha256 = \"{a}\"\n"
    ))
    .expect_err("no such role");
    assert!(err.to_string().contains("security"), "{err}");
    let c = Config::parse(&format!(
        "[[admin.operators]]\nname = \"li\"\nrole = \"audit\"\ntoken_sha256 = \"{a}\"\n"
    ))
    .expect("one role");
    assert_eq!(c.admin.operators[0].role, crate::roles::Role::Audit);
}

#[test]
fn shipped_deploy_files_parse() {
    for file in ["embedded.toml", "kafka.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy")
            .join(file);
        Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
