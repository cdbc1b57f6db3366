//! Building a view: the requested fields and treatments checked against the shared schema, giving the view schema and its actions.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------------------------

pub(super) struct Builder<'a> {
    pub(super) schema_name: &'a str,
    pub(super) root: &'a SchemaRecord,
    pub(super) released: Vec<FieldRule>,
    pub(super) cert_clear: bool,
    pub(super) phone_clear: bool,
}

pub(super) fn not_applicable(
    path: &str,
    treatment: Treatment,
    reason: impl Into<String>,
) -> ViewError {
    ViewError::NotApplicable {
        path: path.to_string(),
        treatment,
        reason: reason.into(),
    }
}

pub(super) fn treatment_name(t: Treatment) -> &'static str {
    match t {
        Treatment::Clear => "clear",
        Treatment::Mask => "mask",
        Treatment::Pseudonymise => "pseudonymise",
        Treatment::Generalise => "generalise",
        Treatment::Drop => "drop",
    }
}

pub(super) fn is_region_code_field(name: &str) -> bool {
    name == "region_code"
        || name == "village_code"
        || name.ends_with("_region_code")
        || name.ends_with("_village_code")
}

pub(super) fn is_plain_string(ty: &SchemaType) -> bool {
    matches!(
        ty,
        SchemaType::Prim {
            base: Base::String,
            ..
        }
    )
}

/// Where a value being projected stands: what the grant selects there and the treatment that
/// applies, its dotted path, and the top-level field (of `parent`) it belongs to.
#[derive(Clone, Copy)]
pub(super) struct Site<'a> {
    pub(super) sel: Option<&'a Sel>,
    pub(super) treatment: Option<Treatment>,
    pub(super) path: &'a str,
    pub(super) field: &'a SchemaField,
    pub(super) parent: &'a SchemaRecord,
}

impl Builder<'_> {
    /// Projects a record; `None` when nothing of it is released.
    pub(super) fn record(
        &mut self,
        rec: &SchemaRecord,
        sel: Option<&Sel>,
        inherited: Option<Treatment>,
        path: &str,
    ) -> Result<Option<(VType, RecordPlan)>, ViewError> {
        let mut vfields = Vec::new();
        let mut plans = Vec::new();
        for (index, field) in rec.fields.iter().enumerate() {
            let fsel = sel.and_then(|s| s.children.get(&field.name));
            let fpath = join(path, &field.name);
            let treatment = fsel.and_then(|s| s.rule).or(inherited);
            let has_children = fsel.is_some_and(|s| !s.children.is_empty());
            if treatment == Some(Treatment::Drop) {
                if let Some(below) = fsel.and_then(|s| s.first_rule_below(&fpath)) {
                    return Err(ViewError::ConflictingRules {
                        path: below,
                        dropped: fpath,
                    });
                }
                continue;
            }
            if treatment.is_none() && !has_children {
                continue;
            }
            let site = Site {
                sel: fsel,
                treatment,
                path: &fpath,
                field,
                parent: rec,
            };
            let Some((ty, action)) = self.value(&field.ty, site)? else {
                continue;
            };
            let mut attrs = field.attrs.clone();
            attrs.insert(
                "x-treatment".into(),
                Json::String(treatment_name(treatment.unwrap_or(Treatment::Clear)).into()),
            );
            if let Some(default) = &field.default {
                let keep = match (&ty, default) {
                    (VType::Union(bs), Json::Null) => {
                        matches!(bs.first(), Some(VType::Json(Json::String(s))) if s == "null")
                    }
                    (VType::Array(_), Json::Array(items)) => items.is_empty(),
                    _ => treatment == Some(Treatment::Clear) && !ty.contains_record(),
                };
                if keep {
                    attrs.insert("default".into(), default.clone());
                }
            }
            vfields.push(VField {
                name: field.name.clone(),
                attrs,
                ty,
            });
            plans.push(FieldPlan {
                name: field.name.clone(),
                src: index,
                path: fpath.into(),
                action,
            });
        }
        if vfields.is_empty() {
            return Ok(None);
        }
        Ok(Some((
            VType::Record {
                full: rec.full.clone(),
                short: rec.short.clone(),
                doc: rec.doc.clone(),
                fields: vfields,
            },
            RecordPlan { fields: plans },
        )))
    }

    /// Projects a value of type `ty` at `path` (a field, or a union branch below it).
    pub(super) fn value(
        &mut self,
        ty: &SchemaType,
        site: Site<'_>,
    ) -> Result<Option<(VType, Action)>, ViewError> {
        let (sel, treatment, path) = (site.sel, site.treatment, site.path);
        match ty {
            SchemaType::Record(rec) => {
                if let Some(
                    t @ (Treatment::Mask | Treatment::Pseudonymise | Treatment::Generalise),
                ) = treatment
                {
                    return Err(not_applicable(
                        path,
                        t,
                        "it is a record; release it in clear or name its fields",
                    ));
                }
                let projected = self.record(rec, sel, treatment, path)?;
                Ok(projected.map(|(ty, plan)| {
                    let whole = plan.fields.len() == rec.fields.len()
                        && plan
                            .fields
                            .iter()
                            .enumerate()
                            .all(|(i, f)| f.src == i && f.action.is_clone());
                    let action = if whole {
                        Action::Leaf(Leaf::Clone)
                    } else {
                        Action::Record(Box::new(plan))
                    };
                    (ty, action)
                }))
            }
            SchemaType::Array(inner) | SchemaType::Map(inner) => {
                let array = matches!(ty, SchemaType::Array(_));
                Ok(self.value(inner, site)?.map(|(item, action)| {
                    let action = match (action.is_clone(), array) {
                        (true, _) => action,
                        (false, true) => Action::Array(Box::new(action)),
                        (false, false) => Action::Map(Box::new(action)),
                    };
                    let item = Box::new(item);
                    (
                        if array {
                            VType::Array(item)
                        } else {
                            VType::Map(item)
                        },
                        action,
                    )
                }))
            }
            SchemaType::Union(branches) => self.union(branches, site),
            SchemaType::Prim { .. } | SchemaType::Named { .. } => {
                if let Some(below) = sel.and_then(|s| s.first_rule_below(path)) {
                    return Err(ViewError::UnknownField {
                        path: below,
                        schema: self.schema_name.to_string(),
                        suggestion: Some(path.to_string()),
                    });
                }
                let Some(treatment) = treatment else {
                    return Ok(None);
                };
                let (ty, leaf) = self.leaf(ty, treatment, site)?;
                self.released.push(FieldRule {
                    field: path.to_string(),
                    treatment,
                });
                Ok(Some((ty, Action::Leaf(leaf))))
            }
        }
    }

    pub(super) fn union(
        &mut self,
        branches: &[SchemaType],
        site: Site<'_>,
    ) -> Result<Option<(VType, Action)>, ViewError> {
        let (sel, treatment, path) = (site.sel, site.treatment, site.path);
        let several = branches.iter().filter(|b| !b.is_null()).count() > 1;
        if several {
            if let Some(t @ (Treatment::Mask | Treatment::Pseudonymise | Treatment::Generalise)) =
                treatment
            {
                return Err(not_applicable(
                    path,
                    t,
                    "it is a union of several types; release it in clear or name its branches",
                ));
            }
        }
        // (view type, action) per source branch; None = withheld.
        let mut kept: Vec<Option<(VType, Action)>> = Vec::with_capacity(branches.len());
        for branch in branches {
            if branch.is_null() {
                kept.push(Some((
                    VType::from_source(branch),
                    Action::Leaf(Leaf::Clone),
                )));
                continue;
            }
            if !several {
                kept.push(self.value(branch, site)?);
                continue;
            }
            let bpath = join(path, &branch.branch_name());
            let bsel = sel.and_then(|s| s.children.get(&branch.branch_name()));
            let bt = bsel.and_then(|s| s.rule).or(treatment);
            if bt == Some(Treatment::Drop) {
                if let Some(below) = bsel.and_then(|s| s.first_rule_below(&bpath)) {
                    return Err(ViewError::ConflictingRules {
                        path: below,
                        dropped: bpath,
                    });
                }
                kept.push(None);
                continue;
            }
            let has_children = bsel.is_some_and(|s| !s.children.is_empty());
            if bt.is_none() && !has_children {
                kept.push(None);
                continue;
            }
            let branch_site = Site {
                sel: bsel,
                treatment: bt,
                path: &bpath,
                ..site
            };
            kept.push(self.value(branch, branch_site)?);
        }
        let has_null = branches.iter().any(SchemaType::is_null);
        if kept
            .iter()
            .zip(branches)
            .all(|(k, b)| k.is_none() || b.is_null())
        {
            return Ok(None);
        }
        let mut view_branches = Vec::new();
        let mut null_out = 0u32;
        // A withheld branch is sent as null: make sure the view has a null branch, first.
        if !has_null && kept.iter().any(Option::is_none) {
            view_branches.push(VType::Json(Json::String("null".into())));
        }
        let mut mapped = Vec::with_capacity(kept.len());
        let mut identity = view_branches.is_empty();
        for (source_index, k) in kept.into_iter().enumerate() {
            match k {
                Some((ty, action)) => {
                    let out = u32::try_from(view_branches.len()).unwrap_or(u32::MAX);
                    if matches!(&ty, VType::Json(Json::String(s)) if s == "null") {
                        null_out = out;
                    }
                    identity &= action.is_clone() && out as usize == source_index;
                    view_branches.push(ty);
                    mapped.push(Some((out, action)));
                }
                None => {
                    identity = false;
                    mapped.push(None);
                }
            }
        }
        let action = if identity {
            Action::Leaf(Leaf::Clone)
        } else {
            Action::Union {
                branches: mapped.into_boxed_slice(),
                null_out,
            }
        };
        Ok(Some((VType::Union(view_branches), action)))
    }

    pub(super) fn leaf(
        &mut self,
        ty: &SchemaType,
        treatment: Treatment,
        site: Site<'_>,
    ) -> Result<(VType, Leaf), ViewError> {
        let Site {
            path,
            field,
            parent,
            ..
        } = site;
        let string = || VType::Json(Json::String("string".into()));
        let (base, logical) = match ty {
            SchemaType::Prim { base, logical, .. } => (Some(*base), logical.as_deref()),
            _ => (None, None),
        };
        match treatment {
            Treatment::Clear | Treatment::Drop => {
                if base == Some(Base::String) {
                    match field.pii {
                        Some(PiiKind::CertNo) => self.cert_clear = true,
                        Some(PiiKind::Phone) => self.phone_clear = true,
                        _ => {}
                    }
                }
                let leaf = if field.pii == Some(PiiKind::FreeText) && base == Some(Base::String) {
                    Leaf::Redact
                } else {
                    Leaf::Clone
                };
                Ok((VType::from_source(ty), leaf))
            }
            Treatment::Mask | Treatment::Pseudonymise => {
                if base != Some(Base::String) {
                    return Err(not_applicable(
                        path,
                        treatment,
                        format!("it applies to strings, the field is {}", ty.describe()),
                    ));
                }
                let leaf = if treatment == Treatment::Mask {
                    Leaf::Mask(MaskStyle::for_pii(field.pii))
                } else {
                    let domain = match field.pii {
                        Some(kind) => kind.as_str().to_string(),
                        None => format!("field:{}.{path}", self.schema_name),
                    };
                    Leaf::Pseudonymise(domain.into())
                };
                Ok((string(), leaf))
            }
            Treatment::Generalise => {
                let none = || ViewError::NoGeneralisation {
                    path: path.to_string(),
                };
                match (field.pii, base, logical) {
                    (Some(PiiKind::Address), Some(Base::String), _) => {
                        let sibling = parent
                            .fields
                            .iter()
                            .position(|f| f.name == "village_code" && is_plain_string(&f.ty));
                        let source = match sibling {
                            Some(i) => AddressSource::Sibling(i),
                            None => self.envelope_region().ok_or_else(none)?,
                        };
                        Ok((string(), Leaf::Address(source)))
                    }
                    (_, Some(Base::Int), Some("date")) => {
                        Ok((VType::Json(Json::String("int".into())), Leaf::Year))
                    }
                    (Some(PiiKind::Geo), Some(Base::Double | Base::Float), _) => {
                        Ok((VType::from_source(ty), Leaf::Coordinate))
                    }
                    (_, Some(Base::Long), Some("timestamp-millis")) => {
                        Ok((VType::from_source(ty), Leaf::Day))
                    }
                    (_, Some(Base::String), None) if is_region_code_field(&field.name) => {
                        Ok((string(), Leaf::County))
                    }
                    _ => Err(none()),
                }
            }
        }
    }

    pub(super) fn envelope_region(&self) -> Option<AddressSource> {
        let envelope = self.root.fields.iter().position(|f| f.name == "envelope")?;
        let SchemaType::Record(env) = &self.root.fields[envelope].ty else {
            return None;
        };
        let region = env
            .fields
            .iter()
            .position(|f| f.name == "region_code" && is_plain_string(&f.ty))?;
        Some(AddressSource::Envelope { envelope, region })
    }
}

pub(super) fn sanitise_view_name(view_name: &str) -> Result<String, ViewError> {
    let mut out: String = view_name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.chars().any(|c| c.is_ascii_alphanumeric()) {
        return Err(ViewError::InvalidViewName(view_name.to_string()));
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'v');
    }
    Ok(out)
}
