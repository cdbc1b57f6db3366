//! The type checker: the syntax tree checked against the subscription's Avro schema, giving typed nodes the evaluator runs.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Types and the checker
// ---------------------------------------------------------------------------------------------------------

/// A constant value (literals, and list literals made only of constants).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
    List(Vec<Lit>),
}

/// The static type of a sub-expression.
#[derive(Debug, Clone)]
pub(super) enum Ty<'s> {
    Bool,
    Int,
    Double,
    Str,
    /// A string whose values are the enum's symbols.
    Enum(&'s EnumSchema),
    Null,
    /// The element type of `[]`: compatible with everything.
    Any,
    List(Box<Ty<'s>>),
    Message(&'s RecordSchema),
    Nullable(Box<Ty<'s>>),
    /// A union other than `["null", T]`: only `has()` may look at it.
    Union,
    /// An Avro type filters cannot read (map, bytes, …): only `has()` may look at it.
    Unsupported(&'static str),
}

impl<'s> Ty<'s> {
    /// The type without nullability.
    pub(super) fn strip(&self) -> &Ty<'s> {
        match self {
            Ty::Nullable(inner) => inner.strip(),
            other => other,
        }
    }

    pub(super) fn is_bool(&self) -> bool {
        matches!(self, Ty::Bool)
    }
    pub(super) fn is_num(&self) -> bool {
        matches!(self, Ty::Int | Ty::Double)
    }
    pub(super) fn is_str(&self) -> bool {
        matches!(self, Ty::Str | Ty::Enum(_))
    }
    pub(super) fn may_be_null(&self) -> bool {
        matches!(self, Ty::Nullable(_) | Ty::Null | Ty::Any)
    }

    pub(super) fn name(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::Double => "double".into(),
            Ty::Str => "string".into(),
            Ty::Enum(e) => format!("enum {}", e.name.name),
            Ty::Null => "null".into(),
            Ty::Any => "dyn".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Message(r) => format!("record {}", r.name.name),
            Ty::Nullable(t) => format!("nullable {}", t.name()),
            Ty::Union => "union".into(),
            Ty::Unsupported(kind) => (*kind).into(),
        }
    }
}

/// Whether values of the two types can be compared with `==` (and `in`).
pub(super) fn eq_compatible(a: &Ty<'_>, b: &Ty<'_>) -> bool {
    if matches!(a.strip(), Ty::Message(_)) || matches!(b.strip(), Ty::Message(_)) {
        return false;
    }
    if matches!(a, Ty::Any) || matches!(b, Ty::Any) {
        return true;
    }
    if matches!(a, Ty::Null) {
        return b.may_be_null();
    }
    if matches!(b, Ty::Null) {
        return a.may_be_null();
    }
    match (a.strip(), b.strip()) {
        (Ty::Bool, Ty::Bool) => true,
        (x, y) if x.is_num() && y.is_num() => true,
        (x, y) if x.is_str() && y.is_str() => true,
        (Ty::List(x), Ty::List(y)) => eq_compatible(x, y),
        _ => false,
    }
}

/// The common type of two values that may end up in the same place (list elements, `?:` branches).
pub(super) fn unify<'s>(a: &Ty<'s>, b: &Ty<'s>) -> Option<Ty<'s>> {
    let nullable = |t: Ty<'s>| match t {
        Ty::Nullable(_) | Ty::Null | Ty::Any => t,
        other => Ty::Nullable(Box::new(other)),
    };
    match (a, b) {
        (Ty::Any, t) | (t, Ty::Any) => Some(t.clone()),
        (Ty::Null, t) | (t, Ty::Null) => Some(nullable(t.clone())),
        (Ty::Nullable(x), y) | (y, Ty::Nullable(x)) => unify(x, y.strip()).map(nullable),
        (Ty::Bool, Ty::Bool) => Some(Ty::Bool),
        (Ty::Int, Ty::Int) => Some(Ty::Int),
        (x, y) if x.is_num() && y.is_num() => Some(Ty::Double),
        (Ty::Enum(x), Ty::Enum(y)) if x.name == y.name => Some(a.clone()),
        (x, y) if x.is_str() && y.is_str() => Some(Ty::Str),
        (Ty::List(x), Ty::List(y)) => unify(x, y).map(|t| Ty::List(Box::new(t))),
        (Ty::Message(x), Ty::Message(y)) if x.name == y.name => Some(a.clone()),
        _ => None,
    }
}

/// Where a field path starts: the record being filtered, or a variable bound by `exists`/`all`
/// (0 = innermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Base {
    Root,
    Var(usize),
}

/// One field selection, pre-resolved to the field's position in its record.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub(super) index: usize,
    pub(super) name: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rel {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// The evaluation tree.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Lit(Lit),
    List(Vec<Node>),
    /// A field path; `display` names it in runtime errors.
    Path {
        base: Base,
        steps: Box<[Step]>,
        display: Box<str>,
    },
    /// Selection on a computed record (e.g. the result of `?:`).
    Select(Box<Node>, Step),
    Has {
        base: Base,
        steps: Box<[Step]>,
    },
    Not(Box<Node>),
    Neg(Box<Node>),
    Arith(Arith, Box<Node>, Box<Node>),
    Rel(Rel, Box<Node>, Box<Node>),
    /// A relation with a constant on the right (a constant on the left is flipped to the right).
    RelLit(Rel, Box<Node>, Lit),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    /// `==` (or `!=` when the flag is set) against a constant: the common case, without building a value.
    EqLit(Box<Node>, Lit, bool),
    In(Box<Node>, Box<Node>),
    /// `in` a list literal of constants.
    InLits(Box<Node>, Box<[Lit]>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Str(StrFn, Box<Node>, Box<Node>),
    /// A string function with a literal argument.
    StrLit(StrFn, Box<Node>, Box<str>),
    Matches(Box<Node>, Regex),
    Size(Box<Node>),
    Exists(Box<Node>, Box<Node>),
    All(Box<Node>, Box<Node>),
}

pub(super) struct Typed<'s> {
    pub(super) node: Node,
    pub(super) ty: Ty<'s>,
    /// The dotted schema path when the expression is a field (or a variable bound to list elements).
    pub(super) path: Option<String>,
}

pub(super) struct Scope<'s> {
    pub(super) name: String,
    pub(super) ty: Ty<'s>,
    pub(super) path: Option<String>,
}

pub(super) struct Checker<'s> {
    pub(super) root: &'s RecordSchema,
    pub(super) names: HashMap<String, &'s Schema>,
    pub(super) scopes: Vec<Scope<'s>>,
    pub(super) fields: BTreeSet<String>,
}

pub(super) const FUNCTIONS: [&str; 8] = [
    "has",
    "size",
    "startsWith",
    "endsWith",
    "contains",
    "matches",
    "exists",
    "all",
];

impl<'s> Checker<'s> {
    pub(super) fn new(root: &'s RecordSchema, schema: &'s Schema) -> Self {
        let mut names = HashMap::new();
        unsilo_schemas::avro::collect_names(schema, &mut names);
        Self {
            root,
            names,
            scopes: Vec::new(),
            fields: BTreeSet::new(),
        }
    }

    pub(super) fn resolve(&self, schema: &'s Schema) -> &'s Schema {
        let mut current = schema;
        // References can only point at named types, so one or two hops suffice; the bound guards cycles.
        for _ in 0..8 {
            match current {
                Schema::Ref { name } => match self.names.get(&name.fullname(None)) {
                    Some(target) => current = target,
                    None => return current,
                },
                other => return other,
            }
        }
        current
    }

    pub(super) fn ty_of(&self, schema: &'s Schema) -> Ty<'s> {
        let schema = self.resolve(schema);
        use unsilo_schemas::model::Base as Encoded;
        match unsilo_schemas::avro::encoded_primitive(schema) {
            Some(Encoded::Null) => return Ty::Null,
            Some(Encoded::Boolean) => return Ty::Bool,
            Some(Encoded::Int | Encoded::Long) => return Ty::Int,
            Some(Encoded::Float | Encoded::Double) => return Ty::Double,
            Some(Encoded::String) => return Ty::Str,
            Some(Encoded::Bytes) | None => {}
        }
        match schema {
            Schema::Enum(e) => Ty::Enum(e),
            Schema::Array(a) => Ty::List(Box::new(self.ty_of(&a.items))),
            Schema::Record(r) => Ty::Message(r),
            Schema::Union(u) => {
                let variants = u.variants();
                let non_null: Vec<&Schema> = variants
                    .iter()
                    .filter(|v| !matches!(v, Schema::Null))
                    .collect();
                match (variants.len() - non_null.len(), non_null.as_slice()) {
                    (1, [single]) => Ty::Nullable(Box::new(self.ty_of(single))),
                    (0, [single]) => self.ty_of(single),
                    (1, []) => Ty::Null,
                    _ => Ty::Union,
                }
            }
            Schema::Map(_) => Ty::Unsupported("map"),
            Schema::Bytes => Ty::Unsupported("bytes"),
            Schema::Fixed(_) => Ty::Unsupported("fixed"),
            Schema::Decimal(_) | Schema::BigDecimal => Ty::Unsupported("decimal"),
            Schema::Duration => Ty::Unsupported("duration"),
            // References (resolved above when known); primitives were answered by `encoded_primitive`.
            _ => Ty::Unsupported("unresolved reference"),
        }
    }

    pub(super) fn check(&mut self, ast: &Ast) -> Res<Typed<'s>> {
        self.check_inner(ast, false)
    }

    /// `opaque_ok`: the expression is the argument of `has()`, so unions and unreadable types are fine.
    pub(super) fn check_inner(&mut self, ast: &Ast, opaque_ok: bool) -> Res<Typed<'s>> {
        let pos = ast.pos;
        let typed = match &ast.kind {
            AstKind::RawInt(n) => {
                let n = i64::try_from(*n)
                    .map_err(|_| RawError::new(pos, "integer literal is out of range"))?;
                lit(Lit::Int(n), Ty::Int)
            }
            AstKind::Lit(l) => {
                let ty = match l {
                    Lit::Null => Ty::Null,
                    Lit::Bool(_) => Ty::Bool,
                    Lit::Int(_) => Ty::Int,
                    Lit::Double(_) => Ty::Double,
                    Lit::Str(_) => Ty::Str,
                    Lit::List(_) => Ty::List(Box::new(Ty::Any)),
                };
                lit(l.clone(), ty)
            }
            AstKind::List(items) => self.check_list(items)?,
            AstKind::Ident(name) => self.check_ident(name, ast)?,
            AstKind::Select(base, name) => self.check_select(base, name, ast)?,
            AstKind::Call { target, name, args } => {
                self.check_call(target.as_deref(), name, args, pos)?
            }
            AstKind::Not(inner) => {
                let t = self.check(inner)?;
                if !t.ty.strip().is_bool() {
                    return Err(RawError::new(
                        pos,
                        format!("`!` needs a bool, but its operand is {}", t.ty.name()),
                    ));
                }
                typed(Node::Not(Box::new(t.node)), Ty::Bool)
            }
            AstKind::Neg(inner) => {
                let t = self.check(inner)?;
                if !t.ty.strip().is_num() {
                    return Err(RawError::new(
                        pos,
                        format!("`-` needs a number, but its operand is {}", t.ty.name()),
                    ));
                }
                let ty = t.ty.strip().clone();
                typed(Node::Neg(Box::new(t.node)), ty)
            }
            AstKind::Binary(op, l, r) => self.check_binary(*op, l, r, pos)?,
            AstKind::Cond(c, a, b) => {
                let tc = self.check(c)?;
                if !tc.ty.strip().is_bool() {
                    return Err(RawError::new(
                        c.pos,
                        format!(
                            "the condition of `?:` must be a bool, but it is {}",
                            tc.ty.name()
                        ),
                    ));
                }
                let ta = self.check(a)?;
                let tb = self.check(b)?;
                let ty = unify(&ta.ty, &tb.ty).ok_or_else(|| {
                    RawError::new(
                        pos,
                        format!(
                            "the branches of `?:` have different types: {} and {}",
                            ta.ty.name(),
                            tb.ty.name()
                        ),
                    )
                })?;
                typed(
                    Node::Cond(Box::new(tc.node), Box::new(ta.node), Box::new(tb.node)),
                    ty,
                )
            }
        };
        if !opaque_ok {
            if let Ty::Union | Ty::Unsupported(_) = typed.ty.strip() {
                let what = ast.path_text().unwrap_or_else(|| "this value".to_string());
                return Err(RawError::new(
                    pos,
                    format!(
                        "`{what}` is of type {}, which a filter can only test with has()",
                        typed.ty.name()
                    ),
                ));
            }
        }
        Ok(typed)
    }

    pub(super) fn check_list(&mut self, items: &[Ast]) -> Res<Typed<'s>> {
        let mut elem = Ty::Any;
        let mut nodes = Vec::with_capacity(items.len());
        for item in items {
            let t = self.check(item)?;
            elem = unify(&elem, &t.ty).ok_or_else(|| {
                RawError::new(
                    item.pos,
                    format!(
                        "list elements must have one type, but this is {} after {}",
                        t.ty.name(),
                        elem.name()
                    ),
                )
            })?;
            if let Ty::Message(_) = elem.strip() {
                return Err(RawError::new(
                    item.pos,
                    "lists of records cannot be written",
                ));
            }
            nodes.push(t.node);
        }
        let ty = Ty::List(Box::new(elem));
        let consts: Option<Vec<Lit>> = nodes
            .iter()
            .map(|n| match n {
                Node::Lit(l) => Some(l.clone()),
                _ => None,
            })
            .collect();
        Ok(match consts {
            Some(values) => typed(Node::Lit(Lit::List(values)), ty),
            None => typed(Node::List(nodes), ty),
        })
    }

    pub(super) fn check_ident(&mut self, name: &str, ast: &Ast) -> Res<Typed<'s>> {
        if let Some(i) = self.scopes.iter().rposition(|s| s.name == name) {
            let depth = self.scopes.len() - 1 - i;
            let scope = &self.scopes[i];
            return Ok(Typed {
                node: Node::Path {
                    base: Base::Var(depth),
                    steps: Box::new([]),
                    display: name.into(),
                },
                ty: scope.ty.clone(),
                path: scope.path.clone(),
            });
        }
        let root = self.root;
        if let Some(&index) = root.lookup.get(name) {
            let field = &root.fields[index];
            self.fields.insert(name.to_string());
            return Ok(Typed {
                node: Node::Path {
                    base: Base::Root,
                    steps: Box::new([Step {
                        index,
                        name: name.into(),
                    }]),
                    display: name.into(),
                },
                ty: self.ty_of(&field.schema),
                path: Some(name.to_string()),
            });
        }
        if let Some((env_index, envelope)) = self.envelope() {
            if let Some(&index) = envelope.lookup.get(name) {
                let path = format!("envelope.{name}");
                self.fields.insert(path.clone());
                return Ok(Typed {
                    node: Node::Path {
                        base: Base::Root,
                        steps: Box::new([
                            Step {
                                index: env_index,
                                name: "envelope".into(),
                            },
                            Step {
                                index,
                                name: name.into(),
                            },
                        ]),
                        display: path.as_str().into(),
                    },
                    ty: self.ty_of(&envelope.fields[index].schema),
                    path: Some(path),
                });
            }
        }
        let mut candidates = Vec::new();
        collect_paths("", root, self, 0, &mut candidates);
        if let Some((_, envelope)) = self.envelope() {
            candidates.extend(envelope.fields.iter().map(|f| f.name.clone()));
        }
        candidates.extend(self.scopes.iter().map(|s| s.name.clone()));
        Err(RawError::new(
            ast.pos,
            format!(
                "unknown field `{name}`{}",
                suggestion(name, &candidates, || format!(
                    " (fields of {}: {})",
                    root.name.name,
                    field_list(root)
                ))
            ),
        ))
    }

    /// The top-level `envelope` field, if it is a record.
    pub(super) fn envelope(&self) -> Option<(usize, &'s RecordSchema)> {
        let root = self.root;
        let &index = root.lookup.get("envelope")?;
        match self.resolve(&root.fields.get(index)?.schema) {
            Schema::Record(r) => Some((index, r)),
            _ => None,
        }
    }

    pub(super) fn check_select(&mut self, base: &Ast, name: &str, ast: &Ast) -> Res<Typed<'s>> {
        let t = self.check(base)?;
        let Ty::Message(record) = t.ty.strip() else {
            let what = base.path_text().unwrap_or_else(|| "this value".to_string());
            return Err(RawError::new(
                ast.pos,
                format!(
                    "`{what}` is {}, not a record, so it has no field `{name}`",
                    t.ty.name()
                ),
            ));
        };
        let record: &'s RecordSchema = record;
        let Some(&index) = record.lookup.get(name) else {
            let prefix = base.path_text().map(|p| format!("{p}."));
            let mut candidates = Vec::new();
            collect_paths(
                prefix.as_deref().unwrap_or(""),
                record,
                self,
                0,
                &mut candidates,
            );
            let typed_text = format!("{}{name}", prefix.as_deref().unwrap_or(""));
            return Err(RawError::new(
                ast.pos,
                format!(
                    "unknown field `{typed_text}`{}",
                    suggestion(&typed_text, &candidates, || format!(
                        " (fields of {}: {})",
                        record.name.name,
                        field_list(record)
                    ))
                ),
            ));
        };
        let ty = self.ty_of(&record.fields[index].schema);
        let path = t.path.as_ref().map(|p| format!("{p}.{name}"));
        if let Some(p) = &path {
            self.fields.insert(p.clone());
        }
        let step = Step {
            index,
            name: name.into(),
        };
        let node = match t.node {
            Node::Path {
                base,
                steps,
                display,
            } => {
                let mut steps = steps.into_vec();
                steps.push(step);
                Node::Path {
                    base,
                    steps: steps.into_boxed_slice(),
                    display: format!("{display}.{name}").into(),
                }
            }
            other => Node::Select(Box::new(other), step),
        };
        Ok(Typed { node, ty, path })
    }

    pub(super) fn check_binary(
        &mut self,
        op: BinOp,
        l: &Ast,
        r: &Ast,
        pos: usize,
    ) -> Res<Typed<'s>> {
        let tl = self.check(l)?;
        let tr = self.check(r)?;
        let (a, b) = (tl.ty.strip(), tr.ty.strip());
        let mismatch = || {
            RawError::new(
                pos,
                format!(
                    "`{}` cannot be applied to {} and {}",
                    op.symbol(),
                    tl.ty.name(),
                    tr.ty.name()
                ),
            )
        };
        let (ln, rn) = (Box::new(tl.node.clone()), Box::new(tr.node.clone()));
        Ok(match op {
            BinOp::And | BinOp::Or => {
                for (t, ast) in [(&tl, l), (&tr, r)] {
                    if !t.ty.strip().is_bool() {
                        return Err(RawError::new(
                            pos,
                            format!(
                                "`{}` needs bool operands, but `{}` is {}",
                                op.symbol(),
                                ast.path_text().unwrap_or_else(|| "this operand".into()),
                                t.ty.name()
                            ),
                        ));
                    }
                }
                let node = if op == BinOp::And {
                    Node::And(ln, rn)
                } else {
                    Node::Or(ln, rn)
                };
                typed(node, Ty::Bool)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let ty = match (op, a, b) {
                    (BinOp::Mod, Ty::Int, Ty::Int) => Ty::Int,
                    (BinOp::Mod, _, _) => return Err(mismatch()),
                    (_, Ty::Int, Ty::Int) => Ty::Int,
                    (_, x, y) if x.is_num() && y.is_num() => Ty::Double,
                    (BinOp::Add, x, y) if x.is_str() && y.is_str() => Ty::Str,
                    _ => return Err(mismatch()),
                };
                let arith = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    BinOp::Mul => Arith::Mul,
                    BinOp::Div => Arith::Div,
                    _ => Arith::Mod,
                };
                typed(Node::Arith(arith, ln, rn), ty)
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                if !((a.is_num() && b.is_num()) || (a.is_str() && b.is_str())) {
                    return Err(mismatch());
                }
                check_symbol(&tl.ty, r)?;
                check_symbol(&tr.ty, l)?;
                let rel = match op {
                    BinOp::Lt => Rel::Lt,
                    BinOp::Le => Rel::Le,
                    BinOp::Gt => Rel::Gt,
                    _ => Rel::Ge,
                };
                let flipped = match rel {
                    Rel::Lt => Rel::Gt,
                    Rel::Le => Rel::Ge,
                    Rel::Gt => Rel::Lt,
                    Rel::Ge => Rel::Le,
                };
                let node = match (*ln, *rn) {
                    (Node::Lit(a), Node::Lit(b)) => {
                        Node::Rel(rel, Box::new(Node::Lit(a)), Box::new(Node::Lit(b)))
                    }
                    (other, Node::Lit(l)) => Node::RelLit(rel, Box::new(other), l),
                    (Node::Lit(l), other) => Node::RelLit(flipped, Box::new(other), l),
                    (l, r) => Node::Rel(rel, Box::new(l), Box::new(r)),
                };
                typed(node, Ty::Bool)
            }
            BinOp::Eq | BinOp::Ne => {
                if !eq_compatible(&tl.ty, &tr.ty) {
                    let hint = if matches!(a, Ty::Null) || matches!(b, Ty::Null) {
                        " (the value is never null)"
                    } else {
                        ""
                    };
                    return Err(RawError::new(
                        pos,
                        format!(
                            "`{}` cannot compare {} with {}{hint}",
                            op.symbol(),
                            tl.ty.name(),
                            tr.ty.name()
                        ),
                    ));
                }
                check_symbol(&tl.ty, r)?;
                check_symbol(&tr.ty, l)?;
                let ne = op == BinOp::Ne;
                let node = match (*ln, *rn) {
                    (other, Node::Lit(l)) | (Node::Lit(l), other) => {
                        Node::EqLit(Box::new(other), l, ne)
                    }
                    (l, r) if ne => Node::Ne(Box::new(l), Box::new(r)),
                    (l, r) => Node::Eq(Box::new(l), Box::new(r)),
                };
                typed(node, Ty::Bool)
            }
            BinOp::In => {
                let Ty::List(elem) = b else {
                    return Err(RawError::new(
                        pos,
                        format!(
                            "the right side of `in` must be a list, but it is {}",
                            tr.ty.name()
                        ),
                    ));
                };
                if !eq_compatible(&tl.ty, elem) {
                    return Err(RawError::new(
                        pos,
                        format!("`in` cannot look for {} in {}", tl.ty.name(), tr.ty.name()),
                    ));
                }
                // Enum field `in` a list literal: every string literal must be a symbol.
                if let AstKind::List(items) = &r.kind {
                    for item in items {
                        check_symbol(&tl.ty, item)?;
                    }
                }
                check_symbol(elem, l)?;
                let node = match *rn {
                    Node::Lit(Lit::List(items)) => Node::InLits(ln, items.into_boxed_slice()),
                    other => Node::In(ln, Box::new(other)),
                };
                typed(node, Ty::Bool)
            }
        })
    }

    pub(super) fn check_call(
        &mut self,
        target: Option<&Ast>,
        name: &str,
        args: &[Ast],
        pos: usize,
    ) -> Res<Typed<'s>> {
        let arity = |expected: usize, form: &str| -> Res<()> {
            if args.len() == expected {
                Ok(())
            } else {
                Err(RawError::new(
                    pos,
                    format!(
                        "`{name}` takes {expected} argument{} ({form}), got {}",
                        if expected == 1 { "" } else { "s" },
                        args.len()
                    ),
                ))
            }
        };
        let method_only = |form: &str| -> Res<()> {
            if target.is_none() {
                Err(RawError::new(
                    pos,
                    format!("`{name}` is called as a method: {form}"),
                ))
            } else {
                Ok(())
            }
        };
        match name {
            "has" => {
                if target.is_some() {
                    return Err(RawError::new(
                        pos,
                        "`has` is called as a function: has(a.b)",
                    ));
                }
                arity(1, "has(a.b)")?;
                let arg = &args[0];
                let t = self.check_inner(arg, true)?;
                match t.node {
                    Node::Path { base, steps, .. } if !steps.is_empty() => {
                        Ok(typed(Node::Has { base, steps }, Ty::Bool))
                    }
                    _ => Err(RawError::new(arg.pos, "has() needs a field, like has(a.b)")),
                }
            }
            "size" => {
                let subject = match target {
                    Some(t) => {
                        arity(0, "x.size()")?;
                        t
                    }
                    None => {
                        arity(1, "size(x)")?;
                        &args[0]
                    }
                };
                let t = self.check(subject)?;
                if !(t.ty.strip().is_str() || matches!(t.ty.strip(), Ty::List(_))) {
                    return Err(RawError::new(
                        pos,
                        format!(
                            "size() needs a string or a list, but this is {}",
                            t.ty.name()
                        ),
                    ));
                }
                Ok(typed(Node::Size(Box::new(t.node)), Ty::Int))
            }
            "startsWith" | "endsWith" | "contains" => {
                let form = format!("s.{name}(x)");
                method_only(&form)?;
                arity(1, &form)?;
                let subject = target.ok_or_else(|| RawError::new(pos, "missing receiver"))?;
                let ts = self.check(subject)?;
                let ta = self.check(&args[0])?;
                for t in [&ts, &ta] {
                    if !t.ty.strip().is_str() {
                        return Err(RawError::new(
                            pos,
                            format!("{form} needs strings, but got {}", t.ty.name()),
                        ));
                    }
                }
                let f = match name {
                    "startsWith" => StrFn::StartsWith,
                    "endsWith" => StrFn::EndsWith,
                    _ => StrFn::Contains,
                };
                let node = match ta.node {
                    Node::Lit(Lit::Str(x)) => Node::StrLit(f, Box::new(ts.node), x),
                    other => Node::Str(f, Box::new(ts.node), Box::new(other)),
                };
                Ok(typed(node, Ty::Bool))
            }
            "matches" => {
                let (subject, pattern) = match target {
                    Some(t) => {
                        arity(1, "s.matches(re)")?;
                        (t, &args[0])
                    }
                    None => {
                        arity(2, "matches(s, re)")?;
                        (&args[0], &args[1])
                    }
                };
                let ts = self.check(subject)?;
                if !ts.ty.strip().is_str() {
                    return Err(RawError::new(
                        pos,
                        format!("matches() needs a string, but got {}", ts.ty.name()),
                    ));
                }
                let AstKind::Lit(Lit::Str(re)) = &pattern.kind else {
                    return Err(RawError::new(
                        pattern.pos,
                        "the pattern of matches() must be a string literal",
                    ));
                };
                let regex = regex_lite::RegexBuilder::new(re)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        RawError::new(pattern.pos, format!("invalid regular expression: {e}"))
                    })?;
                Ok(typed(Node::Matches(Box::new(ts.node), regex), Ty::Bool))
            }
            "exists" | "all" => {
                let form = format!("list.{name}(x, predicate)");
                method_only(&form)?;
                arity(2, &form)?;
                let subject = target.ok_or_else(|| RawError::new(pos, "missing receiver"))?;
                let tl = self.check(subject)?;
                let Ty::List(elem) = tl.ty.strip() else {
                    return Err(RawError::new(
                        pos,
                        format!("{name}() needs a list, but this is {}", tl.ty.name()),
                    ));
                };
                let AstKind::Ident(var) = &args[0].kind else {
                    return Err(RawError::new(
                        args[0].pos,
                        format!("the first argument of {name}() must be a variable name"),
                    ));
                };
                self.scopes.push(Scope {
                    name: var.clone(),
                    ty: (**elem).clone(),
                    path: tl.path.clone(),
                });
                let pred = self.check(&args[1]);
                self.scopes.pop();
                let pred = pred?;
                if !pred.ty.strip().is_bool() {
                    return Err(RawError::new(
                        args[1].pos,
                        format!(
                            "the predicate of {name}() must be a bool, but it is {}",
                            pred.ty.name()
                        ),
                    ));
                }
                let (l, p) = (Box::new(tl.node), Box::new(pred.node));
                let node = if name == "exists" {
                    Node::Exists(l, p)
                } else {
                    Node::All(l, p)
                };
                Ok(typed(node, Ty::Bool))
            }
            other => {
                let candidates: Vec<String> = FUNCTIONS.iter().map(|f| f.to_string()).collect();
                Err(RawError::new(
                    pos,
                    format!(
                        "unknown function `{other}`{}",
                        suggestion(other, &candidates, || format!(
                            " (supported: {})",
                            FUNCTIONS.join(", ")
                        ))
                    ),
                ))
            }
        }
    }
}

pub(super) fn lit<'s>(l: Lit, ty: Ty<'s>) -> Typed<'s> {
    typed(Node::Lit(l), ty)
}

pub(super) fn typed(node: Node, ty: Ty<'_>) -> Typed<'_> {
    Typed {
        node,
        ty,
        path: None,
    }
}

/// If `ty` is an enum and `other` a string literal, the literal must be one of the symbols.
pub(super) fn check_symbol(ty: &Ty<'_>, other: &Ast) -> Res<()> {
    if let (Ty::Enum(e), AstKind::Lit(Lit::Str(s))) = (ty.strip(), &other.kind) {
        if !e.symbols.iter().any(|sym| sym.as_str() == &**s) {
            return Err(RawError::new(
                other.pos,
                format!(
                    "\"{s}\" is not a symbol of enum {} (symbols: {})",
                    e.name.name,
                    e.symbols.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn field_list(record: &RecordSchema) -> String {
    record
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every dotted field path reachable through records (not through arrays) from `record`.
pub(super) fn collect_paths(
    prefix: &str,
    record: &RecordSchema,
    checker: &Checker<'_>,
    depth: usize,
    out: &mut Vec<String>,
) {
    for field in &record.fields {
        let path = format!("{prefix}{}", field.name);
        if depth < SUGGEST_DEPTH {
            if let Ty::Message(inner) = checker.ty_of(&field.schema).strip() {
                collect_paths(&format!("{path}."), inner, checker, depth + 1, out);
            }
        }
        out.push(path);
    }
}

/// ` (did you mean `x`?)` for the closest candidate, or `fallback()` when nothing is close.
pub(super) fn suggestion(
    typed: &str,
    candidates: &[String],
    fallback: impl FnOnce() -> String,
) -> String {
    let last = typed.rsplit('.').next().unwrap_or(typed);
    // Same last segment at another place (`lng` for `location.lng`) is the best hint.
    if let Some(c) = candidates
        .iter()
        .filter(|c| c.as_str() != typed && c.rsplit('.').next() == Some(last))
        .min_by_key(|c| c.len())
    {
        return format!(" (did you mean `{c}`?)");
    }
    let limit = (typed.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (unsilo_schemas::avro::edit_distance(typed, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_else(fallback)
}
