//! The plan: what a built view keeps (view schema, actions, free-text redaction) and runs per record.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------------------------

/// A compiled subscription view over one shared schema: the view schema and the per-field actions that project
/// a shared record onto it. Build once per subscription, apply per record.
#[derive(Clone, Debug)]
pub struct ViewPlan {
    pub(super) view_name: String,
    pub(super) schema_json: Json,
    pub(super) schema: Schema,
    pub(super) rules: Vec<FieldRule>,
    pub(super) released: Vec<FieldRule>,
    pub(super) root: RecordPlan,
    pub(super) redaction: Redaction,
    pub(super) persons: PersonKeys,
}

impl ViewPlan {
    /// Compiles the view of `shared` that releases exactly what `rules` name (see the module docs).
    ///
    /// `view_name` names the view's namespace `unsilo.view.<view_name>`, lower-cased with anything but
    /// `[a-z0-9]` turned into `_`. Errors name the offending rule path: unknown path (with the closest existing
    /// one), duplicate rule, treatment not applicable to the field's type, `generalise` without a
    /// generalisation, rules below a dropped field, or an empty rule set.
    pub fn build(
        shared: &SharedSchema,
        rules: &[FieldRule],
        view_name: &str,
    ) -> Result<ViewPlan, ViewError> {
        if rules.is_empty() {
            return Err(ViewError::EmptyRules);
        }
        let sanitised = sanitise_view_name(view_name)?;
        let root = shared.tree();
        let known = root.paths();
        let known_set: HashSet<&str> = known.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let mut sel = Sel::default();
        for rule in rules {
            if !known_set.contains(rule.field.as_str()) {
                return Err(ViewError::UnknownField {
                    path: rule.field.clone(),
                    schema: shared.name().to_string(),
                    suggestion: suggest(&rule.field, &known),
                });
            }
            if !seen.insert(rule.field.as_str()) {
                return Err(ViewError::DuplicateRule {
                    path: rule.field.clone(),
                });
            }
            sel.insert(&rule.field, rule.treatment);
        }
        let mut builder = Builder {
            schema_name: shared.name(),
            root,
            released: Vec::new(),
            cert_clear: false,
            phone_clear: false,
        };
        let Some((vtype, plan)) = builder.record(root, Some(&sel), None, "")? else {
            // Only drop rules: the view would be an empty record, which Avro cannot express usefully.
            return Err(ViewError::EmptyRules);
        };
        let namespace = format!("{VIEW_NAMESPACE_PREFIX}.{sanitised}");
        let mut emitter = Emitter {
            namespace,
            assigned: HashMap::new(),
            used: HashSet::new(),
            defined: HashSet::new(),
        };
        let schema_json = emitter.emit(&vtype);
        let schema =
            Schema::parse(&schema_json).map_err(|e| ViewError::ViewSchema(e.to_string()))?;
        let mut effective = rules.to_vec();
        effective.sort_by(|a, b| a.field.cmp(&b.field));
        let mut released = builder.released;
        released.sort_by(|a, b| a.field.cmp(&b.field));
        let redaction = Redaction {
            ids: !builder.cert_clear,
            phones: !builder.phone_clear,
        };
        Ok(ViewPlan {
            view_name: sanitised,
            schema_json,
            schema,
            rules: effective,
            released,
            root: plan,
            redaction,
            persons: PersonKeys::from_record(root),
        })
    }

    /// The sanitised view name (the last component of the view namespace).
    pub fn name(&self) -> &str {
        &self.view_name
    }

    /// The view schema as JSON, self-contained (named types defined at first use, referenced after).
    pub fn schema_json(&self) -> &Json {
        &self.schema_json
    }

    /// The parsed view schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The rules the plan was built from, sorted by path.
    pub fn rules(&self) -> &[FieldRule] {
        &self.rules
    }

    /// Every released leaf path with the treatment it actually gets, sorted by path: a record released in clear
    /// expanded to its leaves, dropped leaves left out. This is what a subscriber receives, for audit.
    pub fn released(&self) -> &[FieldRule] {
        &self.released
    }

    /// What free text released in clear gets redacted.
    pub fn redaction(&self) -> Redaction {
        self.redaction
    }

    /// Projects a record of the shared schema onto the view and appends it to `out` as Avro binary of
    /// [`Self::schema`] (no framing). This is the router's path: the view is written straight from the decoded
    /// shared record, field by field, without building a view value first.
    pub fn encode(
        &self,
        record: &Value,
        key: &PseudonymKey,
        out: &mut Vec<u8>,
    ) -> Result<(), ViewError> {
        let Value::Record(fields) = record else {
            return Err(ViewError::RecordShape {
                path: String::new(),
                reason: format!(
                    "expected a record, found {}",
                    unsilo_schemas::avro::value_kind(record)
                ),
            });
        };
        let ctx = Ctx {
            root: fields,
            key,
            redaction: self.redaction,
        };
        encode_record(&self.root, fields, &ctx, out)
    }

    /// Projects a record of the shared schema onto the view, as a value of [`Self::schema`]: what a subscriber
    /// decodes from [`Self::encode`]'s bytes (it is computed that way).
    pub fn apply(&self, record: &Value, key: &PseudonymKey) -> Result<Value, ViewError> {
        let mut bytes = Vec::with_capacity(256);
        self.encode(record, key, &mut bytes)?;
        let mut reader = bytes.as_slice();
        let value = apache_avro::from_avro_datum(&self.schema, &mut reader, None)
            .map_err(|e| ViewError::ViewSchema(format!("the view does not decode: {e}")))?;
        if !reader.is_empty() {
            return Err(ViewError::ViewSchema(format!(
                "the view encodes {} bytes more than its schema reads",
                reader.len()
            )));
        }
        Ok(value)
    }

    /// Pseudonyms of every ID number (`x-pii: cert_no`) in `record` — the same as [`person_keys`], without
    /// re-reading the schema.
    pub fn person_keys(&self, record: &Value, key: &PseudonymKey) -> Vec<String> {
        self.persons.keys(record, key)
    }
}
