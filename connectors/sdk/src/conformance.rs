//! The conformance kit: the checks every connector passes, run with the connector's own fixtures.
//!
//! | check | what it proves |
//! |---|---|
//! | [`check_fixtures`] | the definition loads (config validation); every valid fixture normalises, every invalid fixture is rejected at the stage and with the code it expects (mapping totality) with a reason that repeats no full ID or phone number; normalising twice gives the same record id (stable ids) |
//! | [`check_sink`] | through a real sink, valid fixtures are accepted with the same record ids and invalid ones are rejected — so they are on the dead-letter topic with the reason, nothing dropped |
//! | [`check_resume`] | a source whose sink fails mid-stream, restarted with the same checkpoint store, loses nothing: every expected record id arrives |
//!
//! Fixtures live in the definition folder: `fixtures/valid/*.json` hold one raw record each (or a JSON array of
//! them); `fixtures/invalid/*.json` hold `{"expect": {"stage": "...", "code": "..."}, "record": {...}}`, where
//! `code` may be omitted to check only the stage. `record` may also be a string, which is sent as raw bytes (for
//! inputs that are not JSON at all).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::definition::ConnectorDefinition;
use crate::sdk::{
    BatchReport, CheckpointStore, RawInput, RecordSink, Shutdown, SinkError, Source, SourceContext,
};

/// One fixture, read from the definition's `fixtures/` folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Fixture {
    /// The file it came from (and the item index for arrays).
    pub name: String,
    /// The raw input.
    pub input: RawInput,
    /// `None` for a valid fixture; the expected rejection for an invalid one.
    pub expect: Option<ExpectedRejection>,
}

/// What an invalid fixture expects.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRejection {
    /// `parse`, `contract`, `mapping` or `validation`.
    pub stage: String,
    /// The reason code (e.g. `contract_violation`, `validator(cert_no)`); omitted means any code.
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidFixture {
    expect: ExpectedRejection,
    record: serde_json::Value,
}

/// A fixture file that cannot be read or is not a fixture; the message names the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FixtureError(pub String);

/// Reads fixtures from `(path, contents)` pairs (paths under `fixtures/valid/` or `fixtures/invalid/`).
pub fn read_fixtures<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Fixture>, FixtureError> {
    parse_fixtures(files).map_err(FixtureError)
}

fn parse_fixtures<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<Fixture>, String> {
    let mut out = Vec::new();
    for (path, text) in files {
        if !path.ends_with(".json") {
            continue;
        }
        if path.contains("fixtures/valid/") {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("{path}: not JSON: {e}"))?;
            let items = match value {
                serde_json::Value::Array(items) => items,
                other => vec![other],
            };
            let many = items.len() > 1;
            for (i, item) in items.into_iter().enumerate() {
                let name = if many {
                    format!("{path}[{i}]")
                } else {
                    path.to_owned()
                };
                let original = serde_json::to_vec(&item).map_err(|e| e.to_string())?;
                out.push(Fixture {
                    input: RawInput::decoded(original, item, name.clone()),
                    name,
                    expect: None,
                });
            }
        } else if path.contains("fixtures/invalid/") {
            let f: InvalidFixture = serde_json::from_str(text).map_err(|e| {
                format!("{path}: expected {{\"expect\": {{...}}, \"record\": ...}}: {e}")
            })?;
            let input = match f.record {
                serde_json::Value::String(raw) => RawInput::from_json_bytes(raw.into_bytes(), path),
                record => {
                    let original = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
                    RawInput::decoded(original, record, path)
                }
            };
            out.push(Fixture {
                name: path.to_owned(),
                input,
                expect: Some(f.expect),
            });
        }
    }
    Ok(out)
}

/// Reads the fixtures of a definition folder on disk.
pub fn read_fixture_dir(dir: &std::path::Path) -> Result<Vec<Fixture>, FixtureError> {
    let mut files = Vec::new();
    for sub in ["fixtures/valid", "fixtures/invalid"] {
        let folder = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| FixtureError(format!("{}: {e}", path.display())))?;
            files.push((
                format!(
                    "{sub}/{}",
                    path.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ),
                text,
            ));
        }
    }
    read_fixtures(files.iter().map(|(p, t)| (p.as_str(), t.as_str())))
}

/// The outcome of a conformance run: one line per failed expectation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// How many fixtures were checked.
    pub checked: usize,
    /// What failed, one line each (empty when everything passed).
    pub failures: Vec<String>,
}

impl ConformanceReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Panics with every failure listed unless all passed (for use in tests).
    pub fn assert_passed(&self, connector: &str) {
        assert!(
            self.passed(),
            "connector `{connector}` fails conformance ({} of {} fixtures):\n  {}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n  ")
        );
    }
}

/// Identifier-like strings anywhere in a raw record: 18-character ID numbers (17 digits and a digit or `X`) and
/// 11-digit mobile numbers. A rejection reason must never repeat one of them whole.
fn personal_identifiers(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => {
            let t = s.trim();
            let b = t.as_bytes();
            let cert_no = b.len() == 18
                && b[..17].iter().all(u8::is_ascii_digit)
                && (b[17].is_ascii_digit() || b[17] == b'X' || b[17] == b'x');
            let phone = b.len() == 11 && b[0] == b'1' && b.iter().all(u8::is_ascii_digit);
            if cert_no || phone {
                out.push(t.to_owned());
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| personal_identifiers(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| personal_identifiers(v, out)),
        _ => {}
    }
}

/// Mapping totality and stable ids over the fixtures, without any I/O. Also checks that no rejection reason
/// repeats an ID number or mobile number of the record whole (reasons travel to logs and dead-letter headers).
pub fn check_fixtures(definition: &ConnectorDefinition, fixtures: &[Fixture]) -> ConformanceReport {
    let mut report = ConformanceReport {
        checked: fixtures.len(),
        failures: Vec::new(),
    };
    let valid = fixtures.iter().filter(|f| f.expect.is_none()).count();
    if valid == 0 {
        report
            .failures
            .push("no valid fixtures (fixtures/valid/*.json)".into());
    }
    if valid == fixtures.len() {
        report.failures.push("no invalid fixtures (fixtures/invalid/*.json): bad input must be shown to go to the DLQ".into());
    }
    let mut out = Vec::new();
    for f in fixtures {
        out.clear();
        let first = definition.normalise(&f.input, &mut out);
        match (&f.expect, first) {
            (None, Ok(n)) => {
                let mut again = Vec::new();
                match definition.normalise(&f.input, &mut again) {
                    Ok(m) if m.record_id == n.record_id && m.key == n.key => {}
                    Ok(m) => report.failures.push(format!(
                        "{}: record id not stable ({} then {})",
                        f.name, n.record_id, m.record_id
                    )),
                    Err(e) => report.failures.push(format!(
                        "{}: accepted once, then rejected: {}",
                        f.name, e.message
                    )),
                }
                if out.is_empty() {
                    report
                        .failures
                        .push(format!("{}: accepted but produced no Avro bytes", f.name));
                }
            }
            (None, Err(e)) => report.failures.push(format!(
                "{}: valid fixture rejected at {} ({}{}): {}",
                f.name,
                e.stage,
                e.code,
                e.field
                    .as_deref()
                    .map(|p| format!(" at {p}"))
                    .unwrap_or_default(),
                e.message
            )),
            (Some(want), Ok(n)) => report.failures.push(format!(
                "{}: invalid fixture was accepted as {} (expected rejection at {})",
                f.name, n.record_id, want.stage
            )),
            (Some(want), Err(e)) => {
                let code_ok = want.code.as_deref().is_none_or(|c| c == e.code);
                if e.stage != want.stage || !code_ok {
                    report.failures.push(format!(
                        "{}: rejected at {} ({}) but expected {} ({}): {}",
                        f.name,
                        e.stage,
                        e.code,
                        want.stage,
                        want.code.as_deref().unwrap_or("any code"),
                        e.message
                    ));
                }
                if !out.is_empty() {
                    report
                        .failures
                        .push(format!("{}: rejected but left bytes in the output", f.name));
                }
                if let Ok(raw) = &f.input.parsed {
                    let mut identifiers = Vec::new();
                    personal_identifiers(raw, &mut identifiers);
                    if identifiers.iter().any(|id| e.message.contains(id.as_str())) {
                        report.failures.push(format!(
                            "{}: the rejection reason repeats a full ID or phone number: {}",
                            f.name, e.message
                        ));
                    }
                }
            }
        }
    }
    report
}

/// Submits every fixture in one batch through `sink` (the runtime's real sink): valid fixtures must come back
/// accepted with the record ids the definition gives them, invalid ones rejected (so they are on the DLQ).
pub async fn check_sink(
    definition: &ConnectorDefinition,
    sink: &dyn RecordSink,
    fixtures: &[Fixture],
) -> Result<ConformanceReport, SinkError> {
    let batch: Vec<RawInput> = fixtures.iter().map(|f| f.input.clone()).collect();
    let result = sink.submit(batch).await?;
    let mut report = ConformanceReport {
        checked: fixtures.len(),
        failures: Vec::new(),
    };
    let mut buf = Vec::new();
    for (index, f) in fixtures.iter().enumerate() {
        let accepted = result.accepted.iter().find(|a| a.index == index);
        let rejected = result.rejected.iter().find(|r| r.index == index);
        match (&f.expect, accepted, rejected) {
            (None, Some(a), None) => {
                buf.clear();
                match definition.normalise(&f.input, &mut buf) {
                    Ok(n) if n.record_id == a.record_id => {}
                    Ok(n) => report.failures.push(format!(
                        "{}: sink gave record id {} but the definition gives {}",
                        f.name, a.record_id, n.record_id
                    )),
                    Err(e) => report.failures.push(format!(
                        "{}: sink accepted, definition rejects: {}",
                        f.name, e.message
                    )),
                }
            }
            (Some(_), None, Some(_)) => {}
            (None, _, Some(r)) => report.failures.push(format!(
                "{}: valid fixture rejected by the sink: {}",
                f.name, r.reason.message
            )),
            (Some(_), Some(a), _) => report.failures.push(format!(
                "{}: invalid fixture accepted by the sink as {}",
                f.name, a.record_id
            )),
            (_, None, None) => report.failures.push(format!(
                "{}: the sink's report does not mention this input",
                f.name
            )),
        }
    }
    Ok(report)
}

/// A sink that fails its `fail_on`-th submission (counting from 1) and passes every other to `inner`.
pub struct FailingOnceSink {
    inner: Arc<dyn RecordSink>,
    fail_on: usize,
    calls: AtomicUsize,
}

impl FailingOnceSink {
    /// Wraps `inner`, failing the `fail_on`-th call.
    pub fn new(inner: Arc<dyn RecordSink>, fail_on: usize) -> Self {
        Self {
            inner,
            fail_on,
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl RecordSink for FailingOnceSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.fail_on {
            return Err(SinkError(format!(
                "conformance kit: injected failure on submission {call}"
            )));
        }
        self.inner.submit(batch).await
    }
}

/// A sink wrapping another that remembers the record ids it accepted (not the test sink [`crate::sdk::RecordingSink`]).
struct AcceptedIdsSink {
    inner: Arc<dyn RecordSink>,
    ids: std::sync::Mutex<BTreeSet<String>>,
}

#[async_trait]
impl RecordSink for AcceptedIdsSink {
    async fn submit(&self, batch: Vec<RawInput>) -> Result<BatchReport, SinkError> {
        let report = self.inner.submit(batch).await?;
        if let Ok(mut ids) = self.ids.lock() {
            ids.extend(report.accepted.iter().map(|a| a.record_id.clone()));
        }
        Ok(report)
    }
}

/// Resume after restart: runs a source from `make_source` against `sink` with its second submission failing,
/// then runs a fresh source with the same checkpoint store until every record id in `expected` has been accepted
/// (or `patience` runs out). Reports the ids that never arrived.
pub async fn check_resume(
    connector: &str,
    make_source: &(dyn Fn() -> Box<dyn Source> + Send + Sync),
    sink: Arc<dyn RecordSink>,
    checkpoints: Arc<dyn CheckpointStore>,
    expected: &BTreeSet<String>,
    patience: Duration,
) -> ConformanceReport {
    let recording = Arc::new(AcceptedIdsSink {
        inner: sink,
        ids: std::sync::Mutex::new(BTreeSet::new()),
    });
    let mut report = ConformanceReport {
        checked: expected.len(),
        failures: Vec::new(),
    };

    // First run: the second submission fails, as if the bus had gone away; the source must return an error
    // (or stop) without checkpointing past what was not acknowledged.
    let failing: Arc<dyn RecordSink> = Arc::new(FailingOnceSink::new(recording.clone(), 2));
    let (trigger, shutdown) = Shutdown::new();
    let mut first = make_source();
    let ctx = SourceContext {
        connector: connector.to_owned(),
        sink: failing,
        checkpoints: checkpoints.clone(),
        shutdown,
    };
    let outcome = tokio::time::timeout(patience, first.run(ctx)).await;
    trigger.trigger();
    if let Ok(Ok(())) = outcome {
        report
            .failures
            .push("the source ended without error although its sink failed".into());
    }
    drop(first);

    // Second run: a new source, same checkpoints, a healthy sink.
    let (trigger, shutdown) = Shutdown::new();
    let mut second = make_source();
    let ctx = SourceContext {
        connector: connector.to_owned(),
        sink: recording.clone(),
        checkpoints,
        shutdown,
    };
    let run = tokio::spawn(async move { second.run(ctx).await });
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let have = recording
            .ids
            .lock()
            .map(|ids| expected.is_subset(&ids))
            .unwrap_or(false);
        if have || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    trigger.trigger();
    match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => report
            .failures
            .push(format!("the restarted source failed: {e}")),
        Ok(Err(e)) => report
            .failures
            .push(format!("the restarted source panicked: {e}")),
        Err(_) => report
            .failures
            .push("the restarted source did not stop on shutdown within 10 s".into()),
    }
    let ids = recording
        .ids
        .lock()
        .map(|ids| ids.clone())
        .unwrap_or_default();
    for missing in expected.difference(&ids) {
        report
            .failures
            .push(format!("record {missing} never arrived after the restart"));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_found_anywhere_in_a_record() {
        let raw = serde_json::json!({
            "sfzh": "11010519491231002X",
            "dsr": [{"lxdh": " 13912345678 "}, {"lxdh": "029-8888888"}],
            "n": 13912345678u64,
            "short": "1101051949123100"
        });
        let mut found = Vec::new();
        personal_identifiers(&raw, &mut found);
        found.sort();
        assert_eq!(
            found,
            vec!["11010519491231002X".to_owned(), "13912345678".to_owned()]
        );
    }
}
