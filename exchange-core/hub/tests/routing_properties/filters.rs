//! Filters: a small grammar of CEL over the schemas, rendered to source and evaluated by a reference
//! evaluator that `Filter::matches` must agree with; deliberately broken filters too.

use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Filters: a small grammar of CEL over the schemas, rendered to source and evaluated by a reference evaluator
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }

    pub(crate) fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
            Self::Eq => a == b,
            Self::Ne => a != b,
        }
    }
}

/// A predicate on one element of an array of records (`parties.exists(p, p.role == "VICTIM")`).
#[derive(Clone, Debug)]
pub(crate) enum ElemPred {
    /// `v.field == "lit"` on a non-nullable string/enum field.
    Eq(&'static str, String),
    /// `v.field.startsWith("lit")`, field possibly nullable (null: error).
    StartsWith(&'static str, String),
}

/// One comparison. `src` is the field as written in the filter (`region_code` for `envelope.region_code`),
/// `path` its dotted path in the record.
#[derive(Clone, Debug)]
pub(crate) enum Atom {
    Const(bool),
    /// `src == "lit"` / `!=`; a null nullable field is unequal to any string.
    StrEq {
        src: &'static str,
        path: &'static str,
        lit: String,
        negate: bool,
    },
    /// `src in ["a", "b"]`, non-nullable field.
    In {
        src: &'static str,
        path: &'static str,
        lits: Vec<String>,
    },
    /// `"lit" in src` on an array field.
    Contains {
        src: &'static str,
        path: &'static str,
        lit: String,
    },
    /// `src.startsWith("lit")`; null: error.
    StartsWith {
        src: &'static str,
        path: &'static str,
        lit: String,
    },
    /// `src <op> n`; null: error.
    Num {
        src: &'static str,
        path: &'static str,
        op: Cmp,
        lit: String,
    },
    /// `src == null` / `src != null`.
    Null {
        src: &'static str,
        path: &'static str,
        is_null: bool,
    },
    /// `has(src)`.
    Has {
        src: &'static str,
        path: &'static str,
    },
    /// `array.exists(v, pred)` or `array.all(v, pred)`.
    Quantified {
        array: &'static str,
        all: bool,
        pred: ElemPred,
    },
    /// Source that must not compile.
    Broken(&'static str),
}

#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Atom(Atom),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

impl Atom {
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Const(b) => b.to_string(),
            Self::StrEq {
                src, lit, negate, ..
            } => format!("{src} {} {}", if *negate { "!=" } else { "==" }, quote(lit)),
            Self::In { src, lits, .. } => format!(
                "{src} in [{}]",
                lits.iter().map(|l| quote(l)).collect::<Vec<_>>().join(", ")
            ),
            Self::Contains { src, lit, .. } => format!("{} in {src}", quote(lit)),
            Self::StartsWith { src, lit, .. } => format!("{src}.startsWith({})", quote(lit)),
            Self::Num { src, op, lit, .. } => format!("{src} {} {lit}", op.symbol()),
            Self::Null { src, is_null, .. } => {
                format!("{src} {} null", if *is_null { "==" } else { "!=" })
            }
            Self::Has { src, .. } => format!("has({src})"),
            Self::Quantified { array, all, pred } => {
                let body = match pred {
                    ElemPred::Eq(f, lit) => format!("v.{f} == {}", quote(lit)),
                    ElemPred::StartsWith(f, lit) => format!("v.{f}.startsWith({})", quote(lit)),
                };
                format!("{array}.{}(v, {body})", if *all { "all" } else { "exists" })
            }
            Self::Broken(src) => (*src).to_string(),
        }
    }

    pub(crate) fn broken(&self) -> bool {
        matches!(self, Self::Broken(_))
    }
}

impl Expr {
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Atom(a) => a.render(),
            Self::Not(e) => format!("!({})", e.render()),
            Self::And(a, b) => format!("({}) && ({})", a.render(), b.render()),
            Self::Or(a, b) => format!("({}) || ({})", a.render(), b.render()),
        }
    }

    pub(crate) fn broken(&self) -> bool {
        match self {
            Self::Atom(a) => a.broken(),
            Self::Not(e) => e.broken(),
            Self::And(a, b) | Self::Or(a, b) => a.broken() || b.broken(),
        }
    }
}

/// CEL's result of a filter on a record: a value or a runtime error (a null where a value is needed).
pub(crate) type Eval = Result<bool, ()>;

pub(crate) fn lookup<'a>(json: &'a Json, path: &str) -> &'a Json {
    path.split('.').fold(json, |v, part| &v[part])
}

pub(crate) fn eval_atom(atom: &Atom, record: &Json) -> Eval {
    let string = |path: &str| lookup(record, path).as_str().map(str::to_owned);
    match atom {
        Atom::Const(b) => Ok(*b),
        Atom::StrEq {
            path, lit, negate, ..
        } => Ok((string(path).as_deref() == Some(lit.as_str())) != *negate),
        Atom::In { path, lits, .. } => {
            let v = string(path).ok_or(())?;
            Ok(lits.contains(&v))
        }
        Atom::Contains { path, lit, .. } => Ok(lookup(record, path)
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i.as_str() == Some(lit)))),
        Atom::StartsWith { path, lit, .. } => Ok(string(path).ok_or(())?.starts_with(lit.as_str())),
        Atom::Num { path, op, lit, .. } => {
            let v = lookup(record, path);
            // A null is unequal to any number; ordering it is an error.
            if v.is_null() {
                return match op {
                    Cmp::Eq => Ok(false),
                    Cmp::Ne => Ok(true),
                    _ => Err(()),
                };
            }
            let v = v.as_f64().ok_or(())?;
            let n: f64 = lit.parse().expect("numeric literal");
            Ok(op.holds(v, n))
        }
        Atom::Null { path, is_null, .. } => Ok(lookup(record, path).is_null() == *is_null),
        Atom::Has { path, .. } => Ok(!lookup(record, path).is_null()),
        Atom::Quantified { array, all, pred } => {
            let items = lookup(record, array)
                .as_array()
                .cloned()
                .unwrap_or_default();
            let results: Vec<Eval> = items
                .iter()
                .map(|item| match pred {
                    ElemPred::Eq(f, lit) => Ok(item[*f].as_str() == Some(lit.as_str())),
                    ElemPred::StartsWith(f, lit) => {
                        Ok(item[*f].as_str().ok_or(())?.starts_with(lit.as_str()))
                    }
                })
                .collect();
            if *all {
                if results.contains(&Ok(false)) {
                    Ok(false)
                } else if results.contains(&Err(())) {
                    Err(())
                } else {
                    Ok(true)
                }
            } else if results.contains(&Ok(true)) {
                Ok(true)
            } else if results.contains(&Err(())) {
                Err(())
            } else {
                Ok(false)
            }
        }
        Atom::Broken(_) => unreachable!("broken filters are not evaluated"),
    }
}

pub(crate) fn eval(expr: &Expr, record: &Json) -> Eval {
    match expr {
        Expr::Atom(a) => eval_atom(a, record),
        Expr::Not(e) => eval(e, record).map(|b| !b),
        // Commutative error semantics: false && error = false, true || error = true.
        Expr::And(a, b) => match (eval(a, record), eval(b, record)) {
            (Ok(false), _) | (_, Ok(false)) => Ok(false),
            (Ok(true), Ok(true)) => Ok(true),
            _ => Err(()),
        },
        Expr::Or(a, b) => match (eval(a, record), eval(b, record)) {
            (Ok(true), _) | (_, Ok(true)) => Ok(true),
            (Ok(false), Ok(false)) => Ok(false),
            _ => Err(()),
        },
    }
}

pub(crate) type AtomStrategy = BoxedStrategy<Atom>;

pub(crate) fn str_eq(
    src: &'static str,
    path: &'static str,
    lits: &'static [&'static str],
) -> AtomStrategy {
    (pick(lits), any::<bool>())
        .prop_map(move |(lit, negate)| Atom::StrEq {
            src,
            path,
            lit,
            negate,
        })
        .boxed()
}

pub(crate) fn one_of(
    src: &'static str,
    path: &'static str,
    lits: &'static [&'static str],
) -> AtomStrategy {
    prop::sample::subsequence(lits, 1..=lits.len().min(3))
        .prop_map(move |lits| Atom::In {
            src,
            path,
            lits: lits.into_iter().map(str::to_owned).collect(),
        })
        .boxed()
}

pub(crate) fn contains(
    src: &'static str,
    path: &'static str,
    lits: &'static [&'static str],
) -> AtomStrategy {
    pick(lits)
        .prop_map(move |lit| Atom::Contains { src, path, lit })
        .boxed()
}

pub(crate) fn starts(
    src: &'static str,
    path: &'static str,
    lits: &'static [&'static str],
) -> AtomStrategy {
    pick(lits)
        .prop_map(move |lit| Atom::StartsWith { src, path, lit })
        .boxed()
}

pub(crate) fn cmp() -> impl Strategy<Value = Cmp> {
    prop::sample::select(&[Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge, Cmp::Eq, Cmp::Ne][..])
}

pub(crate) fn int_cmp(
    src: &'static str,
    path: &'static str,
    range: std::ops::Range<i64>,
) -> AtomStrategy {
    (cmp(), range)
        .prop_map(move |(op, n)| Atom::Num {
            src,
            path,
            op,
            lit: n.to_string(),
        })
        .boxed()
}

pub(crate) fn double_cmp(src: &'static str, path: &'static str, lo: u32, hi: u32) -> AtomStrategy {
    (cmp(), lo * 10..hi * 10)
        .prop_map(move |(op, n)| Atom::Num {
            src,
            path,
            op,
            lit: format!("{:.1}", f64::from(n) / 10.0),
        })
        .boxed()
}

pub(crate) fn nullness(src: &'static str, path: &'static str) -> AtomStrategy {
    prop_oneof![
        any::<bool>().prop_map(move |is_null| Atom::Null { src, path, is_null }),
        Just(Atom::Has { src, path }),
    ]
    .boxed()
}

pub(crate) fn quantified(array: &'static str, preds: BoxedStrategy<ElemPred>) -> AtomStrategy {
    (any::<bool>(), preds)
        .prop_map(move |(all, pred)| Atom::Quantified { array, all, pred })
        .boxed()
}

pub(crate) fn broken(schema: &'static str) -> AtomStrategy {
    let specific: &'static [&'static str] = match schema {
        "grid_event" => &[
            "category == \"dispute\"",
            "parties.exists(p, p.role == \"PARTY\")",
        ],
        "household" => &["care_level == \"PURPLE\"", "member_count == \"3\""],
        _ => &["gender == \"M\"", "birth_date.startsWith(\"19\")"],
    };
    prop_oneof![
        prop::sample::select(specific),
        prop::sample::select(
            &[
                "regoin_code.startsWith(\"6109\")",
                "region_code == null",
                "region_code > 5",
                "true &&",
                "size(1) == 1",
                "region_code",
            ][..]
        ),
    ]
    .prop_map(Atom::Broken)
    .boxed()
}

/// The comparisons a filter over `schema` is built from.
pub(crate) fn atom(schema: &'static str) -> AtomStrategy {
    let common = vec![
        any::<bool>().prop_map(Atom::Const).boxed(),
        starts("region_code", "envelope.region_code", REGION_PREFIXES),
        starts(
            "envelope.region_code",
            "envelope.region_code",
            REGION_PREFIXES,
        ),
        str_eq("data_grade", "envelope.data_grade", DATA_GRADE),
        one_of("share_attribute", "envelope.share_attribute", SHARE),
        str_eq("source_system", "envelope.source_system", SOURCE_SYSTEMS),
        nullness("envelope.grid_code", "envelope.grid_code"),
        int_cmp(
            "envelope.event_time",
            "envelope.event_time",
            1_700_000_000_000..1_760_000_000_000,
        ),
    ];
    let specific = match schema {
        "grid_event" => vec![
            str_eq("category", "category", CATEGORY),
            one_of("category", "category", CATEGORY),
            str_eq("urgency", "urgency", URGENCY),
            one_of("status", "status", STAGE),
            str_eq("handling_level", "handling_level", LEVEL),
            str_eq("event_type_code", "event_type_code", EVENT_TYPES),
            one_of("event_type_code", "event_type_code", EVENT_TYPES),
            int_cmp("attachment_count", "attachment_count", 0..10),
            int_cmp(
                "occurred_time",
                "occurred_time",
                1_700_000_000_000..1_760_000_000_000,
            ),
            starts(
                "hotline_ticket_no",
                "hotline_ticket_no",
                &["12345", "12345-1"],
            ),
            starts("reporter.phone", "reporter.phone", &["13", "15", "18"]),
            nullness("hotline_ticket_no", "hotline_ticket_no"),
            nullness("occurred_time", "occurred_time"),
            nullness("closed_time", "closed_time"),
            nullness("reporter.phone", "reporter.phone"),
            nullness("location.lng", "location.lng"),
            double_cmp("location.lng", "location.lng", 105, 111),
            str_eq("location.coord_system", "location.coord_system", COORD),
            quantified(
                "parties",
                prop_oneof![
                    pick(ROLE).prop_map(|r| ElemPred::Eq("role", r)),
                    pick(&["13", "15", "18"]).prop_map(|p| ElemPred::StartsWith("phone", p)),
                    pick(&["6109", "6101"]).prop_map(|p| ElemPred::StartsWith("cert_no", p)),
                ]
                .boxed(),
            ),
            quantified(
                "workflow",
                prop_oneof![
                    pick(STAGE).prop_map(|s| ElemPred::Eq("stage", s)),
                    pick(LEVEL).prop_map(|s| ElemPred::Eq("level", s)),
                ]
                .boxed(),
            ),
        ],
        "household" => vec![
            str_eq("care_level", "care_level", CARE),
            one_of("care_level", "care_level", CARE),
            str_eq("residence_status", "residence_status", RESIDENCE),
            one_of("coord_system", "coord_system", COORD),
            starts("village_code", "village_code", REGION_PREFIXES),
            str_eq("village_code", "village_code", REGIONS),
            int_cmp("member_count", "member_count", 0..12),
            double_cmp("lng", "lng", 105, 111),
            double_cmp("lat", "lat", 31, 34),
            nullness("lng", "lng"),
            nullness("phone", "phone"),
            starts("phone", "phone", &["13", "15", "18"]),
            contains("tags", "tags", HOUSEHOLD_TAGS),
            starts("head_cert_no", "head_cert_no", &["6109", "6101", "1101"]),
        ],
        _ => vec![
            str_eq("gender", "gender", GENDER),
            one_of("cert_type", "cert_type", CERT_TYPE),
            str_eq("marital_status", "marital_status", MARITAL),
            one_of("population_type", "population_type", POPULATION),
            str_eq("relation_to_head", "relation_to_head", RELATION),
            str_eq("status", "status", RESIDENT_STATUS),
            str_eq("ethnicity", "ethnicity", ETHNICITY),
            int_cmp("birth_date", "birth_date", -15_000..20_000),
            nullness("birth_date", "birth_date"),
            nullness("registered_address", "registered_address"),
            nullness("phone", "phone"),
            starts("phone", "phone", &["13", "15", "18"]),
            starts("village_code", "village_code", REGION_PREFIXES),
            starts("cert_no", "cert_no", &["6109", "6101", "1101"]),
            contains("special_groups", "special_groups", SPECIAL),
        ],
    };
    let atoms: Vec<AtomStrategy> = common.into_iter().chain(specific).collect();
    let valid = prop::strategy::Union::new(atoms).boxed();
    prop_oneof![60 => valid, 1 => broken(schema)].boxed()
}

pub(crate) fn filter(schema: &'static str) -> impl Strategy<Value = Expr> {
    let leaf = atom(schema).prop_map(Expr::Atom);
    prop_oneof![
        // Often the plain `true` a subscription starts with.
        2 => Just(Expr::Atom(Atom::Const(true))),
        5 => leaf.prop_recursive(3, 8, 2, |inner| {
            prop_oneof![
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            ]
        }),
    ]
}
