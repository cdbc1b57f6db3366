//! `unsilo mapping test`: run a mapping over sample raw records and print what comes out.
//!
//! The report shows, per sample, the normalised record as pretty JSON (what subscribers will receive, before
//! any policy), or why the record would go to the dead-letter topic, or that the mapping's `when` selector does
//! not take it. Samples are one JSON object, a JSON array of objects, or JSON lines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use thiserror::Error;

use super::error::MappingError;
use super::{CompiledMapping, Mapping};

/// Why `mapping test` could not run (a record that fails the mapping is part of the report, not an error).
#[derive(Debug, Error)]
pub enum TestMappingError {
    /// The mapping does not load.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The sample file cannot be read.
    #[error("cannot read sample {}: {source}", path.display())]
    Io {
        /// The sample file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sample file is not JSON.
    #[error("sample {}: line {line}: not JSON (expected an object, an array of objects or JSON lines): {source}", path.display())]
    Sample {
        /// The sample file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Loads a mapping and a sample file and returns the printable report.
pub fn test_mapping(mapping_path: &Path, sample_path: &Path) -> Result<String, TestMappingError> {
    let mapping = Mapping::load(mapping_path)?;
    let text = std::fs::read_to_string(sample_path).map_err(|source| TestMappingError::Io {
        path: sample_path.to_path_buf(),
        source,
    })?;
    let samples = parse_samples(&text).map_err(|(line, source)| TestMappingError::Sample {
        path: sample_path.to_path_buf(),
        line,
        source,
    })?;
    Ok(sample_report(&mapping, &samples))
}

/// Reads samples: one JSON value (an array is a list of samples), or JSON lines; an error gives its line.
pub fn parse_samples(text: &str) -> Result<Vec<Json>, (usize, serde_json::Error)> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(items)) => Ok(items),
        Ok(one) => Ok(vec![one]),
        Err(whole) => {
            let mut samples = Vec::new();
            let mut lines = 0;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                lines += 1;
                match serde_json::from_str(line) {
                    Ok(v) => samples.push(v),
                    // One line that is not JSON on its own: report the whole-text error, which has the position.
                    Err(_)
                        if lines == 1
                            && text.lines().filter(|l| !l.trim().is_empty()).count() == 1 =>
                    {
                        return Err((whole.line(), whole))
                    }
                    Err(e) => return Err((i + 1, e)),
                }
            }
            if samples.is_empty() {
                return Err((whole.line(), whole));
            }
            Ok(samples)
        }
    }
}

/// The report for samples already parsed.
pub fn sample_report(mapping: &CompiledMapping, samples: &[Json]) -> String {
    let target = mapping.target();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mapping {} → {} ({}), source system {}",
        mapping.origin(),
        target.name(),
        target.topic(),
        mapping.source_system()
    );
    if let Some(d) = mapping.description() {
        let _ = writeln!(out, "  {d}");
    }
    let (mut ok, mut rejected, mut skipped) = (0, 0, 0);
    let ingest = super::now_millis();
    let mut bytes = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let n = i + 1;
        out.push('\n');
        if !mapping.matches(sample) {
            skipped += 1;
            let _ = writeln!(
                out,
                "sample {n}: skipped: the mapping's `when` does not select it"
            );
            continue;
        }
        bytes.clear();
        match (
            mapping.encode_at(sample, ingest, &mut bytes),
            mapping.to_json_at(sample, ingest),
        ) {
            (Ok(normalised), Ok(json)) => {
                ok += 1;
                let _ = writeln!(
                    out,
                    "sample {n}: ok: record_id {}, key {:?}, {} bytes of Avro",
                    normalised.record_id,
                    normalised.key,
                    bytes.len()
                );
                let pretty =
                    serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string());
                let _ = writeln!(out, "{pretty}");
            }
            (Err(e), _) | (_, Err(e)) => {
                rejected += 1;
                let _ = writeln!(out, "sample {n}: rejected: {} ({})", e, e.kind_label());
                let _ = writeln!(out, "  dead-letter reason: {}", e.to_json());
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} sample{}: {ok} normalised, {rejected} rejected, {skipped} skipped",
        samples.len(),
        if samples.len() == 1 { "" } else { "s" }
    );
    out
}
