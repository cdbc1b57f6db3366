//! The values of a mapping: conversions of raw values to the target's types, constants, code tables, templates,
//! conditions and the expected-shape checks.

use super::*;
use unsilo_schemas::avro::encoded_primitive;
use unsilo_schemas::model::Base;

/// What a constant, code table or `cases` arm written for one target field must become: the
/// conversion from the raw value, the target type, the validator, and the field's path (for errors).
#[derive(Clone, Copy)]
pub(super) struct ScalarSpec<'a> {
    pub(super) conv: &'a Conv,
    pub(super) target: &'a ScalarTarget,
    pub(super) validator: Option<Validator>,
    pub(super) path: &'a str,
}

impl Compiler<'_> {
    pub(super) fn conv(&mut self, rule: &Rule<'_>, ty: &ScalarType, path: &str) -> Option<Conv> {
        let datetime = rule.get("datetime");
        let zone_entry = rule.get("zone");
        let money_entry = rule.get("money");
        let mut ok = true;
        let formats = match datetime {
            None => None,
            Some(e) => {
                let texts: Vec<(&str, Span)> = match &e.value.kind {
                    Kind::Str(s) => vec![(s.as_str(), e.value.span)],
                    Kind::Array(items) if !items.is_empty() => items
                        .iter()
                        .filter_map(|i| i.as_str().map(|s| (s, i.span)))
                        .collect(),
                    _ => {
                        self.err(
                            e.value.span,
                            "`datetime` must be a format or a list of formats",
                        );
                        return None;
                    }
                };
                let mut formats = Vec::new();
                for (text, span) in texts {
                    match Format::parse(text) {
                        Ok(f) => formats.push(f),
                        Err(reason) => {
                            self.err(span, format!("bad date format for `{path}`: {reason}"));
                            ok = false;
                        }
                    }
                }
                Some(formats.into_boxed_slice())
            }
        };
        let zone = match zone_entry {
            None => Zone::default(),
            Some(e) => match self.string_node(e).map(Zone::parse) {
                Some(Ok(z)) => z,
                Some(Err(reason)) => {
                    self.err(e.value.span, reason);
                    ok = false;
                    Zone::default()
                }
                None => return None,
            },
        };
        let money = match money_entry {
            None => None,
            Some(e) => match self.string_node(e) {
                Some("yuan") => Some(2),
                Some("jiao") => Some(1),
                Some("fen") => Some(0),
                Some("wan_yuan") => Some(6),
                Some(other) => {
                    self.err(e.value.span, format!("unknown money unit `{other}` (yuan, jiao, fen, wan_yuan: the unit the source uses; the target is in fen)"));
                    return None;
                }
                None => return None,
            },
        };
        let is_time = matches!(
            ty,
            ScalarType::Date
                | ScalarType::TimestampMillis
                | ScalarType::TimestampMicros
                | ScalarType::TimestampNanos
                | ScalarType::LocalTimestampMillis
                | ScalarType::LocalTimestampMicros
                | ScalarType::LocalTimestampNanos
                | ScalarType::TimeMillis
                | ScalarType::TimeMicros
        );
        if let Some(e) = money_entry {
            if !matches!(ty, ScalarType::Int | ScalarType::Long) {
                self.err(
                    e.key_span,
                    format!(
                        "`money` needs an int or long field (amounts in fen); `{path}` is {}",
                        ty.describe()
                    ),
                );
                return None;
            }
            if let Some(d) = datetime {
                self.err(
                    d.key_span,
                    format!("`{path}` has both `money` and `datetime`"),
                );
                return None;
            }
        }
        if let (Some(z), None, false) = (zone_entry, datetime, is_time) {
            self.err(z.key_span, format!("`zone` only applies with `datetime` or to date and timestamp fields; `{path}` is {}", ty.describe()));
            return None;
        }
        let spec = DtSpec { formats, zone };
        let time = |unit| {
            Conv::Time(TimeConv {
                unit,
                spec: spec.clone(),
            })
        };
        let conv = match ty {
            ScalarType::String if datetime.is_some() => Conv::StrDatetime(spec.clone()),
            ScalarType::String => Conv::Str,
            ScalarType::Long if datetime.is_some() => time(TimeUnit::Millis),
            ScalarType::Long => Conv::Long { money },
            ScalarType::Int if datetime.is_none() => Conv::Int { money },
            ScalarType::Date => time(TimeUnit::Days),
            ScalarType::TimestampMillis => time(TimeUnit::Millis),
            ScalarType::TimestampMicros => time(TimeUnit::Micros),
            ScalarType::TimestampNanos => time(TimeUnit::Nanos),
            ScalarType::LocalTimestampMillis => time(TimeUnit::LocalMillis),
            ScalarType::LocalTimestampMicros => time(TimeUnit::LocalMicros),
            ScalarType::LocalTimestampNanos => time(TimeUnit::LocalNanos),
            ScalarType::TimeMillis | ScalarType::TimeMicros if datetime.is_some() => {
                self.datetime_misfit(datetime, ty, path);
                return None;
            }
            ScalarType::TimeMillis => time(TimeUnit::TimeOfDayMillis),
            ScalarType::TimeMicros => time(TimeUnit::TimeOfDayMicros),
            _ if datetime.is_some() => {
                self.datetime_misfit(datetime, ty, path);
                return None;
            }
            ScalarType::Int => Conv::Int { money },
            ScalarType::Float => Conv::Float,
            ScalarType::Double => Conv::Double,
            ScalarType::Bool => Conv::Bool,
            ScalarType::Enum(_) => Conv::Enum,
            ScalarType::Bytes => Conv::Bytes,
            ScalarType::Null => Conv::Null,
        };
        ok.then_some(conv)
    }

    pub(super) fn datetime_misfit(
        &mut self,
        datetime: Option<&Entry>,
        ty: &ScalarType,
        path: &str,
    ) {
        if let Some(d) = datetime {
            self.err(
                d.key_span,
                format!(
                    "`datetime` cannot fill `{path}`, a {} field (dates and times go into date, timestamp, long or string fields)",
                    ty.describe()
                ),
            );
        }
    }

    /// A rule for one scalar value.
    pub(super) fn value_plan(
        &mut self,
        rule: &Rule<'_>,
        mut target: ScalarTarget,
        path: &str,
        key: PathKey,
    ) -> Option<ValuePlan> {
        let validator = match rule.get("validate") {
            None => None,
            Some(e) => {
                let name = self.string_node(e)?;
                match Validator::from_name(name) {
                    Some(v) if target.ty == ScalarType::String => Some(v),
                    Some(v) => {
                        self.err(
                            e.key_span,
                            format!(
                                "validator `{v}` checks text; `{path}` is {}",
                                target.ty.describe()
                            ),
                        );
                        return None;
                    }
                    None => {
                        self.err(
                            e.value.span,
                            format!(
                                "unknown validator `{name}` (validators: {})",
                                Validator::ALL.map(Validator::as_str).join(", ")
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        target.mask = target.mask.with_validator(validator);
        let conv = self.conv(rule, &target.ty, path);
        let trim = match rule.get("trim") {
            Some(e) => self.bool_node(e).unwrap_or(false),
            None => false,
        };
        let blank_as_null = match rule.get("blank_as_null") {
            Some(e) => self.bool_node(e).unwrap_or(true),
            None => !matches!(target.ty, ScalarType::String | ScalarType::Bytes),
        };
        let path_node = match key {
            PathKey::Path => rule.shorthand.or(rule.get("path").map(|e| &e.value)),
            PathKey::Item => rule.get("item").map(|e| &e.value),
        };
        let path_key_name = if key == PathKey::Path { "path" } else { "item" };
        let sources: Vec<&str> = [
            (path_key_name, path_node.is_some()),
            ("const", rule.has("const")),
            ("template", rule.has("template")),
            ("concat", rule.has("concat")),
            ("cases", rule.has("cases")),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(name, _)| *name)
        .collect();
        if sources.len() > 1 {
            self.err(
                rule.span,
                format!(
                    "the rule for `{path}` has both `{}` and `{}`; a rule takes one of {path_key_name}, const, template, concat, cases",
                    sources[0], sources[1]
                ),
            );
            return None;
        }
        if rule.has("separator") && !rule.has("concat") {
            if let Some(e) = rule.get("separator") {
                self.err(e.key_span, "`separator` only applies with `concat`");
            }
        }
        if rule.has("else") && !rule.has("cases") {
            if let Some(e) = rule.get("else") {
                self.err(e.key_span, "`else` only applies with `cases`");
            }
        }
        let conv = conv?;
        let spec = ScalarSpec {
            conv: &conv,
            target: &target,
            validator,
            path,
        };
        let source = if let Some(node) = path_node {
            Source::Path(self.path_set(node, path)?)
        } else if let Some(c) = rule.get("const") {
            for k in ["trim", "blank_as_null", "codes", "default"] {
                if let Some(e) = rule.get(k) {
                    self.err(e.key_span, format!("`const` cannot be combined with `{k}`"));
                }
            }
            Source::Const(self.make_const(&c.value, spec, "`const`")?)
        } else if let Some(t) = rule.get("template") {
            let text = self.string_node(t)?;
            Source::Template(self.template(text, t.value.span, path)?)
        } else if let Some(c) = rule.get("concat") {
            let parts = match &c.value.kind {
                Kind::Array(items) if !items.is_empty() => {
                    let mut parts = Vec::new();
                    for i in items {
                        parts.push(self.path_set(i, path)?);
                    }
                    parts
                }
                _ => {
                    self.err(
                        c.value.span,
                        "`concat` must be a non-empty array of raw paths",
                    );
                    return None;
                }
            };
            let separator = match rule.get("separator") {
                Some(e) => self.string_node(e)?.into(),
                None => "".into(),
            };
            Source::Concat(Concat {
                parts: parts.into_boxed_slice(),
                separator,
            })
        } else if let Some(c) = rule.get("cases") {
            if let Some(e) = rule.get("codes") {
                self.err(
                    e.key_span,
                    "`codes` cannot be combined with `cases`; put the code table in a `then` rule",
                );
            }
            Source::Cases(Box::new(self.cases(c, rule.get("else"), spec)?))
        } else if key == PathKey::Item {
            Source::Element
        } else {
            self.err(
                rule.span,
                format!("the rule for `{path}` has no source: give path, const, template, concat or cases"),
            );
            return None;
        };
        let codes = match rule.get("codes") {
            None => None,
            Some(e) => Some(self.codes(e, spec)?),
        };
        let default = match rule.get("default") {
            None => None,
            Some(e) => Some(self.make_const(&e.value, spec, "`default`")?),
        };
        let single = match &source {
            Source::Path(p) => p.single().cloned(),
            _ => None,
        };
        let fast = match (single, &codes) {
            (Some(p), Some(_)) => Fast::Codes(p),
            (Some(p), None)
                if matches!(conv, Conv::Str) && !trim && !blank_as_null && validator.is_none() =>
            {
                Fast::Str(p)
            }
            _ => Fast::General,
        };
        Some(ValuePlan {
            fast,
            source,
            trim,
            blank_as_null,
            codes,
            default,
            conv,
            validate: validator,
            target,
        })
    }

    /// A constant (const, default, code-table value, cases arm) converted, validated and encoded at load.
    pub(super) fn make_const(
        &mut self,
        node: &Node,
        spec: ScalarSpec<'_>,
        what: &str,
    ) -> Option<ConstVal> {
        let ScalarSpec {
            conv,
            target,
            validator,
            path,
        } = spec;
        let json = node.to_json();
        if json.is_array() || json.is_object() {
            self.err(
                node.span,
                format!(
                    "{what} for `{path}` must be a single value, found {}",
                    node.type_name()
                ),
            );
            return None;
        }
        let converted = convert(Raw::Json(&json), conv, target).and_then(|v| match validator {
            Some(val) => validate(v, val, target.mask),
            None => Ok(v),
        });
        match converted {
            Ok(v) => Some(scalar_const(target, &v)),
            Err(fail) => {
                self.err(
                    node.span,
                    format!(
                        "{what} does not fit `{path}` ({}): {}",
                        target.ty.describe(),
                        fail.message
                    ),
                );
                None
            }
        }
    }

    pub(super) fn codes(&mut self, entry: &Entry, spec: ScalarSpec<'_>) -> Option<CodeTable> {
        let Some(entries) = entry.value.entries() else {
            self.err(
                entry.value.span,
                "`codes` must be a table of source code = target value",
            );
            return None;
        };
        if entries.is_empty() {
            self.err(entry.value.span, "`codes` is empty");
            return None;
        }
        let mut table = Vec::new();
        let mut ok = true;
        for e in entries {
            match self.make_const(&e.value, spec, &format!("code table value for {:?}", e.key)) {
                Some(c) => table.push((e.key.trim().into(), c)),
                None => ok = false,
            }
        }
        ok.then(|| CodeTable::new(table))
    }

    pub(super) fn arm(&mut self, node: &Node, spec: ScalarSpec<'_>) -> Option<Arm> {
        let ScalarSpec {
            target,
            validator,
            path,
            ..
        } = spec;
        match &node.kind {
            Kind::Table(keys) => {
                let entry = Entry {
                    key: "then".into(),
                    key_span: node.span,
                    value: Node {
                        span: node.span,
                        kind: Kind::Table(keys.clone()),
                    },
                };
                let rule = self.rule(&entry, path)?;
                let mut allowed = VALUE_KEYS.to_vec();
                allowed.retain(|k| *k != "validate");
                self.only(&rule, &allowed, "a cases arm of", path);
                let mut plan = self.value_plan(&rule, target.clone(), path, PathKey::Path)?;
                if plan.validate.is_none() {
                    plan.validate = validator;
                }
                Some(Arm::Plan(Box::new(plan)))
            }
            _ => Some(Arm::Const(self.make_const(
                node,
                spec,
                "a `then`/`else` value",
            )?)),
        }
    }

    pub(super) fn cases(
        &mut self,
        entry: &Entry,
        otherwise: Option<&Entry>,
        spec: ScalarSpec<'_>,
    ) -> Option<Cases> {
        let Kind::Array(items) = &entry.value.kind else {
            self.err(
                entry.value.span,
                "`cases` must be an array of { if = <condition>, then = <value> }",
            );
            return None;
        };
        let mut arms = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(keys) = item.entries() else {
                self.err(
                    item.span,
                    "each case must be a table { if = <condition>, then = <value> }",
                );
                ok = false;
                continue;
            };
            let mut cond = None;
            let mut then = None;
            for k in keys {
                match k.key.as_str() {
                    "if" => cond = Some(k),
                    "then" => then = Some(k),
                    other => {
                        self.err(
                            k.key_span,
                            format!("unknown key `{other}` in a case (if, then)"),
                        );
                        ok = false;
                    }
                }
            }
            let (Some(c), Some(t)) = (cond, then) else {
                self.err(item.span, "a case needs both `if` and `then`");
                ok = false;
                continue;
            };
            match (self.cond(&c.value), self.arm(&t.value, spec)) {
                (Some(c), Some(a)) => arms.push((c, a)),
                _ => ok = false,
            }
        }
        let otherwise = match otherwise {
            Some(e) => Some(self.arm(&e.value, spec)?),
            None => None,
        };
        ok.then(|| Cases {
            arms: arms.into_boxed_slice(),
            otherwise,
        })
    }

    pub(super) fn template(&mut self, text: &str, span: Span, path: &str) -> Option<Template> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        let mut placeholders = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let Some(end) = text[i + 1..].find('}').map(|p| p + i + 1) else {
                        self.err(span, format!("template for `{path}` has `{{` without `}}` (write `{{{{` for a literal brace)"));
                        return None;
                    };
                    let raw = &text[i + 1..end];
                    let parsed = match ParsedPath::parse(raw) {
                        Ok(p) => self.register(&p),
                        Err(e) => {
                            self.err(
                                span,
                                format!("template for `{path}`: bad placeholder {{{raw}}}: {e}"),
                            );
                            return None;
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(TemplatePart::Lit(std::mem::take(&mut lit).into()));
                    }
                    parts.push(TemplatePart::Path(PathSet::new(vec![parsed])));
                    placeholders += 1;
                    while chars.peek().is_some_and(|(j, _)| *j <= end) {
                        chars.next();
                    }
                }
                '}' => {
                    self.err(span, format!("template for `{path}` has `}}` without `{{` (write `}}}}` for a literal brace)"));
                    return None;
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(TemplatePart::Lit(lit.into()));
        }
        if placeholders == 0 {
            self.err(
                span,
                format!(
                    "template for `{path}` has no {{placeholder}}; use `const` for a fixed value"
                ),
            );
            return None;
        }
        Some(Template {
            parts: parts.into_boxed_slice(),
            text: text.into(),
        })
    }

    /// A condition: `{ path, equals | in | exists }`, `{ all = [...] }`, `{ any = [...] }`, `{ not = {...} }`.
    pub(super) fn cond(&mut self, node: &Node) -> Option<Cond> {
        let Some(keys) = node.entries() else {
            self.err(node.span, format!("a condition must be a table like {{ path = \"type\", equals = \"1\" }}, found {}", node.type_name()));
            return None;
        };
        let get = |k: &str| keys.iter().find(|e| e.key == k);
        for k in keys {
            if !["path", "equals", "in", "exists", "all", "any", "not"].contains(&k.key.as_str()) {
                self.err(k.key_span, format!("unknown key `{}` in a condition (path with equals, in or exists; all; any; not)", k.key));
                return None;
            }
        }
        let ops: Vec<&Entry> = ["equals", "in", "exists", "all", "any", "not"]
            .iter()
            .filter_map(|k| get(k))
            .collect();
        let op = match ops.as_slice() {
            [op] => *op,
            [] => {
                self.err(
                    node.span,
                    "a condition needs one of equals, in, exists, all, any, not",
                );
                return None;
            }
            [_, second, ..] => {
                self.err(second.key_span, "a condition takes one of equals, in, exists, all, any, not; combine several with all = [...]");
                return None;
            }
        };
        let needs_path = matches!(op.key.as_str(), "equals" | "in" | "exists");
        let path = match (get("path"), needs_path) {
            (Some(p), true) => Some(self.path_set(&p.value, "a condition")?),
            (None, true) => {
                self.err(op.key_span, format!("`{}` needs `path`", op.key));
                return None;
            }
            (Some(p), false) => {
                self.err(p.key_span, format!("`path` does not apply to `{}`", op.key));
                return None;
            }
            (None, false) => None,
        };
        let list = |c: &mut Compiler<'_>, e: &Entry| -> Option<Vec<Cond>> {
            match &e.value.kind {
                Kind::Array(items) if !items.is_empty() => {
                    items.iter().map(|i| c.cond(i)).collect()
                }
                _ => {
                    c.err(
                        e.value.span,
                        format!("`{}` must be a non-empty array of conditions", e.key),
                    );
                    None
                }
            }
        };
        Some(match (op.key.as_str(), path) {
            ("equals", Some(p)) => Cond::Equals(p, self.expected(&op.value)?),
            ("in", Some(p)) => match &op.value.kind {
                Kind::Array(items) if !items.is_empty() => {
                    let mut es = Vec::new();
                    for i in items {
                        es.push(self.expected(i)?);
                    }
                    Cond::In(p, es.into_boxed_slice())
                }
                _ => {
                    self.err(op.value.span, "`in` must be a non-empty array of values");
                    return None;
                }
            },
            ("exists", Some(p)) => Cond::Exists(p, self.bool_node(op)?),
            ("all", _) => Cond::All(list(self, op)?.into_boxed_slice()),
            ("any", _) => Cond::Any(list(self, op)?.into_boxed_slice()),
            ("not", _) => Cond::Not(Box::new(self.cond(&op.value)?)),
            _ => return None,
        })
    }

    pub(super) fn expected(&mut self, node: &Node) -> Option<Expected> {
        Some(match &node.kind {
            Kind::Str(s) => Expected {
                text: s.trim().into(),
                int: s.trim().parse().ok(),
                float: s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                boolean: match s.trim() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
            },
            Kind::Int(i) => Expected {
                text: i.to_string().into(),
                int: Some(*i),
                float: Some(*i as f64),
                boolean: None,
            },
            Kind::Float(f) => Expected {
                text: f.to_string().into(),
                int: (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(*f as i64),
                float: Some(*f),
                boolean: None,
            },
            Kind::Bool(b) => Expected {
                text: b.to_string().into(),
                int: None,
                float: None,
                boolean: Some(*b),
            },
            _ => {
                self.err(
                    node.span,
                    format!(
                        "a condition compares with a string, number or boolean, found {}",
                        node.type_name()
                    ),
                );
                return None;
            }
        })
    }

    /// Encodes a plain-JSON value of any schema (defaults and whole-value constants).
    pub(super) fn plain_const(
        &self,
        json: &Json,
        schema: &'static Schema,
        mode: ConstMode,
    ) -> Result<ConstVal, String> {
        let mut bytes = Vec::new();
        self.emit_plain(json, schema, mode, &mut BinSink { out: &mut bytes }, 0)?;
        let mut sink = JsonSink::default();
        self.emit_plain(json, schema, mode, &mut sink, 0)?;
        Ok(ConstVal {
            bytes: bytes.into_boxed_slice(),
            json: sink.finish(),
        })
    }

    pub(super) fn emit_plain<S: Sink>(
        &self,
        json: &Json,
        schema: &'static Schema,
        mode: ConstMode,
        sink: &mut S,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err("the value is nested too deeply".into());
        }
        let schema = self.resolve(schema);
        let mismatch = || format!("{json} is not a {}", describe_schema(schema));
        match schema {
            Schema::Union(u) => {
                let variants = u.variants();
                let non_null = variants
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .count();
                let index = match mode {
                    ConstMode::Default => 0,
                    ConstMode::Const if json.is_null() => variants
                        .iter()
                        .position(|v| matches!(v, Schema::Null))
                        .ok_or_else(mismatch)?,
                    ConstMode::Const if non_null == 1 => variants
                        .iter()
                        .position(|v| !matches!(v, Schema::Null))
                        .ok_or_else(mismatch)?,
                    ConstMode::Const => {
                        return Err(
                            "a constant for a union of several types is not supported".into()
                        )
                    }
                };
                let branch = variants.get(index).ok_or_else(mismatch)?;
                let pos = UnionPos {
                    index: index as u32,
                    tag: (non_null > 1 && !matches!(branch, Schema::Null))
                        .then(|| branch_names(self.resolve(branch))[0].as_str().into()),
                };
                sink.union_begin(&pos);
                self.emit_plain(json, branch, mode, sink, depth + 1)?;
                sink.union_end(&pos);
            }
            Schema::Null => json.is_null().then(|| sink.null()).ok_or_else(mismatch)?,
            Schema::Boolean => sink.boolean(json.as_bool().ok_or_else(mismatch)?),
            Schema::Int | Schema::TimeMillis => {
                let v = json
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(mismatch)?;
                sink.int(v);
            }
            Schema::Date => {
                let days = match json {
                    Json::String(s) => CivilDate::parse_iso(s).map(|d| d.days_since_epoch()),
                    other => other.as_i64().and_then(|v| i32::try_from(v).ok()),
                };
                sink.int(days.ok_or_else(mismatch)?);
            }
            long if encoded_primitive(long) == Some(Base::Long) => {
                sink.long(json.as_i64().ok_or_else(mismatch)?)
            }
            Schema::Float => sink.float(json.as_f64().ok_or_else(mismatch)? as f32),
            Schema::Double => sink.double(json.as_f64().ok_or_else(mismatch)?),
            Schema::String | Schema::Uuid => sink.string(json.as_str().ok_or_else(mismatch)?),
            Schema::Bytes => {
                let text = json.as_str().ok_or_else(mismatch)?;
                let bytes: Option<Vec<u8>> = text
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect();
                sink.bytes(&bytes.ok_or_else(mismatch)?);
            }
            Schema::Enum(e) => {
                let symbol = json.as_str().ok_or_else(mismatch)?;
                let index = e
                    .symbols
                    .iter()
                    .position(|s| s == symbol)
                    .ok_or_else(mismatch)?;
                sink.enumeration(index as u32, symbol);
            }
            Schema::Array(a) => {
                let items = json.as_array().ok_or_else(mismatch)?;
                sink.array_begin(items.len());
                for item in items {
                    self.emit_plain(item, &a.items, mode, sink, depth + 1)?;
                }
                sink.array_end();
            }
            Schema::Map(m) => {
                let entries = json.as_object().ok_or_else(mismatch)?;
                sink.map_begin(entries.len());
                for (k, v) in entries {
                    sink.map_key(k);
                    self.emit_plain(v, &m.types, mode, sink, depth + 1)?;
                }
                sink.map_end();
            }
            Schema::Record(r) => {
                let object = json.as_object().ok_or_else(mismatch)?;
                if let Some(unknown) = object.keys().find(|k| !r.lookup.contains_key(k.as_str())) {
                    return Err(format!(
                        "record {} has no field `{unknown}`",
                        r.name.fullname(None)
                    ));
                }
                sink.record_begin();
                for f in &r.fields {
                    sink.field(&f.name);
                    match (object.get(&f.name), &f.default) {
                        (Some(v), _) => self.emit_plain(v, &f.schema, mode, sink, depth + 1)?,
                        (None, Some(d)) => {
                            self.emit_plain(d, &f.schema, ConstMode::Default, sink, depth + 1)?
                        }
                        (None, None) => return Err(format!("field `{}` is missing", f.name)),
                    }
                }
                sink.record_end();
            }
            other => {
                return Err(format!(
                    "Avro type {} is not supported",
                    describe_schema(other)
                ))
            }
        }
        Ok(())
    }
}
