//! Raw input as a transport received it, and the sink's per-record report.

use serde::Serialize;

/// One record as the source sent it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawInput {
    /// The original bytes, exactly as received (a JSON object, a CSV line in its own encoding, a table row as
    /// JSON). They go to `raw.<connector>`, and to `dlq.<connector>` if the record is rejected.
    pub original: Vec<u8>,
    /// The record as JSON, as the transport decoded it, or why it could not be decoded (then it is rejected).
    pub parsed: Result<serde_json::Value, String>,
    /// Where it came from, for the operator: `POST /ingest/grid item 3`, `orders.csv line 17`, `dibao id=42`.
    pub origin: String,
}

impl RawInput {
    /// Input that arrived as JSON text: parsed here, keeping the original bytes.
    pub fn from_json_bytes(original: Vec<u8>, origin: impl Into<String>) -> Self {
        // Text that is valid UTF-8 as a whole (nearly all of it) is parsed as `str`, which spares the parser a
        // UTF-8 check of every string in it (a fifth of the parse); other bytes get the byte parser's error.
        let parsed = match std::str::from_utf8(&original) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(&original),
        }
        .map_err(|e| format!("not valid JSON: {e}"));
        Self {
            original,
            parsed,
            origin: origin.into(),
        }
    }

    /// Input already decoded into JSON by the transport (a CSV row, a database row); `original` is what the
    /// source really sent.
    pub fn decoded(original: Vec<u8>, value: serde_json::Value, origin: impl Into<String>) -> Self {
        Self {
            original,
            parsed: Ok(value),
            origin: origin.into(),
        }
    }
}

/// A record that arrived as JSON text and is not parsed yet: the sink parses it where it normalises it, so the
/// parsed value is used while it is still in the cache of the thread that made it, then dropped there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonText {
    /// The original bytes, exactly as received.
    pub original: Vec<u8>,
    /// Where it came from, as [`RawInput::origin`].
    pub origin: String,
}

impl From<JsonText> for RawInput {
    /// Parses the text (an input that is not JSON becomes one the sink rejects, with the parser's reason).
    fn from(text: JsonText) -> Self {
        RawInput::from_json_bytes(text.original, text.origin)
    }
}

/// Why a record was rejected: machine-readable, and sent with the original to the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectReason {
    /// The stage that rejected it: `parse`, `contract`, `mapping` or `validation`.
    pub stage: &'static str,
    /// A stable code, e.g. `invalid_json`, `contract_violation`, `no_mapping`, `missing_required`,
    /// `invalid_cert_no`.
    pub code: String,
    /// The field at fault (a JSON pointer or dotted path), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A human-readable explanation that never repeats a full ID number or phone number.
    pub message: String,
}

/// A record that was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Index of the input in the submitted batch.
    pub index: usize,
    /// The deterministic record id.
    pub record_id: String,
    /// The shared schema it was normalised to, e.g. `grid_event`.
    pub schema: String,
}

/// A record that was rejected (and is on the dead-letter topic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// Index of the input in the submitted batch.
    pub index: usize,
    /// Why.
    pub reason: RejectReason,
}

/// What became of each input of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchReport {
    /// Accepted inputs.
    pub accepted: Vec<Accepted>,
    /// Rejected inputs.
    pub rejected: Vec<Rejected>,
}

impl BatchReport {
    /// Logs (at debug: per-batch lines would drown a busy hub's log) that a source's batch of
    /// `records` inputs was acknowledged, with how many were accepted and rejected.
    pub fn log_acknowledged(&self, connector: &str, records: usize) {
        tracing::debug!(
            connector,
            records,
            accepted = self.accepted.len(),
            rejected = self.rejected.len(),
            "Batch acknowledged."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::RawInput;

    #[test]
    fn json_text_parses_the_same_whether_or_not_it_is_utf8() {
        let text =
            r#"{"sjbh": "SJ610921202406010001", "sjms": "汉阴县城关镇 \"积水\" 报告", "n": 1.5}"#;
        let input = RawInput::from_json_bytes(text.as_bytes().to_vec(), "t");
        let expected: serde_json::Value = serde_json::from_slice(text.as_bytes()).expect("JSON");
        assert_eq!(input.parsed, Ok(expected));
        assert_eq!(input.original, text.as_bytes());

        // GBK bytes in a string (a source that did not say its encoding): the byte parser's own error, with the
        // place, and the original kept as it came.
        let mut gbk = br#"{"sjms": ""#.to_vec();
        gbk.extend_from_slice(&[0xBA, 0xBA, 0xD2, 0xF5]);
        gbk.extend_from_slice(br#""}"#);
        let input = RawInput::from_json_bytes(gbk.clone(), "t");
        let reason = input.parsed.expect_err("not UTF-8");
        assert!(reason.starts_with("not valid JSON: "), "{reason}");
        assert!(reason.contains("line 1 column"), "{reason}");
        assert_eq!(input.original, gbk);

        let input = RawInput::from_json_bytes(b"{\"a\": 1,}".to_vec(), "t");
        let reason = input.parsed.expect_err("trailing comma");
        assert!(
            reason.starts_with("not valid JSON: trailing comma"),
            "{reason}"
        );
    }
}
