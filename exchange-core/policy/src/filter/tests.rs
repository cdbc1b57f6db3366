use super::*;
use proptest::prelude::*;
use serde_json::json;

fn schema() -> &'static Schema {
    unsilo_schemas::shared_schema("grid_event").unwrap().avro()
}

/// The grid_event example, edited, converted and round-tripped through Avro binary (as records arrive).
fn record_with(edit: impl FnOnce(&mut serde_json::Value)) -> Value {
    let mut json = unsilo_schemas::example_record("grid_event").unwrap();
    edit(&mut json);
    let value = unsilo_schemas::json_to_avro(&json, schema()).unwrap();
    let bytes = apache_avro::to_avro_datum(schema(), value).unwrap();
    apache_avro::from_avro_datum(schema(), &mut bytes.as_slice(), None).unwrap()
}

fn example() -> Value {
    record_with(|_| {})
}

fn compile(src: &str) -> Filter {
    Filter::compile(src, schema()).unwrap_or_else(|e| panic!("{src}: {e}\n{}", e.snippet()))
}

fn compile_err(src: &str) -> FilterError {
    match Filter::compile(src, schema()) {
        Ok(_) => panic!("`{src}` compiled but should not"),
        Err(e) => e,
    }
}

fn eval(src: &str, record: &Value) -> Result<bool, EvalError> {
    compile(src).evaluate(record)
}

const EXAMPLE_FILTER: &str =
    r#"region_code.startsWith("610921") && event_type_code in ["dispute", "safety"]"#;

#[test]
fn the_example_filter() {
    let f = compile(EXAMPLE_FILTER);
    // The example record has event type 0101.
    assert!(!f.matches(&example()));
    let dispute = record_with(|j| j["event_type_code"] = json!("dispute"));
    assert!(f.matches(&dispute));
    let safety = record_with(|j| j["event_type_code"] = json!("safety"));
    assert!(f.matches(&safety));
    let elsewhere = record_with(|j| {
        j["event_type_code"] = json!("dispute");
        j["envelope"]["region_code"] = json!("610922100001");
    });
    assert!(!f.matches(&elsewhere));
    assert_eq!(f.source(), EXAMPLE_FILTER);
    assert_eq!(
        f.fields(),
        vec![
            "envelope.region_code".to_string(),
            "event_type_code".to_string()
        ]
    );
}

#[test]
fn operators_and_functions() {
    let rec = example();
    let cases: &[(&str, bool)] = &[
        ("true", true),
        ("false", false),
        ("1 + 2 * 3 == 7", true),
        ("(1 + 2) * 3 == 9", true),
        ("7 / 2 == 3", true),
        ("-7 / 2 == -3", true),
        ("7 % 3 == 1", true),
        ("10 - 2 - 3 == 5", true),
        ("1.5 * 2.0 == 3.0", true),
        ("1 + 0.5 == 1.5", true),
        ("3 / 2.0 == 1.5", true),
        ("- -2 == 2", true),
        ("-attachment_count == -3", true),
        ("'ab' + \"c\" == \"abc\"", true),
        ("attachment_count == 3", true),
        ("attachment_count != 3", false),
        ("attachment_count > 2 && attachment_count <= 3", true),
        ("attachment_count < 3 || attachment_count >= 4", false),
        ("attachment_count >= 3.0", true),
        ("attachment_count > 2.5", true),
        ("attachment_count == 3.0", true),
        ("9007199254740993 == 9007199254740992.0", false),
        ("location.lng > 108.5 && location.lng < 108.6", true),
        ("location.lat == 32.893562", true),
        ("location.lng > 108", true),
        ("108 < location.lng", true),
        ("5 > attachment_count", true),
        ("5 <= attachment_count", false),
        ("region_code < '7'", true),
        ("'7' > region_code", true),
        ("region_code >= '610921100001'", true),
        ("envelope.event_time <= 1718674335000", true),
        ("envelope.event_time < 1718674335000", false),
        ("attachment_count in [1, 3]", true),
        ("attachment_count in [1.0, 3.5]", false),
        ("location.coord_system in ['WGS84', 'CGCS2000']", true),
        ("!false", true),
        ("!!true", true),
        ("!(1 > 2)", true),
        ("(true ? 1 : 2) == 1", true),
        ("(false ? 1 : 2) == 1", false),
        ("(attachment_count > 5 ? 'many' : 'few') == 'few'", true),
        ("false || true", true),
        ("false || false", false),
        ("true && false", false),
        ("\"a\" < \"b\"", true),
        ("\"b\" >= \"a\"", true),
        ("\"b\" <= \"a\"", false),
        ("\"汉\" > \"a\"", true),
        ("region_code in ['610921100001', 'x']", true),
        ("region_code in ['x']", false),
        ("2 in [1, 2, 3]", true),
        ("2.0 in [1, 2, 3]", true),
        ("4 in [1, 2, 3]", false),
        ("1 in []", false),
        ("'HH6109211000010030017' in household_ids", true),
        ("'nope' in household_ids", false),
        ("event_no in [event_no, 'x']", true),
        ("size(household_ids) == 2", true),
        ("household_ids.size() == 2", true),
        ("parties.size() == 2", true),
        ("size('汉阴') == 2", true),
        ("size([]) == 0", true),
        ("event_type_name.size() == 4", true),
        ("title.contains('排水沟')", true),
        ("title.contains('火灾')", false),
        ("title.startsWith('南街')", true),
        ("title.endsWith('争执')", true),
        ("title.endsWith('南街')", false),
        ("category.startsWith('DIS')", true),
        ("reporter.phone.matches('^1[3-9][0-9]{9}$')", true),
        ("matches(event_no, '^SJ\\\\d+$')", true),
        ("event_no.matches('^X')", false),
        ("'it\\'s' == \"it's\"", true),
        ("\"say \\\"hi\\\"\".size() == 8", true),
        ("'\\u6c49' == '汉'", true),
        ("'a\\tb'.size() == 3", true),
        ("'a\\nb' != 'a\\\\nb'", true),
        ("0x10 == 16", true),
        ("-9223372036854775808 < 0", true),
        ("1e3 == 1000.0", true),
        ("1.5e-1 == 0.15", true),
        ("[1, 2] == [1, 2]", true),
        ("[1, 2.0] == [1, 2]", true),
        ("[1, 2] != [2, 1]", true),
        (
            "household_ids == ['HH6109211000010030017', 'HH6109211000010030018']",
            true,
        ),
        ("[attachment_count, 1] == [3, 1]", true),
        ("null == null", true),
        ("envelope.grid_code != null", true),
        ("grid_code == '610921100001003'", true),
        ("hotline_ticket_no == null", true),
        ("hotline_ticket_no == 'x'", false),
        ("reported_time > 1700000000000", true),
        ("envelope.event_time == reported_time", true),
        ("category == 'DISPUTE'", true),
        ("'DISPUTE' == category", true),
        ("category in ['DISPUTE', 'SAFETY_HAZARD']", true),
        ("urgency != 'URGENT'", true),
        ("location.coord_system == 'CGCS2000'", true),
        (
            "data_grade == 'GENERAL' && share_attribute == 'CONDITIONAL'",
            true,
        ),
        ("// a comment\n true", true),
        ("true // trailing comment", true),
        ("has(occurred_time)", true),
        ("has(hotline_ticket_no)", false),
        ("has(grid_code)", true),
        ("has(location.lng)", true),
        ("has(event_no)", true),
        ("has(reporter.phone)", true),
    ];
    for (src, want) in cases {
        assert_eq!(eval(src, &rec), Ok(*want), "{src}");
    }
}

#[test]
fn precedence_follows_cel() {
    let rec = example();
    // `&&` binds tighter than `||`, `?:` is loosest, `!` applies to the member expression only.
    assert_eq!(eval("true || false && false", &rec), Ok(true));
    assert_eq!(eval("(true || false) && false", &rec), Ok(false));
    assert_eq!(eval("false ? false : true || false", &rec), Ok(true));
    assert_eq!(eval("!true || true", &rec), Ok(true));
    assert_eq!(eval("1 + 2 < 4 == true", &rec), Ok(true));
    assert_eq!(eval("2 * 3 % 4 == 2", &rec), Ok(true));
}

#[test]
fn enum_symbols_are_checked() {
    let e = compile_err("category == \"dispute\"");
    assert_eq!(e.column(), 13);
    assert_eq!(
        e.message(),
        "\"dispute\" is not a symbol of enum GridEventCategory (symbols: DISPUTE, PUBLIC_SECURITY, \
         SAFETY_HAZARD, ENVIRONMENT, INFRASTRUCTURE, LIVELIHOOD, HEALTH, PETITION, OTHER, UNKNOWN)"
    );
    let e = compile_err("category in ['DISPUTE', 'FIRE']");
    assert!(e
        .message()
        .starts_with("\"FIRE\" is not a symbol of enum GridEventCategory"));
    assert_eq!(e.column(), 25);
    assert!(compile_err("'FAST' != urgency")
        .message()
        .contains("NORMAL, URGENT, CRITICAL"));
    assert!(compile_err("urgency < 'X'")
        .message()
        .contains("enum Urgency"));
    let e = compile_err("parties.exists(p, p.role == 'victim')");
    assert!(
        e.message()
            .contains("symbols: APPLICANT, RESPONDENT, VICTIM"),
        "{e}"
    );
    // The workflow stage is a named-type reference (`unsilo.grid.WorkflowStage`): resolved too.
    let e = compile_err("workflow.exists(w, w.stage == 'CLOSD')");
    assert!(e.message().contains("enum WorkflowStage"), "{e}");
    assert!(compile("workflow.exists(w, w.stage == 'CLOSED')").matches(&example()));
    // A string that is not a literal cannot be checked, and is fine.
    assert_eq!(eval("category == event_no", &example()), Ok(false));
}

#[test]
fn nullable_fields() {
    let rec = example();
    let with_ticket = record_with(|j| j["hotline_ticket_no"] = json!("12345-2024-1"));
    let f = compile("hotline_ticket_no.startsWith('12345')");
    assert!(f.matches(&with_ticket));
    assert!(!f.matches(&rec));
    let err = f.evaluate(&rec).unwrap_err();
    assert_eq!(err.kind(), EvalErrorKind::Null);
    assert!(compile("has(hotline_ticket_no)").matches(&with_ticket));

    let no_lng = record_with(|j| j["location"]["lng"] = json!(null));
    assert_eq!(
        eval("location.lng > 100.0", &no_lng).unwrap_err().kind(),
        EvalErrorKind::Null
    );
    // Default deny even under negation: the error propagates through `!`.
    assert!(!compile("!(location.lng > 100.0)").matches(&no_lng));
    assert!(compile("!has(location.lng)").matches(&no_lng));
    assert!(compile("location.lng == null").matches(&no_lng));
    // A nullable value compared for equality with a non-null value is simply unequal.
    assert_eq!(eval("location.lng == 1.0", &no_lng), Ok(false));
    assert_eq!(eval("location.lng != 1.0", &no_lng), Ok(true));
    // Commutative error semantics of && and ||.
    assert_eq!(eval("location.lng > 100.0 || true", &no_lng), Ok(true));
    assert_eq!(eval("true || location.lng > 100.0", &no_lng), Ok(true));
    assert_eq!(eval("location.lng > 100.0 && false", &no_lng), Ok(false));
    assert_eq!(eval("false && location.lng > 100.0", &no_lng), Ok(false));
    assert!(eval("location.lng > 100.0 && true", &no_lng).is_err());
    assert!(eval("location.lng > 100.0 || false", &no_lng).is_err());
    assert!(eval("(location.lng > 100.0 ? 1 : 2) == 1", &no_lng).is_err());

    // Non-nullable fields are never null: comparing them with null is a compile error.
    let e = compile_err("region_code == null");
    assert_eq!(
        e.message(),
        "`==` cannot compare string with null (the value is never null)"
    );
}

#[test]
fn exists_and_all_over_records() {
    let rec = example();
    let victim = compile("parties.exists(p, p.role == 'VICTIM')");
    assert!(!victim.matches(&rec));
    let with_victim = record_with(|j| {
        j["parties"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "李四", "role": "VICTIM"}))
    });
    assert!(victim.matches(&with_victim));
    assert_eq!(
        victim.fields(),
        vec!["parties".to_string(), "parties.role".to_string()]
    );

    assert_eq!(eval("parties.all(p, has(p.cert_no))", &rec), Ok(true));
    assert_eq!(
        eval("parties.all(p, has(p.cert_no))", &with_victim),
        Ok(false)
    );
    assert_eq!(eval("parties.all(p, p.name.size() == 3)", &rec), Ok(true));
    // The second party has no phone: exists() still finds the first, all() cannot decide.
    assert_eq!(
        eval("parties.exists(p, p.phone.startsWith('159'))", &rec),
        Ok(true)
    );
    assert_eq!(
        eval("parties.all(p, p.phone.startsWith('159'))", &rec)
            .unwrap_err()
            .kind(),
        EvalErrorKind::Null
    );
    assert_eq!(
        eval("parties.all(p, p.phone.startsWith('000'))", &rec),
        Ok(false)
    );
    assert!(eval("parties.exists(p, p.phone.startsWith('000'))", &rec).is_err());
    assert_eq!(
        eval(
            "workflow.exists(w, w.stage == 'CLOSED' && w.level == 'VILLAGE')",
            &rec
        ),
        Ok(true)
    );
    assert_eq!(
        eval("workflow.all(w, w.time >= envelope.event_time)", &rec),
        Ok(true)
    );
    // Nested macros see both variables; a variable shadows a field of the same name.
    assert_eq!(
        eval(
            "parties.exists(p, household_ids.exists(h, h.endsWith('0017') && p.role == 'APPLICANT'))",
            &rec
        ),
        Ok(true)
    );
    assert_eq!(
        eval("parties.exists(title, title.name == '张德明')", &rec),
        Ok(true)
    );
    assert_eq!(eval("[1, 2, 3].exists(x, x > 2)", &rec), Ok(true));
    assert_eq!(eval("[1, 2, 3].all(x, x > 1)", &rec), Ok(false));
    assert_eq!(eval("[attachment_count].all(x, x == 3)", &rec), Ok(true));
    let nobody = record_with(|j| j["parties"] = json!([]));
    assert_eq!(eval("parties.exists(p, true)", &nobody), Ok(false));
    assert_eq!(eval("parties.all(p, false)", &nobody), Ok(true));
    // The variable is not visible outside its macro.
    assert!(compile_err("parties.exists(p, true) && p.name == 'x'")
        .message()
        .starts_with("unknown field `p`"));
}

#[test]
fn unknown_fields_are_reported_with_a_suggestion() {
    let e = compile_err("regoin_code.startsWith(\"610921\")");
    assert_eq!(
        e.to_string(),
        "filter, column 1: unknown field `regoin_code` (did you mean `region_code`?)"
    );
    assert_eq!((e.line(), e.column()), (1, 1));
    assert_eq!(e.snippet(), "regoin_code.startsWith(\"610921\")\n^");

    let e = compile_err("location.lgn > 1.0");
    assert_eq!(
        e.message(),
        "unknown field `location.lgn` (did you mean `location.lng`?)"
    );
    assert_eq!(e.column(), 10);
    assert!(compile_err("lng > 1.0")
        .message()
        .contains("did you mean `location.lng`?"));
    assert!(compile_err("envelope.regoin_code == ''")
        .message()
        .contains("did you mean `envelope.region_code`?"));
    assert!(compile_err("parties.exists(p, p.rol == 'VICTIM')")
        .message()
        .contains("did you mean `p.role`?"));
    let e = compile_err("zzzzzz == 1");
    assert!(
        e.message()
            .starts_with("unknown field `zzzzzz` (fields of GridEvent: envelope, event_no"),
        "{e}"
    );

    let e = compile_err("true &&\n  regoin_code == 'x'");
    assert_eq!(
        e.to_string(),
        "filter, line 2, column 3: unknown field `regoin_code` (did you mean `region_code`?)"
    );
    assert_eq!(e.snippet(), "  regoin_code == 'x'\n  ^");
    assert!(compile_err("event_no.value == 'x'")
        .message()
        .contains("`event_no` is string, not a record"));
}

#[test]
fn type_errors_are_reported() {
    let e = compile_err("region_code > 5");
    assert_eq!(
        e.to_string(),
        "filter, column 13: `>` cannot be applied to string and int"
    );
    assert_eq!(e.snippet(), "region_code > 5\n            ^");
    let cases: &[(&str, &str)] = &[
        ("foo(1)", "unknown function `foo` (supported: has, size,"),
        (
            "region_code.startswith('6')",
            "unknown function `startswith` (did you mean `startsWith`?)",
        ),
        (
            "region_code.startsWith('6', '7')",
            "`startsWith` takes 1 argument (s.startsWith(x)), got 2",
        ),
        (
            "startsWith(region_code, '6')",
            "`startsWith` is called as a method",
        ),
        ("size() == 1", "`size` takes 1 argument"),
        ("title.size(1) == 1", "`size` takes 0 arguments"),
        (
            "size(attachment_count) == 1",
            "size() needs a string or a list, but this is int",
        ),
        ("has(1)", "has() needs a field"),
        ("has(a.b, c)", "`has` takes 1 argument"),
        (
            "attachment_count",
            "a filter must be a bool expression, but this is int",
        ),
        (
            "title",
            "a filter must be a bool expression, but this is string",
        ),
        (
            "region_code.matches(title)",
            "the pattern of matches() must be a string literal",
        ),
        ("title.matches('(')", "invalid regular expression"),
        (
            "attachment_count.matches('1')",
            "matches() needs a string, but got int",
        ),
        (
            "parties.exists(1, true)",
            "the first argument of exists() must be a variable name",
        ),
        (
            "parties.exists(p, 1)",
            "the predicate of exists() must be a bool, but it is int",
        ),
        (
            "attachment_count.exists(x, true)",
            "exists() needs a list, but this is int",
        ),
        ("parties.all(p)", "`all` takes 2 arguments"),
        (
            "[1, 'a'] == []",
            "list elements must have one type, but this is string after int",
        ),
        (
            "(true ? 1 : 'a') == 1",
            "the branches of `?:` have different types: int and string",
        ),
        (
            "(1 ? 1 : 2) == 1",
            "the condition of `?:` must be a bool, but it is int",
        ),
        (
            "location == 1",
            "`==` cannot compare record Location with int",
        ),
        (
            "'a' in region_code",
            "the right side of `in` must be a list, but it is string",
        ),
        (
            "1 in household_ids",
            "`in` cannot look for int in list(string)",
        ),
        ("9223372036854775808 > 1", "integer literal is out of range"),
        ("1 % 2.0 == 1", "`%` cannot be applied to int and double"),
        (
            "'a' - 'b' == ''",
            "`-` cannot be applied to string and string",
        ),
        ("!1", "`!` needs a bool, but its operand is int"),
        (
            "-'a' == 'a'",
            "`-` needs a number, but its operand is string",
        ),
        (
            "attachment_count && true",
            "`&&` needs bool operands, but `attachment_count` is int",
        ),
        ("parties == []", "`==` cannot compare list(record Party)"),
        ("region_code ==", "unexpected end of the filter"),
        ("region_code = 'x'", "unexpected `=` (use `==` to compare)"),
        ("a & b", "use `&&`"),
        (
            "(true",
            "expected `)` to close `(`, found the end of the filter",
        ),
        ("true)", "unexpected `)` after the end of the expression"),
        ("'abc", "unterminated string"),
        ("'a\\qb' == ''", "unknown escape `\\q`"),
        ("'\\u12' == ''", "`\\u` needs exactly 4 hex digits"),
        ("'\\ud800' == ''", "surrogate"),
        ("1u == 1", "unsigned integer literals are not supported"),
        ("12abc == 1", "invalid character in number literal"),
        ("1e == 1", "exponent needs digits"),
        (".5 == 1", "a number needs a digit before the decimal point"),
        ("{} == 1", "map literals are not supported"),
        (
            "household_ids[0] == 'x'",
            "indexing with `[…]` is not supported",
        ),
        ("title.'x'", "expected a field or function name after `.`"),
        ("f(1 2)", "expected `,` or `)` in the argument list"),
        ("[1 2]", "expected `,` or `]` in the list"),
        ("#", "unexpected character `#`"),
        ("", "filter is empty"),
        ("  // only a comment", "filter is empty"),
    ];
    for (src, want) in cases {
        let e = compile_err(src);
        assert!(
            e.message().contains(want),
            "`{src}`: got `{}`, want `{want}`",
            e.message()
        );
    }
}

#[test]
fn limits() {
    let long = format!("true{}", " ".repeat(MAX_SOURCE_CHARS - 4));
    assert!(Filter::compile(&long, schema()).is_ok());
    let too_long = format!("{long} ");
    let e = compile_err(&too_long);
    assert_eq!(e.message(), "filter is longer than 4096 characters");
    assert_eq!(e.column(), MAX_SOURCE_CHARS + 1);
    // Multi-byte characters count as one.
    let cjk = format!("'{}' == ''", "汉".repeat(MAX_SOURCE_CHARS - 8));
    assert!(Filter::compile(&cjk, schema()).is_ok());

    let parens = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
    assert!(Filter::compile(&parens(60), schema()).is_ok());
    let deep = [
        parens(65),
        parens(2000),
        format!("{}true", "!".repeat(65)),
        format!("{}1 == 1", "-".repeat(3000)),
        format!("true{}", " && true".repeat(64)),
        format!("1{} == 1", " + 1".repeat(500)),
        format!("{}true{}", "[".repeat(1000), "]".repeat(1000)),
        format!("{}true{}", "size(".repeat(500), ")".repeat(500)),
        format!("a{}", ".b".repeat(2000)),
        format!("{} true", "true ? true :".repeat(300)),
    ];
    for src in &deep {
        let e = compile_err(src);
        assert!(
            e.message().contains("nested deeper than 64 levels")
                || e.message().contains("longer than"),
            "{}: {}",
            &src[..20],
            e.message()
        );
    }
    assert_eq!(
        compile_err(&format!("true{}", " && true".repeat(64))).message(),
        "filter is nested deeper than 64 levels"
    );
    assert!(Filter::compile(&format!("true{}", " && true".repeat(60)), schema()).is_ok());
}

#[test]
fn runtime_errors_deny() {
    let rec = example();
    let cases: &[(&str, EvalErrorKind)] = &[
        ("attachment_count / 0 == 1", EvalErrorKind::DivisionByZero),
        ("attachment_count % 0 == 1", EvalErrorKind::DivisionByZero),
        (
            "9223372036854775807 + attachment_count > 0",
            EvalErrorKind::Overflow,
        ),
        (
            "-9223372036854775807 - attachment_count < 0",
            EvalErrorKind::Overflow,
        ),
        (
            "9223372036854775807 * attachment_count > 0",
            EvalErrorKind::Overflow,
        ),
        (
            "-(attachment_count - 9223372036854775807 - 4) > 0",
            EvalErrorKind::Overflow,
        ),
        (
            "(attachment_count - 9223372036854775807 - 4) / -1 > 0",
            EvalErrorKind::Overflow,
        ),
    ];
    for (src, kind) in cases {
        let f = compile(src);
        assert_eq!(f.evaluate(&rec).map_err(|e| e.kind()), Err(*kind), "{src}");
        assert!(!f.matches(&rec), "{src}");
        // A failing operand under `!` still denies.
        assert!(!compile(&format!("!({src})")).matches(&rec), "{src}");
    }
    // Doubles follow IEEE 754.
    assert_eq!(eval("location.lng / 0.0 > 1.0", &rec), Ok(true));
    // A value that is not a record.
    let f = compile("true && region_code == ''");
    assert_eq!(
        f.evaluate(&Value::Int(1)).unwrap_err().kind(),
        EvalErrorKind::Record
    );
}

#[test]
fn records_with_another_layout_fall_back_to_names() {
    let Value::Record(mut fields) = example() else {
        panic!("not a record")
    };
    fields.reverse();
    if let Some((_, Value::Record(env))) = fields.iter_mut().find(|(n, _)| n == "envelope") {
        env.reverse();
    }
    let reordered = Value::Record(fields.clone());
    assert!(
        compile("region_code.startsWith('610921') && attachment_count == 3").matches(&reordered)
    );
    assert!(compile("has(grid_code) && !has(hotline_ticket_no)").matches(&reordered));
    fields.retain(|(n, _)| n != "attachment_count");
    let missing = Value::Record(fields);
    let e = compile("attachment_count == 3")
        .evaluate(&missing)
        .unwrap_err();
    assert_eq!(e.kind(), EvalErrorKind::Record);
    assert_eq!(e.message(), "the record has no field `attachment_count`");
    assert_eq!(
        compile("has(attachment_count)").evaluate(&missing),
        Ok(false)
    );
}

#[test]
fn other_avro_types() {
    let schema = Schema::parse_str(
        r#"{"type": "record", "name": "T", "fields": [
            {"name": "u", "type": ["int", "string"]},
            {"name": "m", "type": {"type": "map", "values": "string"}},
            {"name": "f", "type": "float"},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "b", "type": ["null", "boolean"]},
            {"name": "r", "type": ["null", {"type": "record", "name": "R", "fields": [
                {"name": "x", "type": "long"}]}]},
            {"name": "tags", "type": {"type": "array", "items":
                {"type": "enum", "name": "Tag", "symbols": ["A", "B"]}}}
        ]}"#,
    )
    .unwrap();
    let value = |r: Value, b: Value| {
        Value::Record(vec![
            (
                "u".into(),
                Value::Union(1, Box::new(Value::String("s".into()))),
            ),
            ("m".into(), Value::Map(Default::default())),
            ("f".into(), Value::Float(1.5)),
            ("d".into(), Value::Date(19000)),
            ("b".into(), b),
            ("r".into(), r),
            (
                "tags".into(),
                Value::Array(vec![Value::Enum(1, "B".into())]),
            ),
        ])
    };
    let full = value(
        Value::Union(
            1,
            Box::new(Value::Record(vec![("x".into(), Value::Long(7))])),
        ),
        Value::Union(1, Box::new(Value::Boolean(true))),
    );
    let empty = value(
        Value::Union(0, Box::new(Value::Null)),
        Value::Union(0, Box::new(Value::Null)),
    );
    let c = |src: &str| Filter::compile(src, &schema).unwrap_or_else(|e| panic!("{src}: {e}"));
    assert!(c("has(u) && has(m)").matches(&full));
    assert!(c("f == 1.5 && d > 18000").matches(&full));
    assert!(c("b").matches(&full));
    assert_eq!(
        c("b").evaluate(&empty).unwrap_err().kind(),
        EvalErrorKind::Null
    );
    assert!(c("r.x == 7 && has(r.x)").matches(&full));
    assert_eq!(c("has(r.x)").evaluate(&empty), Ok(false));
    assert_eq!(c("has(r)").evaluate(&empty), Ok(false));
    assert_eq!(
        c("r.x == 7").evaluate(&empty).unwrap_err().kind(),
        EvalErrorKind::Null
    );
    assert!(c("'B' in tags && tags.all(t, t != 'A')").matches(&full));
    let err = |src: &str| {
        Filter::compile(src, &schema)
            .unwrap_err()
            .message()
            .to_string()
    };
    assert_eq!(
        err("u == 1"),
        "`u` is of type union, which a filter can only test with has()"
    );
    assert_eq!(
        err("size(m) == 0"),
        "`m` is of type map, which a filter can only test with has()"
    );
    assert!(err("'C' in tags").contains("not a symbol of enum Tag (symbols: A, B)"));
    assert!(err("x == 1").starts_with("unknown field `x` (did you mean `r.x`?)"));
    // The schema of a filter must be a record.
    let e = Filter::compile("true", &Schema::String).unwrap_err();
    assert_eq!(e.message(), "the schema of a filter must be an Avro record");
}

#[test]
fn match_all_matches_everything() {
    let f = Filter::match_all(schema());
    assert_eq!(f.source(), "true");
    assert!(f.fields().is_empty());
    assert!(f.matches(&example()));
    assert_eq!(f.evaluate(&example()), Ok(true));
}

#[test]
fn filter_is_clone_debug_send_sync() {
    fn assert_traits<T: Clone + fmt::Debug + Send + Sync + 'static>() {}
    assert_traits::<Filter>();
    assert_traits::<FilterError>();
    assert_traits::<EvalError>();
    let f = compile(EXAMPLE_FILTER);
    let g = f.clone();
    let handle = std::thread::spawn(move || g.matches(&example()));
    assert_eq!(handle.join().unwrap(), f.matches(&example()));
    assert!(format!("{f:?}").contains("Path"));
}

#[test]
fn fields_lists_what_the_filter_reads() {
    let f = compile(
        "has(location.lng) && reporter.name != '' && workflow.exists(w, has(w.due_time)) && grid_code != null",
    );
    assert_eq!(
        f.fields(),
        vec![
            "envelope.grid_code",
            "location",
            "location.lng",
            "reporter",
            "reporter.name",
            "workflow",
            "workflow.due_time",
        ]
    );
}

const ALPHABET: &[&str] = &[
    "region_code",
    "parties",
    "p",
    "p.role",
    "exists",
    "all",
    "has",
    "size",
    "matches",
    "startsWith",
    "location",
    ".",
    "lng",
    "(",
    ")",
    "[",
    "]",
    ",",
    "?",
    ":",
    "!",
    "-",
    "+",
    "*",
    "/",
    "%",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "&&",
    "||",
    "in",
    "'VICTIM'",
    "\"x\"",
    "'",
    "\"",
    "\\",
    "\\u",
    "1",
    "0",
    "9223372036854775808",
    "1.5",
    "1e",
    "0x",
    "true",
    "false",
    "null",
    " ",
    "\n",
    "汉",
    "{",
    "}",
    "=",
    "&",
    "|",
    "#",
    "attachment_count",
    "category",
    "'DISPUTE'",
    "household_ids",
    "w",
    "workflow",
    "w.stage",
    "title",
    "u",
    "\u{0}",
    "\u{200b}",
    "//",
];

/// Tiny deterministic generator so the garbage test needs no extra dependency.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn try_everything(src: &str, rec: &Value) {
    if let Ok(f) = Filter::compile(src, schema()) {
        let _ = f.evaluate(rec);
        let _ = f.fields();
    }
}

/// A random, mostly well-typed expression of kind `b`ool, `i`nt, `d`ouble or `s`tring (so that the
/// checker and the evaluator get exercised, not only the parser).
fn random_expr(rng: &mut XorShift, kind: char, depth: usize, in_p: bool) -> String {
    let leaves: &[&str] = match (kind, in_p) {
        ('b', false) => &["true", "false", "has(grid_code)", "has(location.lng)"],
        ('b', true) => &["true", "has(p.phone)", "p.role == 'VICTIM'"],
        ('i', _) => &[
            "attachment_count",
            "3",
            "0",
            "-1",
            "reported_time",
            "9223372036854775807",
            "size(title)",
        ],
        ('d', _) => &["location.lng", "2.5", "-0.0", "1e300"],
        (_, false) => &[
            "region_code",
            "category",
            "title",
            "'DISPUTE'",
            "hotline_ticket_no",
            "'汉'",
        ],
        (_, true) => &["p.name", "p.phone", "region_code", "'x'"],
    };
    if depth == 0 || rng.below(3) == 0 {
        return leaves[rng.below(leaves.len())].to_string();
    }
    let d = depth - 1;
    let mut r = |k: char| random_expr(rng, k, d, in_p);
    match kind {
        'b' => match r('i').len() % 10 {
            0 => format!("!({})", r('b')),
            1 => format!("{} && {}", r('b'), r('b')),
            2 => format!("({} || {})", r('b'), r('b')),
            3 => format!("{} < {}", r('i'), r('d')),
            4 => format!("{} == {}", r('i'), r('i')),
            5 => format!("{}.startsWith({})", r('s'), r('s')),
            6 => format!("{} in [{}, 'a']", r('s'), r('s')),
            7 => format!("({} ? {} : {})", r('b'), r('b'), r('b')),
            8 => format!("parties.exists(p, {})", random_expr(rng, 'b', d, true)),
            _ => format!("{} != {}", r('s'), r('s')),
        },
        'i' => match r('b').len() % 6 {
            0 => format!("({} + {})", r('i'), r('i')),
            1 => format!("({} - {})", r('i'), r('i')),
            2 => format!("{} * {}", r('i'), r('i')),
            3 => format!("{} / {}", r('i'), r('i')),
            4 => format!("{} % {}", r('i'), r('i')),
            _ => format!("-{}", r('i')),
        },
        'd' => format!("({} / {})", r('d'), r('i')),
        _ => format!("({} + {})", r('s'), r('s')),
    }
}

#[test]
fn filters_that_rule_a_value_out_are_recognised() {
    let rules_out = |src: &str| {
        Filter::compile(src, schema())
            .unwrap()
            .rules_out("envelope.data_grade", "CORE")
    };
    assert!(rules_out("data_grade == 'GENERAL'"));
    assert!(rules_out(
        "data_grade != 'CORE' && region_code.startsWith('6108')"
    ));
    assert!(rules_out(
        "region_code.startsWith('6108') && data_grade in ['GENERAL', 'IMPORTANT']"
    ));
    assert!(rules_out("!(data_grade == 'CORE')"));
    assert!(rules_out(
        "data_grade == 'GENERAL' || data_grade == 'IMPORTANT'"
    ));
    assert!(!rules_out("true"));
    assert!(!rules_out("data_grade == 'CORE'"));
    assert!(!rules_out("data_grade != 'GENERAL'"));
    assert!(!rules_out(
        "data_grade == 'GENERAL' || region_code.startsWith('6108')"
    ));
    assert!(!rules_out("!(data_grade != 'CORE')"));
}

#[test]
fn garbage_never_panics() {
    let rec = example();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut compiled = 0;
    for round in 0..20_000 {
        let mut src = String::new();
        if round % 2 == 0 {
            let n = rng.below(30);
            for _ in 0..n {
                if rng.below(8) == 0 {
                    src.push(char::from_u32(rng.below(0x3000) as u32).unwrap_or('?'));
                } else {
                    src.push_str(ALPHABET[rng.below(ALPHABET.len())]);
                }
            }
        } else {
            src = random_expr(&mut rng, 'b', 5, false);
            // Sometimes break it: cut it at a random character boundary.
            if rng.below(4) == 0 {
                let cut = rng.below(src.chars().count() + 1);
                src = src.chars().take(cut).collect();
            }
        }
        if Filter::compile(&src, schema()).is_ok() {
            compiled += 1;
        }
        try_everything(&src, &rec);
    }
    // The generator must reach the checker and evaluator, not only the lexer.
    assert!(compiled > 4000, "only {compiled} random filters compiled");
    // Hand-picked nasty inputs.
    for src in [
        "\"\\",
        "'\\u",
        "'\\u00'",
        "0x",
        "0xfffffffffffffffffff",
        "1e999",
        "1.0e-999999",
        "18446744073709551616",
        "-",
        "!",
        "?:",
        "a.",
        ".",
        "..",
        "()",
        "[,]",
        "[1,]",
        "has()",
        "has(p)",
        "parties.exists(p)",
        "parties.exists(p, p)",
        "parties.exists(region_code, region_code == 'x')",
        "'\u{10ffff}'",
        "\u{feff}true",
        "true\r\nfalse",
        "\t",
        "\n\n\n)",
        "size(size(size('')))",
        "-9223372036854775808",
        "--9223372036854775808 == 1",
        "title.matches('a{99999}{99999}')",
    ] {
        try_everything(src, &rec);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compile_never_panics_on_any_string(src in any::<String>()) {
        try_everything(&src, &example());
    }

    #[test]
    fn compile_never_panics_on_token_soup(parts in proptest::collection::vec(0..ALPHABET.len(), 0..40)) {
        let src: String = parts.iter().map(|&i| ALPHABET[i]).collect::<Vec<_>>().join(" ");
        try_everything(&src, &example());
    }

    #[test]
    fn int_comparisons_agree_with_rust(a in any::<i64>(), b in any::<i64>()) {
        let rec = example();
        let src = format!("{a} < {b} && {a} + 0 == {a}");
        prop_assert_eq!(eval(&src, &rec), Ok(a < b));
    }
}

#[test]
fn matches_over_long_text_blows_the_per_record_budget_and_does_not_match() {
    use super::{EvalErrorKind, MATCH_BUDGET_BYTES};
    let schema = unsilo_schemas::shared_schema("grid_event").unwrap();
    let mut record = unsilo_schemas::example_record("grid_event").unwrap();
    // Many calls over one long field: each scan is charged, and the sum is over the budget.
    let long = "网格".repeat(MATCH_BUDGET_BYTES / 12);
    record["description"] = serde_json::json!(long);
    let value = unsilo_schemas::json_to_avro(&record, schema.avro()).unwrap();
    let costly = Filter::compile(
        r#"description.matches("a") || description.matches("b") || description.matches("c") || description.matches("d") || description.matches("e")"#,
        schema.avro(),
    )
    .unwrap();
    let err = costly.evaluate(&value).unwrap_err();
    assert_eq!(err.kind(), EvalErrorKind::Budget, "{err}");
    assert!(!costly.matches(&value));
    // One scan within the budget still works, and the budget is per record (each evaluation starts afresh).
    let cheap = Filter::compile(r#"description.matches("网格")"#, schema.avro()).unwrap();
    assert!(cheap.matches(&value));
    assert!(cheap.matches(&value));
}
