//! Randomised and malformed input: the same answer on both paths, never a panic.

use super::dialects::dept_rows;
use super::records::grid;
use super::*;

fn junk(rng: &mut StdRng, depth: usize) -> Json {
    match rng.random_range(0..16) {
        0 => Json::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<u64>()),
        4 => json!(rng.random::<f64>() * 10f64.powi(rng.random_range(-10..300))),
        5 => json!(rng.random_range(-5..20)),
        6 => json!(
            [
                "", " ", "\u{3000}", "是", "否", "Y", "N", "0", "1", "null", "NaN", "inf", "-0",
                "1e999"
            ][rng.random_range(0..14)]
        ),
        7 => json!(
            [
                "2024-02-30 10:00",
                "2024/6/18 9:21",
                "20240618",
                "20240618092100",
                "1718674335",
                "1718674335000",
                "2024年6月18日 9时21分",
                "2024-06-18T01:21:00Z",
                "9999-12-31 23:59:59",
                "0000-01-01",
                "2024-13-01"
            ][rng.random_range(0..11)]
        ),
        8 => json!(
            [
                "610921196803124579",
                "61092119680312457X",
                "13891512376",
                "+86 138 9151 2376",
                "610921100001",
                "610921100001003",
                "11610921016050037T",
                "12.50",
                "520.005"
            ][rng.random_range(0..9)]
        ),
        9 => {
            let len = rng.random_range(0..40);
            json!((0..len)
                .map(|_| char::from_u32(rng.random_range(0..0x11_0000)).unwrap_or('\u{FFFD}'))
                .collect::<String>())
        }
        10 => json!("\u{0}\u{1}\u{7f}\u{FFFD}\u{FEFF}\u{202E}"),
        11 => json!("x".repeat(rng.random_range(0..5000))),
        12 if depth < 4 => Json::Array(
            (0..rng.random_range(0..4))
                .map(|_| junk(rng, depth + 1))
                .collect(),
        ),
        13 if depth < 4 => {
            let mut m = Map::new();
            for k in ["xm", "sfzh", "js", "hj", "sj", "a"] {
                if rng.random_bool(0.5) {
                    m.insert(k.to_string(), junk(rng, depth + 1));
                }
            }
            Json::Object(m)
        }
        14 => deep(rng.random_range(1..200)),
        _ => json!(rng.random_range(0..10).to_string()),
    }
}

fn deep(depth: usize) -> Json {
    let mut v = json!("bottom");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!([v])
        } else {
            json!({ "a": v })
        };
    }
    v
}

/// Every leaf and container path of a JSON document, as a list of keys and indices.
fn paths(v: &Json, prefix: &mut Vec<Json>, out: &mut Vec<Vec<Json>>) {
    out.push(prefix.clone());
    match v {
        Json::Object(m) => {
            for (k, child) in m {
                prefix.push(json!(k));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Json::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                prefix.push(json!(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Json, path: &[Json]) -> Option<&'a mut Json> {
    let mut cur = v;
    for step in path {
        cur = match step {
            Json::String(k) => cur.get_mut(k.as_str())?,
            Json::Number(i) => cur.get_mut(i.as_u64()? as usize)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn mutate(rng: &mut StdRng, base: &Json) -> Json {
    let mut v = base.clone();
    let mut all = Vec::new();
    paths(&v, &mut Vec::new(), &mut all);
    for _ in 0..rng.random_range(1..5) {
        let path = &all[rng.random_range(0..all.len())];
        if path.is_empty() {
            continue;
        }
        let replacement = junk(rng, 0);
        if rng.random_bool(0.2) {
            // Remove the key instead.
            let (last, parent) = path.split_last().unwrap();
            if let (Some(Json::Object(m)), Json::String(k)) = (at_mut(&mut v, parent), last) {
                m.remove(k);
            }
        } else if let Some(slot) = at_mut(&mut v, path) {
            *slot = replacement;
        }
    }
    v
}

fn check_both_paths_agree(mapping: &CompiledMapping, raw: &Json) -> bool {
    let mut out = vec![7u8; 3];
    let encoded = mapping.encode_at(raw, 42, &mut out);
    let json = mapping.to_json_at(raw, 42);
    match (encoded, json) {
        (Ok(_), Ok(_)) => {
            assert_oracle(mapping, raw, 42);
            true
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert_eq!(out, [7, 7, 7]);
            assert!(!a.message.is_empty());
            false
        }
        (a, b) => panic!("paths disagree on {raw}:\nencode: {a:?}\nto_json: {b:?}"),
    }
}

#[test]
fn randomised_raw_records_agree_with_the_oracle_or_are_rejected() {
    let mut rng = StdRng::seed_from_u64(20_240_618);
    let sets = [
        (load("grid_event.toml"), raw("grid_event.raw.json")),
        (load("hotline_ticket.toml"), raw("hotline_ticket.raw.json")),
        (load("dept_dibao.toml"), dept_rows()[0].clone()),
        (load("dept_other.toml"), dept_rows()[2].clone()),
    ];
    for (mapping, base) in &sets {
        let (mut ok, mut rejected) = (0, 0);
        for _ in 0..1500 {
            let raw = mutate(&mut rng, base);
            if check_both_paths_agree(mapping, &raw) {
                ok += 1;
            } else {
                rejected += 1;
            }
        }
        // The generator must exercise both outcomes, or the test proves little.
        assert!(
            ok > 100 && rejected > 100,
            "{}: {ok} ok, {rejected} rejected",
            mapping.origin()
        );
    }
}

#[test]
fn malformed_top_level_input_is_rejected_without_panic() {
    let (mapping, base) = grid();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..500 {
        let v = junk(&mut rng, 0);
        check_both_paths_agree(&mapping, &v);
        // Junk spliced in at every top-level key.
        let mut raw = base.clone();
        for value in raw.as_object_mut().unwrap().values_mut() {
            if rng.random_bool(0.3) {
                *value = junk(&mut rng, 0);
            }
        }
        check_both_paths_agree(&mapping, &raw);
    }
    let mut raw = base.clone();
    raw["dz"] = deep(2_000);
    raw["dsr"] = Json::Array(vec![deep(120); 50]);
    assert!(!check_both_paths_agree(&mapping, &raw));
    let mut raw = base;
    raw["fjs"] = json!(u64::MAX);
    raw["jasj"] = json!(i64::MAX);
    assert!(!check_both_paths_agree(&mapping, &raw));
}

#[test]
fn the_example_in_the_mapping_docs_loads_and_runs() {
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/mapping.md"),
    )
    .unwrap();
    let start = docs.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &docs[start..start + docs[start..].find("```").unwrap()];
    let mapping = Mapping::from_str(block, "docs/mapping.md").unwrap_or_else(|e| panic!("{e}"));
    let json = assert_oracle(&mapping, &raw("grid_event.raw.json"), 0);
    assert_eq!(
        json["envelope"]["record_id"],
        "3ccd3895a9132f275794a833e441f63e"
    );
    assert_eq!(
        json["location"]["address"],
        "陕西省安康市汉阴县城关镇南街社区3组17号"
    );
}

// ---------------------------------------------------------------------------------------------------------
// `unsilo mapping test`.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn mapping_test_report_shows_records_rejections_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let good = raw("grid_event.raw.json");
    let mut bad = good.clone();
    bad["dsr"][0]["sfzh"] = json!("610921196803124570");
    let other = json!({"type": "household"});
    let samples = dir.path().join("samples.json");
    std::fs::write(
        &samples,
        serde_json::to_string(&json!([good, bad, other])).unwrap(),
    )
    .unwrap();
    let report = test_mapping(&fixture("grid_event.toml"), &samples).unwrap();
    assert!(
        report.contains("→ grid_event (std.grid_event), source system grid.hanyin"),
        "{report}"
    );
    assert!(
        report.contains("sample 1: ok: record_id 3ccd3895a9132f275794a833e441f63e"),
        "{report}"
    );
    assert!(
        report.contains("\"title\": \"南街社区两户因排水沟堵塞发生争执\""),
        "{report}"
    );
    assert!(
        report.contains("sample 2: rejected: parties[0].cert_no"),
        "{report}"
    );
    assert!(report.contains("validator(cert_no)"), "{report}");
    assert!(!report.contains("610921196803124570"), "{report}");
    assert!(report.contains("sample 3: skipped"), "{report}");
    assert!(
        report.contains("3 samples: 1 normalised, 1 rejected, 1 skipped"),
        "{report}"
    );

    // JSON lines work too.
    let lines = dir.path().join("samples.jsonl");
    std::fs::copy(fixture("dept.raw.jsonl"), &lines).unwrap();
    let report = test_mapping(&fixture("dept_other.toml"), &lines).unwrap();
    assert!(
        report.contains("3 samples: 3 normalised, 0 rejected, 0 skipped"),
        "{report}"
    );

    // A sample that is not JSON names its line; a bad mapping is the mapping's error.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"a\": 1}\n{\"a\": \n").unwrap();
    match test_mapping(&fixture("dept_other.toml"), &broken) {
        Err(TestMappingError::Sample { line, .. }) => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
    let bad_mapping = dir.path().join("bad.toml");
    std::fs::write(&bad_mapping, "target = \"nope\"\n").unwrap();
    let e = test_mapping(&bad_mapping, &lines).unwrap_err();
    assert!(matches!(e, TestMappingError::Mapping(_)));
    assert!(
        e.to_string()
            .contains("bad.toml:1: unknown target schema `nope`"),
        "{e}"
    );
}
