//! The structure of a mapping: record, array and map nodes of the target schema, and the raw paths they read.

use super::*;

impl Compiler<'_> {
    pub(super) fn record_node(
        &mut self,
        record: &'static RecordSchema,
        rule: Option<Rule<'_>>,
        spec: Spec<'_>,
        union: Option<UnionPos>,
        null_pos: Option<UnionPos>,
        scope: &Scope,
    ) -> Option<RecordNode> {
        let path = &scope.path;
        let mut base = None;
        let mut when = None;
        if let Some(rule) = &rule {
            self.only(
                rule,
                &["path", "when", "fields", "branch"],
                "the record",
                path,
            );
            if let Some(node) = rule.shorthand.or(rule.get("path").map(|e| &e.value)) {
                base = self.path_set(node, path);
            }
            if let Some(w) = rule.get("when") {
                if null_pos.is_none() {
                    self.err(
                        w.key_span,
                        format!("`when` only applies to an optional record; `{path}` is required"),
                    );
                } else {
                    when = self.cond(&w.value);
                }
            }
        }
        // Sub-field paths of a record with its own `path` are read against that object: a scope of their own.
        if base.is_some() {
            self.scopes.push(ScopeBuilder::new());
        }
        let plan = self.record_plan(record, spec, scope);
        let record_scope = base.is_some().then(|| self.pop_scope());
        let presence = if null_pos.is_none() {
            Presence::Always
        } else if let Some(w) = when {
            Presence::When(w)
        } else if base.is_some() {
            Presence::Base
        } else {
            let mut probes = Vec::new();
            probe_paths(&plan, &mut probes);
            if probes.is_empty() {
                Presence::Always
            } else {
                Presence::Probe(probes.into_boxed_slice())
            }
        };
        Some(RecordNode {
            union,
            base,
            scope: record_scope,
            presence,
            absent: null_pos.as_ref().map(null_const),
            plan,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn array_node(
        &mut self,
        items: &'static Schema,
        rule: Rule<'_>,
        spec: Spec<'_>,
        union: Option<UnionPos>,
        missing: Missing,
        path: &str,
        tag_path: &str,
    ) -> Option<ArrayNode> {
        let source_node = match (rule.shorthand, rule.get("each"), rule.get("path")) {
            (Some(s), None, None) => Some(s),
            (None, Some(e), None) | (None, None, Some(e)) => Some(&e.value),
            (None, Some(_), Some(p)) => {
                self.err(
                    p.key_span,
                    format!(
                        "array field `{path}` has both `each` and `path`; they are the same thing"
                    ),
                );
                None
            }
            _ => {
                self.err(
                    rule.span,
                    format!("array field `{path}` needs `each = \"<raw array path>\"`"),
                );
                None
            }
        };
        let source = source_node.and_then(|n| self.path_set(n, path));
        let split = match rule.get("split") {
            Some(e) => match self.string_node(e) {
                Some("") => {
                    self.err(e.value.span, "`split` needs a non-empty separator");
                    None
                }
                Some(s) => Some(Box::<str>::from(s)),
                None => None,
            },
            None => None,
        };
        // Paths inside `each` are read against each element: a scope of their own.
        self.scopes.push(ScopeBuilder::new());
        let item = self.array_item(items, &rule, spec, path, tag_path);
        let item_scope = self.pop_scope();
        let item = item?;
        Some(ArrayNode {
            union,
            source: source?,
            scope: item_scope,
            split,
            item,
            missing,
        })
    }

    /// The items of an array: a record plan or a scalar rule, in the element scope.
    pub(super) fn array_item(
        &mut self,
        items: &'static Schema,
        rule: &Rule<'_>,
        spec: Spec<'_>,
        path: &str,
        tag_path: &str,
    ) -> Option<ItemPlan> {
        let item_schema = self.resolve(items);
        let (item_null, item_value, item_branch) = match item_schema {
            Schema::Union(u) => {
                let (np, vp, b) = self.union_branch(u, None, rule.span, path)?;
                (np, vp, self.resolve(b))
            }
            other => (None, None, other),
        };
        Some(match item_branch {
            Schema::Record(record) => {
                let mut allowed = vec!["each", "path", "fields", "branch"];
                if let Some(s) = rule.get("split") {
                    self.err(
                        s.key_span,
                        format!("`split` makes text items; the items of `{path}` are records"),
                    );
                    allowed.push("split");
                }
                self.only(rule, &allowed, "the array of records", path);
                let scope = Scope {
                    path: path.to_string(),
                    tag_path: tag_path.to_string(),
                    anchor: rule.span,
                    root_envelope: false,
                };
                let plan = self.record_plan(record, spec, &scope);
                ItemPlan::Record(RecordNode {
                    union: item_value,
                    base: None,
                    scope: None,
                    presence: if item_null.is_some() {
                        Presence::Base
                    } else {
                        Presence::Always
                    },
                    absent: item_null.as_ref().map(null_const),
                    plan,
                })
            }
            other => {
                let Some(ty) = scalar_type(other) else {
                    self.err(rule.span, format!("the items of `{path}` have Avro type {}, which mappings do not support", describe_schema(other)));
                    return None;
                };
                let mut spec = spec;
                self.children_not_allowed(
                    &mut spec,
                    path,
                    &format!("an array of {}", ty.describe()),
                );
                let mut allowed: Vec<&str> = VALUE_KEYS
                    .iter()
                    .copied()
                    .filter(|k| *k != "path")
                    .collect();
                allowed.extend(["each", "path", "item", "split", "branch"]);
                self.only(rule, &allowed, "the array", path);
                let target = ScalarTarget {
                    ty,
                    union: item_value,
                    mask: self.mask_for(tag_path),
                };
                let value = self.value_plan(rule, target, path, PathKey::Item)?;
                let item_missing = match &item_null {
                    Some(p) => Missing::Const(null_const(p)),
                    None => Missing::Required,
                };
                ItemPlan::Scalar(ScalarPlan {
                    value,
                    missing: item_missing,
                })
            }
        })
    }

    pub(super) fn map_node(
        &mut self,
        values: &'static Schema,
        rule: Rule<'_>,
        union: Option<UnionPos>,
        missing: Missing,
        path: &str,
        tag_path: &str,
    ) -> Option<MapNode> {
        let source_node = rule.shorthand.or(rule.get("path").map(|e| &e.value));
        let Some(source_node) = source_node else {
            self.err(
                rule.span,
                format!("map field `{path}` needs `path = \"<raw object path>\"`"),
            );
            return None;
        };
        let source = self.path_set(source_node, path);
        let value_schema = self.resolve(values);
        let (value_null, value_pos, branch) = match value_schema {
            Schema::Union(u) => {
                let (np, vp, b) = self.union_branch(u, None, rule.span, path)?;
                (np, vp, self.resolve(b))
            }
            other => (None, None, other),
        };
        let Some(ty) = scalar_type(branch) else {
            self.err(
                rule.span,
                format!(
                    "the values of map `{path}` have Avro type {}, which mappings do not support",
                    describe_schema(branch)
                ),
            );
            return None;
        };
        let mut allowed: Vec<&str> = VALUE_KEYS
            .iter()
            .copied()
            .filter(|k| *k != "path")
            .collect();
        allowed.extend(["path", "item", "branch"]);
        self.only(&rule, &allowed, "the map", path);
        let target = ScalarTarget {
            ty,
            union: value_pos,
            mask: self.mask_for(tag_path),
        };
        self.scopes.push(ScopeBuilder::new());
        let value = self.value_plan(&rule, target, path, PathKey::Item);
        let value_scope = self.pop_scope();
        let value = value?;
        Some(MapNode {
            union,
            source: source?,
            scope: value_scope,
            value: ScalarPlan {
                value,
                missing: match &value_null {
                    Some(p) => Missing::Const(null_const(p)),
                    None => Missing::Required,
                },
            },
            missing,
        })
    }

    /// A path or a list of paths (the first present one wins).
    pub(super) fn path_set(&mut self, node: &Node, path: &str) -> Option<PathSet> {
        let texts: Vec<(&str, Span)> = match &node.kind {
            Kind::Str(s) => vec![(s.as_str(), node.span)],
            Kind::Array(items) if !items.is_empty() => {
                let mut v = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(s) => v.push((s, i.span)),
                        None => {
                            self.err(
                                i.span,
                                format!(
                                    "raw paths for `{path}` must be strings, found {}",
                                    i.type_name()
                                ),
                            );
                            return None;
                        }
                    }
                }
                v
            }
            _ => {
                self.err(
                    node.span,
                    format!("the raw path for `{path}` must be a string or a non-empty array of strings, found {}", node.type_name()),
                );
                return None;
            }
        };
        let mut paths = Vec::new();
        for (text, span) in texts {
            match ParsedPath::parse(text) {
                Ok(p) => paths.push(self.register(&p)),
                Err(e) => {
                    self.err(span, format!("bad raw path for `{path}`: {e}"));
                    return None;
                }
            }
        }
        Some(PathSet::new(paths))
    }
}
