//! The evaluator: a checked filter run against one decoded Avro record.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Evaluator
// ---------------------------------------------------------------------------------------------------------

/// A runtime value, borrowing from the record and the filter.
#[derive(Debug, Clone)]
pub(super) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
    /// A string computed by the filter (concatenation, uuid).
    Owned(Box<str>),
    AvroList(&'a [Value]),
    LitList(&'a [Lit]),
    List(Box<[Val<'a>]>),
    Record(&'a [(String, Value)]),
}

impl<'a> Val<'a> {
    #[inline]
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Owned(s) => Some(s),
            _ => None,
        }
    }
}

thread_local! {
    /// What `matches()` may still scan for the record being evaluated on this thread (see
    /// [`super::MATCH_BUDGET_BYTES`]).
    static MATCH_BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(super::MATCH_BUDGET_BYTES) };
}

/// Gives the record about to be evaluated its full `matches()` budget.
pub(super) fn reset_match_budget() {
    MATCH_BUDGET.with(|b| b.set(super::MATCH_BUDGET_BYTES));
}

/// Charges a `matches()` over `text` to the record's budget; `Err` once the budget would be exceeded.
fn charge_match(text: &str) -> EvalRes<()> {
    MATCH_BUDGET.with(|b| match b.get().checked_sub(text.len()) {
        Some(left) => {
            b.set(left);
            Ok(())
        }
        None => {
            b.set(0);
            Err(EvalError::over_budget())
        }
    })
}

/// The variables bound by enclosing `exists`/`all`, innermost first.
pub(super) struct Env<'e, 'a> {
    pub(super) val: &'e Val<'a>,
    pub(super) up: Option<&'e Env<'e, 'a>>,
}

pub(super) type Fields<'a> = &'a [(String, Value)];
pub(super) type EvalRes<T> = Result<T, EvalError>;

#[inline]
pub(super) fn lit_val(l: &Lit) -> Val<'_> {
    match l {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::Int(*i),
        Lit::Double(d) => Val::Double(*d),
        Lit::Str(s) => Val::Str(s),
        Lit::List(items) => Val::LitList(items),
    }
}

#[inline]
pub(super) fn avro_val(mut v: &Value) -> EvalRes<Val<'_>> {
    loop {
        return Ok(match v {
            Value::Union(_, inner) => {
                v = inner;
                continue;
            }
            Value::Null => Val::Null,
            Value::Boolean(b) => Val::Bool(*b),
            Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Val::Int(i64::from(*i)),
            Value::Long(i)
            | Value::TimeMicros(i)
            | Value::TimestampMillis(i)
            | Value::TimestampMicros(i)
            | Value::TimestampNanos(i)
            | Value::LocalTimestampMillis(i)
            | Value::LocalTimestampMicros(i)
            | Value::LocalTimestampNanos(i) => Val::Int(*i),
            Value::Float(f) => Val::Double(f64::from(*f)),
            Value::Double(d) => Val::Double(*d),
            Value::String(s) | Value::Enum(_, s) => Val::Str(s),
            Value::Uuid(u) => Val::Owned(u.to_string().into_boxed_str()),
            Value::Array(items) => Val::AvroList(items),
            Value::Record(fields) => Val::Record(fields),
            _ => {
                return Err(EvalError::record(
                    "the record holds a value a filter cannot read",
                ))
            }
        });
    }
}

/// The value of one field, by schema position with a by-name fallback.
#[inline]
pub(super) fn field<'a>(fields: Fields<'a>, step: &Step) -> Option<&'a Value> {
    match fields.get(step.index) {
        Some((name, value)) if name.as_str() == &*step.name => Some(value),
        _ => fields
            .iter()
            .find(|(name, _)| name.as_str() == &*step.name)
            .map(|(_, v)| v),
    }
}

pub(super) fn var<'e, 'a>(env: Option<&'e Env<'e, 'a>>, depth: usize) -> EvalRes<&'e Val<'a>> {
    let mut current = env;
    for _ in 0..depth {
        current = current.and_then(|e| e.up);
    }
    current
        .map(|e| e.val)
        .ok_or_else(|| EvalError::record("internal: unbound variable"))
}

pub(super) fn eval_path<'a>(
    base: Base,
    steps: &[Step],
    display: &str,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<Val<'a>> {
    if steps.is_empty() {
        // A bare variable.
        return match base {
            Base::Var(depth) => Ok(var(env, depth)?.clone()),
            Base::Root => Err(EvalError::record("internal: empty field path")),
        };
    }
    avro_val(walk(base, steps, display, root, env)?)
}

/// Follows a non-empty field path to the Avro value at its end.
#[inline]
pub(super) fn walk<'a>(
    base: Base,
    steps: &[Step],
    display: &str,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<&'a Value> {
    let mut fields = match base {
        Base::Root => root,
        Base::Var(depth) => match var(env, depth)? {
            Val::Record(f) => f,
            Val::Null => return Err(EvalError::null(display)),
            _ => return Err(EvalError::record(format!("`{display}`: not a record"))),
        },
    };
    let Some((last, init)) = steps.split_last() else {
        return Err(EvalError::record("internal: empty field path"));
    };
    for step in init {
        let v = field(fields, step).ok_or_else(|| missing(step))?;
        fields = match unwrap_union(v) {
            Value::Record(f) => f,
            Value::Null => return Err(EvalError::null(display)),
            _ => {
                return Err(EvalError::record(format!(
                    "field `{}` is not a record",
                    step.name
                )))
            }
        };
    }
    field(fields, last).ok_or_else(|| missing(last))
}

pub(super) fn missing(step: &Step) -> EvalError {
    EvalError::record(format!("the record has no field `{}`", step.name))
}

pub(super) fn unwrap_union(mut v: &Value) -> &Value {
    while let Value::Union(_, inner) = v {
        v = inner;
    }
    v
}

pub(super) fn eval_has(
    base: Base,
    steps: &[Step],
    root: Fields<'_>,
    env: Option<&Env<'_, '_>>,
) -> EvalRes<bool> {
    let mut fields = match base {
        Base::Root => root,
        Base::Var(depth) => match var(env, depth)? {
            Val::Record(f) => f,
            _ => return Ok(false),
        },
    };
    for (i, step) in steps.iter().enumerate() {
        let Some(v) = field(fields, step) else {
            return Ok(false);
        };
        match unwrap_union(v) {
            Value::Null => return Ok(false),
            _ if i + 1 == steps.len() => return Ok(true),
            Value::Record(f) => fields = f,
            _ => return Ok(false),
        }
    }
    Ok(false)
}

pub(super) fn eval_bool<'a>(
    node: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    // The dispatcher stays small (cheap prologue for every recursive call); the work lives in helpers.
    match node {
        Node::Lit(Lit::Bool(b)) => Ok(*b),
        Node::And(l, r) => match eval_bool(l, root, env) {
            Ok(false) => Ok(false),
            Ok(true) => eval_bool(r, root, env),
            Err(e) => match eval_bool(r, root, env) {
                Ok(false) => Ok(false),
                _ => Err(e),
            },
        },
        Node::Or(l, r) => match eval_bool(l, root, env) {
            Ok(true) => Ok(true),
            Ok(false) => eval_bool(r, root, env),
            Err(e) => match eval_bool(r, root, env) {
                Ok(true) => Ok(true),
                _ => Err(e),
            },
        },
        Node::Not(inner) => eval_bool(inner, root, env).map(|b| !b),
        Node::EqLit(n, l, ne) => eval_eq_lit(n, l, root, env).map(|eq| eq != *ne),
        Node::InLits(n, lits) => eval_in_lits(n, lits, root, env),
        Node::StrLit(f, n, x) => eval_str_lit(*f, n, x, root, env),
        Node::Rel(rel, l, r) => eval_rel(*rel, l, r, root, env),
        Node::RelLit(rel, n, lit) => eval_rel_lit(*rel, n, lit, root, env),
        Node::Has { base, steps } => eval_has(*base, steps, root, env),
        Node::Exists(list, pred) => eval_quantifier(true, list, pred, root, env),
        Node::All(list, pred) => eval_quantifier(false, list, pred, root, env),
        other => eval_bool_slow(other, root, env),
    }
}

#[inline(never)]
pub(super) fn eval_bool_slow<'a>(
    node: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    match node {
        Node::Eq(l, r) => val_eq(&eval(l, root, env)?, &eval(r, root, env)?),
        Node::Ne(l, r) => val_eq(&eval(l, root, env)?, &eval(r, root, env)?).map(|b| !b),
        Node::In(l, r) => {
            let needle = eval(l, root, env)?;
            let list = eval(r, root, env)?;
            for item in items(&list, "in")? {
                if val_eq(&needle, &item?)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::Str(f, s, x) => {
            let s = eval(s, root, env)?;
            let x = eval(x, root, env)?;
            let (Some(s), Some(x)) = (s.as_str(), x.as_str()) else {
                return Err(operand_error(&s, &x, "a string function"));
            };
            Ok(str_fn(*f, s, x))
        }
        Node::Matches(s, re) => match eval(s, root, env)? {
            Val::Str(s) => charge_match(s).map(|()| re.is_match(s)),
            Val::Owned(s) => charge_match(&s).map(|()| re.is_match(&s)),
            Val::Null => Err(EvalError::null("matches()")),
            _ => Err(EvalError::record("matches() on a non-string")),
        },
        other => match eval(other, root, env)? {
            Val::Bool(b) => Ok(b),
            Val::Null => Err(EvalError::null("condition")),
            _ => Err(EvalError::record("internal: a condition is not a bool")),
        },
    }
}

/// The Avro value a field path ends at, when the node is a path with at least one field step (the common
/// operand of comparisons); `None` for any other node.
#[inline]
pub(super) fn path_ref<'a>(
    node: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> Option<EvalRes<&'a Value>> {
    match node {
        Node::Path {
            base,
            steps,
            display,
        } if !steps.is_empty() => Some(walk(*base, steps, display, root, env)),
        _ => None,
    }
}

#[inline(never)]
pub(super) fn eval_eq_lit<'a>(
    node: &'a Node,
    lit: &Lit,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        let value = unwrap_union(value?);
        return match (value, lit) {
            (Value::String(s) | Value::Enum(_, s), Lit::Str(l)) => Ok(s.as_str() == &**l),
            _ => lit_eq(&avro_val(value)?, lit),
        };
    }
    lit_eq(&eval(node, root, env)?, lit)
}

#[inline(never)]
pub(super) fn eval_in_lits<'a>(
    node: &'a Node,
    lits: &[Lit],
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        if let Value::String(s) | Value::Enum(_, s) = unwrap_union(value?) {
            return Ok(lits.iter().any(|l| matches!(l, Lit::Str(l) if **l == **s)));
        }
    }
    let needle = eval(node, root, env)?;
    for l in lits {
        if lit_eq(&needle, l)? {
            return Ok(true);
        }
    }
    Ok(false)
}

#[inline(never)]
pub(super) fn eval_str_lit<'a>(
    f: StrFn,
    node: &'a Node,
    x: &str,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        if let Value::String(s) | Value::Enum(_, s) = unwrap_union(value?) {
            return Ok(str_fn(f, s, x));
        }
    }
    match eval(node, root, env)? {
        Val::Str(s) => Ok(str_fn(f, s, x)),
        Val::Owned(s) => Ok(str_fn(f, &s, x)),
        Val::Null => Err(EvalError::null("a string function")),
        _ => Err(EvalError::record("a string function on a non-string")),
    }
}

#[inline(never)]
pub(super) fn eval_rel<'a>(
    rel: Rel,
    l: &'a Node,
    r: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    let (a, b) = (eval(l, root, env)?, eval(r, root, env)?);
    Ok(holds(rel, val_cmp(&a, &b, &rel)?))
}

#[inline(never)]
pub(super) fn eval_rel_lit<'a>(
    rel: Rel,
    node: &'a Node,
    lit: &Lit,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    if let Some(value) = path_ref(node, root, env) {
        let value = unwrap_union(value?);
        let fast = match (value, lit) {
            (
                Value::Long(i)
                | Value::TimestampMillis(i)
                | Value::TimestampMicros(i)
                | Value::TimestampNanos(i)
                | Value::LocalTimestampMillis(i)
                | Value::LocalTimestampMicros(i)
                | Value::LocalTimestampNanos(i)
                | Value::TimeMicros(i),
                Lit::Int(j),
            ) => Some(Some(i.cmp(j))),
            (Value::Int(i) | Value::Date(i) | Value::TimeMillis(i), Lit::Int(j)) => {
                Some(Some(i64::from(*i).cmp(j)))
            }
            (Value::Double(d), Lit::Double(e)) => Some(d.partial_cmp(e)),
            (Value::String(s) | Value::Enum(_, s), Lit::Str(l)) => Some(Some(s.as_str().cmp(l))),
            _ => None,
        };
        if let Some(ord) = fast {
            return Ok(holds(rel, ord));
        }
        return Ok(holds(rel, val_cmp(&avro_val(value)?, &lit_val(lit), &rel)?));
    }
    let v = eval(node, root, env)?;
    Ok(holds(rel, val_cmp(&v, &lit_val(lit), &rel)?))
}

#[inline]
pub(super) fn holds(rel: Rel, ord: Option<Ordering>) -> bool {
    match (rel, ord) {
        (_, None) => false,
        (Rel::Lt, Some(o)) => o == Ordering::Less,
        (Rel::Le, Some(o)) => o != Ordering::Greater,
        (Rel::Gt, Some(o)) => o == Ordering::Greater,
        (Rel::Ge, Some(o)) => o != Ordering::Less,
    }
}

/// `exists` (`want` = true) and `all` (`want` = false), with CEL's error rules.
#[inline(never)]
pub(super) fn eval_quantifier<'a>(
    want: bool,
    list: &'a Node,
    pred: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<bool> {
    let list = eval(list, root, env)?;
    let mut error = None;
    for item in items(&list, if want { "exists()" } else { "all()" })? {
        let item = item?;
        let inner = Env {
            val: &item,
            up: env,
        };
        match eval_bool(pred, root, Some(&inner)) {
            Ok(b) if b == want => return Ok(want),
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(!want),
    }
}

#[inline]
pub(super) fn str_fn(f: StrFn, s: &str, x: &str) -> bool {
    match f {
        StrFn::StartsWith => s.starts_with(x),
        StrFn::EndsWith => s.ends_with(x),
        StrFn::Contains => s.contains(x),
    }
}

/// `v == l`, with the frequent same-type cases first.
#[inline]
pub(super) fn lit_eq(v: &Val<'_>, l: &Lit) -> EvalRes<bool> {
    match (v, l) {
        (Val::Str(a), Lit::Str(b)) => Ok(*a == &**b),
        (Val::Int(a), Lit::Int(b)) => Ok(a == b),
        (Val::Bool(a), Lit::Bool(b)) => Ok(a == b),
        _ => val_eq(v, &lit_val(l)),
    }
}

pub(super) fn operand_error(a: &Val<'_>, b: &Val<'_>, what: &str) -> EvalError {
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        EvalError::null(what)
    } else {
        EvalError::record(format!("{what}: operands of unexpected types"))
    }
}

pub(super) fn eval<'a>(
    node: &'a Node,
    root: Fields<'a>,
    env: Option<&Env<'_, 'a>>,
) -> EvalRes<Val<'a>> {
    match node {
        Node::Lit(l) => Ok(lit_val(l)),
        Node::List(items) => items
            .iter()
            .map(|n| eval(n, root, env))
            .collect::<EvalRes<Box<[_]>>>()
            .map(Val::List),
        Node::Path {
            base,
            steps,
            display,
        } => eval_path(*base, steps, display, root, env),
        Node::Select(inner, step) => match eval(inner, root, env)? {
            Val::Record(fields) => avro_val(field(fields, step).ok_or_else(|| missing(step))?),
            Val::Null => Err(EvalError::null(&step.name)),
            _ => Err(EvalError::record(format!("`{}`: not a record", step.name))),
        },
        Node::Neg(inner) => match eval(inner, root, env)? {
            Val::Int(i) => i
                .checked_neg()
                .map(Val::Int)
                .ok_or_else(|| EvalError::new(EvalErrorKind::Overflow, "integer overflow in `-`")),
            Val::Double(d) => Ok(Val::Double(-d)),
            Val::Null => Err(EvalError::null("`-`")),
            _ => Err(EvalError::record("`-` on a non-number")),
        },
        Node::Arith(op, l, r) => arith(*op, eval(l, root, env)?, eval(r, root, env)?),
        Node::Cond(c, a, b) => {
            if eval_bool(c, root, env)? {
                eval(a, root, env)
            } else {
                eval(b, root, env)
            }
        }
        Node::Size(inner) => {
            let v = eval(inner, root, env)?;
            let n = match &v {
                Val::Str(s) => s.chars().count(),
                Val::Owned(s) => s.chars().count(),
                Val::AvroList(l) => l.len(),
                Val::LitList(l) => l.len(),
                Val::List(l) => l.len(),
                Val::Null => return Err(EvalError::null("size()")),
                _ => return Err(EvalError::record("size() of a value without size")),
            };
            i64::try_from(n)
                .map(Val::Int)
                .map_err(|_| EvalError::new(EvalErrorKind::Overflow, "size() overflow"))
        }
        _ => eval_bool(node, root, env).map(Val::Bool),
    }
}

pub(super) fn arith<'a>(op: Arith, a: Val<'a>, b: Val<'a>) -> EvalRes<Val<'a>> {
    let symbol = match op {
        Arith::Add => "+",
        Arith::Sub => "-",
        Arith::Mul => "*",
        Arith::Div => "/",
        Arith::Mod => "%",
    };
    let overflow = || {
        EvalError::new(
            EvalErrorKind::Overflow,
            format!("integer overflow in `{symbol}`"),
        )
    };
    match (&a, &b) {
        (Val::Int(x), Val::Int(y)) => {
            let (x, y) = (*x, *y);
            if matches!(op, Arith::Div | Arith::Mod) && y == 0 {
                return Err(EvalError::new(
                    EvalErrorKind::DivisionByZero,
                    format!("division by zero in `{symbol}`"),
                ));
            }
            let r = match op {
                Arith::Add => x.checked_add(y),
                Arith::Sub => x.checked_sub(y),
                Arith::Mul => x.checked_mul(y),
                Arith::Div => x.checked_div(y),
                Arith::Mod => x.checked_rem(y),
            };
            r.map(Val::Int).ok_or_else(overflow)
        }
        (Val::Str(_) | Val::Owned(_), Val::Str(_) | Val::Owned(_)) if op == Arith::Add => {
            let (x, y) = (a.as_str().unwrap_or(""), b.as_str().unwrap_or(""));
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(Val::Owned(s.into_boxed_str()))
        }
        _ => {
            let (Some(x), Some(y)) = (as_f64(&a), as_f64(&b)) else {
                return Err(operand_error(&a, &b, &format!("`{symbol}`")));
            };
            Ok(Val::Double(match op {
                Arith::Add => x + y,
                Arith::Sub => x - y,
                Arith::Mul => x * y,
                Arith::Div => x / y,
                Arith::Mod => return Err(EvalError::record("`%` on doubles")),
            }))
        }
    }
}

pub(super) fn as_f64(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Double(d) => Some(*d),
        _ => None,
    }
}

/// Exact comparison of an int with a double (no rounding of large ints).
pub(super) fn cmp_int_double(i: i64, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    // 2^63 as f64 is exact; every double in [-2^63, 2^63) converts to i64 exactly after truncation.
    pub(super) const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if d >= LIMIT {
        return Some(Ordering::Less);
    }
    if d < -LIMIT {
        return Some(Ordering::Greater);
    }
    let t = d.trunc();
    let ti = t as i64;
    match i.cmp(&ti) {
        Ordering::Equal => 0.0f64.partial_cmp(&(d - t)),
        other => Some(other),
    }
}

pub(super) fn val_cmp(a: &Val<'_>, b: &Val<'_>, rel: &Rel) -> EvalRes<Option<Ordering>> {
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Int(x), Val::Double(y)) => cmp_int_double(*x, *y),
        (Val::Double(x), Val::Int(y)) => cmp_int_double(*y, *x).map(Ordering::reverse),
        (Val::Str(_) | Val::Owned(_), Val::Str(_) | Val::Owned(_)) => {
            Some(a.as_str().cmp(&b.as_str()))
        }
        _ => {
            let symbol = match rel {
                Rel::Lt => "`<`",
                Rel::Le => "`<=`",
                Rel::Gt => "`>`",
                Rel::Ge => "`>=`",
            };
            return Err(operand_error(a, b, symbol));
        }
    })
}

pub(super) fn val_eq(a: &Val<'_>, b: &Val<'_>) -> EvalRes<bool> {
    Ok(match (a, b) {
        (Val::Str(_) | Val::Owned(_), Val::Str(_) | Val::Owned(_)) => a.as_str() == b.as_str(),
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Double(x), Val::Double(y)) => x == y,
        (Val::Int(x), Val::Double(y)) | (Val::Double(y), Val::Int(x)) => {
            cmp_int_double(*x, *y) == Some(Ordering::Equal)
        }
        (Val::Record(_), _) | (_, Val::Record(_)) => {
            return Err(EvalError::record("records cannot be compared"))
        }
        _ => {
            let (mut xs, mut ys) = (items(a, "==")?, items(b, "==")?);
            if xs.len() != ys.len() {
                return Ok(false);
            }
            loop {
                match (xs.next(), ys.next()) {
                    (Some(x), Some(y)) => {
                        if !val_eq(&x?, &y?)? {
                            return Ok(false);
                        }
                    }
                    _ => return Ok(true),
                }
            }
        }
    })
}

/// The elements of a list value, as values.
pub(super) enum Items<'v, 'a> {
    Avro(std::slice::Iter<'a, Value>),
    Lit(std::slice::Iter<'a, Lit>),
    Vals(std::slice::Iter<'v, Val<'a>>),
}

impl<'v, 'a> Items<'v, 'a> {
    pub(super) fn len(&self) -> usize {
        match self {
            Items::Avro(i) => i.len(),
            Items::Lit(i) => i.len(),
            Items::Vals(i) => i.len(),
        }
    }
}

impl<'v, 'a> Iterator for Items<'v, 'a> {
    type Item = EvalRes<Val<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::Avro(i) => i.next().map(avro_val),
            Items::Lit(i) => i.next().map(|l| Ok(lit_val(l))),
            Items::Vals(i) => i.next().map(|v| Ok(v.clone())),
        }
    }
}

pub(super) fn items<'v, 'a>(list: &'v Val<'a>, what: &str) -> EvalRes<Items<'v, 'a>> {
    match list {
        Val::AvroList(l) => Ok(Items::Avro(l.iter())),
        Val::LitList(l) => Ok(Items::Lit(l.iter())),
        Val::List(l) => Ok(Items::Vals(l.iter())),
        Val::Null => Err(EvalError::null(what)),
        _ => Err(EvalError::record(format!("{what}: not a list"))),
    }
}
