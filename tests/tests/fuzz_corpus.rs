//! Replays the fuzz corpus of every target (`tests/fuzz/corpus/<target>/`, grown by `tests/fuzz/run.sh`) and every
//! crash ever found (`tests/fuzz/regressions/<target>/`) through the same entry points the fuzzers call: none may
//! panic. The coverage-guided runs themselves take minutes per target, so CI replays what they found instead.

use std::path::PathBuf;

use unsilo_hub::fuzzing;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("raw_json", fuzzing::raw_json),
    ("cel_filter", fuzzing::cel_filter),
    ("framed_avro", fuzzing::framed_avro),
    ("registry_schema", fuzzing::registry_schema),
    ("file_drop", fuzzing::file_drop),
];

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read a corpus file");
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_every_regression() {
    for (target, run) in TARGETS {
        let corpus = inputs("corpus", target);
        assert!(
            corpus.len() >= 10,
            "the corpus of `{target}` has {} inputs; run tests/fuzz/run.sh and commit tests/fuzz/corpus/{target}",
            corpus.len()
        );
        for (path, bytes) in corpus.iter().chain(inputs("regressions", target).iter()) {
            let outcome = std::panic::catch_unwind(|| run(bytes));
            assert!(outcome.is_ok(), "`{target}` panicked on {}", path.display());
        }
    }
}
