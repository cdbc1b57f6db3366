//! Load errors: file, line and reason, all of them.

use super::records::{rating_with, GRID_MIN, RATING};
use super::*;

/// The issues of a mapping that must not load, as (line, reason).
fn load_errors(text: &str) -> Vec<(usize, String)> {
    match Mapping::from_str(text, "rating.toml") {
        Ok(_) => panic!("mapping loaded but should not:\n{text}"),
        Err(e) => {
            let rendered = e.to_string();
            for issue in e.issues() {
                assert!(
                    rendered.contains(&format!("rating.toml:{}: {}", issue.line, issue.reason)),
                    "{rendered}"
                );
            }
            e.issues()
                .iter()
                .map(|i| (i.line, i.reason.clone()))
                .collect()
        }
    }
}

/// Asserts exactly one error, on `line`, whose reason contains `needle`.
fn assert_one_error(text: &str, line: usize, needle: &str) {
    let errors = load_errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].0, line, "{errors:#?}");
    assert!(
        errors[0].1.contains(needle),
        "{:?} does not mention {needle:?}",
        errors[0].1
    );
}

/// RATING with line `n` (1-based) replaced.
fn replace_line(n: usize, with: &str) -> String {
    RATING
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { with } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_base_rating_mapping_loads_and_has_19_lines() {
    assert!(rating_with("").is_ok());
    assert_eq!(RATING.lines().count(), 19);
    assert_eq!(RATING.lines().nth(17), Some("score = \"pf\""));
}

#[test]
fn load_error_toml_syntax() {
    assert_one_error(&replace_line(18, "score = "), 18, "TOML syntax error");
}

#[test]
fn load_error_unknown_target_field() {
    assert_one_error(
        &format!("{RATING}scroe = \"pf\"\n"),
        20,
        "unknown target field `scroe`",
    );
    assert_one_error(
        &format!("{RATING}\"rectification.statuss\" = \"x\"\n"),
        20,
        "unknown target field `rectification.statuss`",
    );
    assert_one_error(
        &format!("{RATING}comment.text = \"pl\"\n"),
        20,
        "`comment` is a string field, not a record",
    );
}

#[test]
fn load_error_unknown_target_schema() {
    assert_one_error(
        &replace_line(1, "target = \"ratings\""),
        1,
        "unknown target schema `ratings`",
    );
}

#[test]
fn load_error_const_of_the_wrong_type() {
    assert_one_error(
        &replace_line(18, "score = { const = \"five\" }"),
        18,
        "`const` does not fit `score` (int)",
    );
    assert_one_error(
        &format!("{RATING}channel = {{ const = \"FAX\" }}\n"),
        20,
        "not a symbol of the enum",
    );
    assert_one_error(
        &format!("{RATING}reason_tags = {{ const = [1, 2] }}\n"),
        20,
        "`const` does not fit `reason_tags`",
    );
}

#[test]
fn load_error_code_outside_the_enum() {
    let text = format!("{RATING}\n[fields.level]\npath = \"pj\"\n\n[fields.level.codes]\n\"5\" = \"VERY_SATISFIED\"\n\"1\" = \"TERRIBLE\"\n");
    assert_one_error(&text, 26, "code table value for \"1\" does not fit `level`");
    assert!(load_errors(&text)[0]
        .1
        .contains("\"TERRIBLE\" is not a symbol"));
}

#[test]
fn load_error_datetime_into_a_boolean() {
    assert_one_error(
        &format!("{RATING}\"rectification.revisit_satisfied\" = {{ path = \"x\", datetime = \"auto\" }}\n"),
        20,
        "`datetime` cannot fill `rectification.revisit_satisfied`, a boolean field",
    );
    // Into a string it is fine.
    assert!(rating_with("comment = { path = \"x\", datetime = \"auto\" }\n").is_ok());
}

#[test]
fn load_error_bad_date_format() {
    assert_one_error(
        &replace_line(
            19,
            "rated_time = { path = \"pjsj\", datetime = \"%Y-%m-%d %Q\" }",
        ),
        19,
        "%Q is not supported",
    );
    assert_one_error(
        &replace_line(
            19,
            "rated_time = { path = \"pjsj\", datetime = \"yyyy-MM-dd\" }",
        ),
        19,
        "bad date format",
    );
    assert_one_error(
        &replace_line(
            19,
            "rated_time = { path = \"pjsj\", zone = \"Asia/Beijing\" }",
        ),
        19,
        "unknown time zone",
    );
}

#[test]
fn load_error_required_field_unmapped() {
    // Without case_no (line 13), the error points at [fields] (line 8).
    let text = RATING.replace("case_no = \"bjbh\"\n", "");
    assert_one_error(&text, 8, "required field `case_no` (string) has no rule");
    // A required field inside a mapped record points at that record's rule (line 16).
    let text = GRID_MIN.replace(
        "location = { fields = { address = { const = \"-\" } } }",
        "location = { fields = { lng = \"x\" } }",
    );
    assert_one_error(
        &text,
        16,
        "required field `location.address` (string) has no rule",
    );
}

#[test]
fn load_error_unknown_or_misplaced_validator() {
    assert_one_error(
        &format!("{RATING}comment = {{ path = \"pl\", validate = \"id_card\" }}\n"),
        20,
        "unknown validator `id_card`",
    );
    assert_one_error(
        &replace_line(18, "score = { path = \"pf\", validate = \"phone\" }"),
        18,
        "validator `phone` checks text",
    );
    // A constant is validated at load.
    assert_one_error(&replace_line(11, "\"envelope.provider_org_code\" = { const = \"12610000MB2960F19F\", validate = \"uscc\" }"), 11, "fails the uscc check");
}

#[test]
fn load_error_rule_shape() {
    assert_one_error(
        &format!("{RATING}comment = {{ pth = \"pl\" }}\n"),
        20,
        "unknown key `pth`",
    );
    assert_one_error(
        &format!("{RATING}comment = {{ path = \"pl\", const = \"x\" }}\n"),
        20,
        "has both `path` and `const`",
    );
    assert_one_error(
        &format!("{RATING}comment = {{ trim = true }}\n"),
        20,
        "has no source",
    );
    assert_one_error(&format!("{RATING}comment = \"a..b\"\n"), 20, "bad raw path");
    assert_one_error(&format!("{RATING}comment = 5\n"), 20, "must be a raw path");
    assert_one_error(
        &format!("{RATING}comment = {{ path = \"pl\", money = \"yuan\" }}\n"),
        20,
        "`money` needs an int or long field",
    );
    assert_one_error(
        &format!("{RATING}comment = {{ template = \"{{pl\" }}\n"),
        20,
        "without `}`",
    );
    assert_one_error(
        &format!(
            "{RATING}comment = {{ path = \"x\", when = {{ path = \"a\", exists = true }} }}\n"
        ),
        20,
        "`when` does not apply",
    );
    assert_one_error(&format!("{RATING}level = {{ cases = [{{ if = {{ path = \"a\", equal = 1 }}, then = \"SATISFIED\" }}] }}\n"), 20, "unknown key `equal` in a condition");
}

#[test]
fn load_error_field_mapped_twice_and_engine_fields() {
    // TOML itself rejects a repeated key; a quoted dotted path and a table can still name one field twice.
    assert_one_error(
        &format!("{RATING}rating_id = \"x\"\n"),
        20,
        "duplicate key `rating_id`",
    );
    assert_one_error(
        &format!("{RATING}\"rectification.reply\" = \"a\"\nrectification = {{ fields = {{ reply = \"b\" }} }}\n"),
        21,
        "second rule (the first is on line 20)",
    );
    assert_one_error(
        &format!("{RATING}\"envelope.record_id\" = \"id\"\n"),
        20,
        "filled by the engine",
    );
}

#[test]
fn load_error_union_without_branch() {
    let text = "target = \"dept_record\"\nsource_system = \"d\"\n[record_id]\nsource_record_id = \"k\"\nsource_version = \"v\"\n[fields]\n\"envelope.event_time\" = \"t\"\n\"envelope.region_code\" = \"r\"\n\"envelope.provider_org_code\" = \"o\"\ndept_org_code = \"o\"\ndept_name = \"n\"\ntable_name = \"t\"\nrecord_key = \"k\"\npayload = { path = \"row\" }\n";
    assert_one_error(text, 14, "say which with `branch");
    assert_one_error(
        &text.replace(
            "{ path = \"row\" }",
            "{ path = \"row\", branch = \"Dibao\" }",
        ),
        14,
        "no union branch `Dibao`",
    );
}

#[test]
fn load_error_missing_top_level_parts() {
    let errors = load_errors("target = \"rating\"\nsorce_system = \"x\"\n");
    let reasons: Vec<&str> = errors.iter().map(|(_, r)| r.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("unknown key `sorce_system`")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing `source_system")),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("missing [record_id]")),
        "{reasons:#?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("required field `rating_id`")),
        "{reasons:#?}"
    );
    assert_eq!(
        errors
            .iter()
            .find(|(_, r)| r.contains("sorce_system"))
            .unwrap()
            .0,
        2
    );
}

#[test]
fn all_load_errors_are_reported_in_line_order() {
    let text = replace_line(18, "score = { const = \"five\" }").replace(
        "case_no = \"bjbh\"",
        "case_no = { path = \"bjbh\", validate = \"nope\" }",
    ) + "\nscroe = 1\ncomment = { path = \"x\", datetime = \"%Q\" }\n";
    let errors = load_errors(&text);
    let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [13, 18, 20, 21], "{errors:#?}");
    let rendered = Mapping::from_str(&text, "m/rating.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(rendered.lines().count(), 4);
    assert!(
        rendered.lines().all(|l| l.starts_with("m/rating.toml:")),
        "{rendered}"
    );
}

#[test]
fn load_reports_a_missing_file() {
    let e = Mapping::load("/nonexistent/grid_event.toml").unwrap_err();
    assert!(matches!(e, MappingError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/grid_event.toml"));
}
