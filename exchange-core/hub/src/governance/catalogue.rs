//! The resource catalogue's operations (政务数据资源目录, 政务数据共享条例 Art. 13–17): seeding it from the shared
//! schemas' declarations, browsing and searching it, editing an entry (a new version, audited), and exporting it
//! as JSON or as the `.xlsx` workbook a provincial catalogue system imports.
//!
//! The catalogue bounds every grant ([`Governance::entry_for_request`]): a request on a 不予共享 entry, or for a
//! field that is not one of the entry's data items, is refused when it is filed; a schema without an entry is
//! refused too (what the hub does not know it treats as the most restrictive case). Making an entry 不予共享
//! revokes every subscription on it that is not already final, each with the entry's version as the reason.

#[allow(unused_imports)]
use super::*;

use std::collections::BTreeMap;

use unsilo_policy::catalogue::{declared_entries, CatalogueEntry, DataItem, EntryTerms};

/// Body of `PUT /admin/catalogue/{id}`: the new terms, why, and the version they replace.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEdit {
    /// The version being replaced, as read (the edit is refused if the entry changed meanwhile).
    pub version: u32,
    /// Why the entry changes (kept with the version and in the audit log).
    pub note: String,
    /// The new terms, whole.
    pub terms: EntryTerms,
}

/// One catalogue entry as the API and the console show it: the entry, its data items, and its provider's
/// name and unified social credit code.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CatalogueView {
    /// The entry, with its history.
    #[serde(flatten)]
    pub entry: CatalogueEntry,
    /// The data items (信息项): the schema's fields less the withheld ones.
    pub items: Vec<DataItem>,
    /// The providing organisation's name, when it is assigned and registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// The providing organisation's unified social credit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_uscc: Option<String>,
}

impl CatalogueView {
    /// Whether the entry matches a search: every whitespace-separated word occurs (case-insensitively) in its
    /// id, title, classification, provider, conditions or a data item's name or description.
    pub fn matches(&self, query: &str) -> bool {
        let t = &self.entry.terms;
        let mut text = format!(
            "{} {} {} {} {} {} {}",
            self.entry.id,
            t.title,
            t.classification,
            t.provider.as_deref().unwrap_or_default(),
            self.provider_name.as_deref().unwrap_or_default(),
            t.conditions.as_deref().unwrap_or_default(),
            t.share_attribute.title_zh(),
        );
        for i in &self.items {
            text.push(' ');
            text.push_str(&i.field);
            text.push(' ');
            text.push_str(&i.title);
        }
        let text = text.to_lowercase();
        query
            .split_whitespace()
            .all(|w| text.contains(&w.to_lowercase()))
    }
}

impl Governance {
    /// Seeds the catalogue: every shared schema without an entry gets its declared one (`schemas/catalogue.toml`),
    /// with the provider a connector feeding it names (`providers`: schema → agency id). An existing entry
    /// without a provider gets a new version naming the provider a connector names. Each write is audited as
    /// the hub's. Returns how many entries were written.
    pub async fn seed_catalogue(
        &self,
        providers: &BTreeMap<String, String>,
    ) -> Result<usize, ApiError> {
        let declared = declared_entries().map_err(|e| ApiError::Internal(e.to_string()))?;
        let hub = Principal::Hub;
        let mut written = 0;
        for d in declared {
            let provider = providers.get(&d.schema).cloned();
            let entry = match self.control.catalogue_entry(&d.schema) {
                None => {
                    let mut terms = d.terms;
                    terms.provider = provider;
                    CatalogueEntry::first(
                        &d.schema,
                        terms,
                        "hub",
                        unsilo_bus::now_ms(),
                        "declared by the shared schema (schemas/catalogue.toml)",
                    )
                }
                Some(current) if current.terms.provider.is_none() && provider.is_some() => {
                    let mut terms = current.terms.clone();
                    terms.provider = provider;
                    current.next_version(
                        terms,
                        "hub",
                        unsilo_bus::now_ms(),
                        "provider named by the connector feeding it ([[connectors]] provider)",
                    )
                }
                Some(_) => continue,
            };
            self.control
                .put_catalogue_entry(&entry)
                .await
                .map_err(control_error)?;
            self.record_control(
                &hub,
                "catalogue.declare",
                &entry.id,
                json!({ "version": entry.version, "terms": entry.terms, "note": entry.note }),
            )
            .await?;
            written += 1;
        }
        if written > 0 {
            info!(entries = written, "Resource catalogue seeded.");
        }
        Ok(written)
    }

    fn catalogue_view(&self, entry: CatalogueEntry) -> CatalogueView {
        let provider = entry
            .terms
            .provider
            .as_deref()
            .and_then(|p| self.control.agency(p));
        CatalogueView {
            items: entry.terms.items(&entry.schema),
            provider_name: provider.as_ref().map(|a| a.name.clone()),
            provider_uscc: provider.map(|a| a.uscc),
            entry,
        }
    }

    /// The catalogue, optionally only the entries matching `query` (see [`CatalogueView::matches`]).
    pub fn catalogue(
        &self,
        who: &Principal,
        query: Option<&str>,
    ) -> Result<Vec<CatalogueView>, ApiError> {
        authorize(who, Action::ViewCatalogue)?;
        let entries: Vec<CatalogueEntry> =
            self.control.read().catalogue.values().cloned().collect();
        Ok(entries
            .into_iter()
            .map(|e| self.catalogue_view(e))
            .filter(|v| query.is_none_or(|q| v.matches(q)))
            .collect())
    }

    /// One catalogue entry.
    pub fn catalogue_entry(&self, who: &Principal, id: &str) -> Result<CatalogueView, ApiError> {
        authorize(who, Action::ViewCatalogue)?;
        self.control
            .catalogue_entry(id)
            .map(|e| self.catalogue_view(e))
            .ok_or_else(|| ApiError::NotFound(format!("catalogue entry `{id}`")))
    }

    /// Edits an entry: checks the terms (every problem at once), that the provider is a registered
    /// organisation and that `edit.version` is the current one; writes the next version and records it. An
    /// entry made 不予共享 revokes the subscriptions on it that are not final.
    pub async fn edit_catalogue_entry(
        &self,
        who: &Principal,
        id: &str,
        edit: CatalogueEdit,
    ) -> Result<CatalogueView, ApiError> {
        let operator = authorize(who, Action::EditCatalogue)?.to_owned();
        let current = self
            .control
            .catalogue_entry(id)
            .ok_or_else(|| ApiError::NotFound(format!("catalogue entry `{id}`")))?;
        if edit.version != current.version {
            return Err(ApiError::Conflict(format!(
                "catalogue entry `{id}` is at version {}, not {}; read it again and retry",
                current.version, edit.version
            )));
        }
        let mut problems = edit.terms.problems(&current.schema);
        if edit.note.trim().is_empty() {
            problems.push("note: say why the entry changes".into());
        }
        if let Some(p) = &edit.terms.provider {
            if self.control.agency(p).is_none() {
                problems.push(format!(
                    "provider: `{p}` is not a registered organisation (create it as an agency first)"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(ApiError::Invalid(format!(
                "the entry is not complete: {}",
                problems.join("; ")
            )));
        }
        if edit.terms == current.terms {
            return Err(ApiError::Conflict(format!(
                "catalogue entry `{id}` already has these terms; nothing to change"
            )));
        }
        let next = current.next_version(
            edit.terms,
            &who.to_string(),
            unsilo_bus::now_ms(),
            edit.note.trim(),
        );
        self.control
            .put_catalogue_entry(&next)
            .await
            .map_err(control_error)?;
        self.record_control(
            who,
            "catalogue.edit",
            id,
            json!({ "version": next.version, "terms": next.terms, "note": next.note }),
        )
        .await?;
        info!(entry = %id, version = next.version, operator = %operator, "Catalogue entry edited.");
        if let Some(refusal) = next.terms.refusal() {
            self.revoke_on_entry(who, &next, &refusal).await?;
        }
        Ok(self.catalogue_view(next))
    }

    /// Revokes every subscription on `entry`'s schema that is not final: the entry became 不予共享.
    async fn revoke_on_entry(
        &self,
        who: &Principal,
        entry: &CatalogueEntry,
        refusal: &str,
    ) -> Result<(), ApiError> {
        let open: Vec<Subscription> = self
            .control
            .read()
            .subscriptions
            .values()
            .filter(|s| s.requested.schema == entry.schema && !s.status.is_final())
            .cloned()
            .collect();
        for s in open {
            let reason = format!(
                "catalogue entry {} version {}: {refusal}",
                entry.id, entry.version
            );
            let status = if s.status == SubscriptionStatus::Requested {
                SubscriptionStatus::Rejected
            } else {
                SubscriptionStatus::Revoked
            };
            let action = if status == SubscriptionStatus::Rejected {
                "subscription.reject"
            } else {
                "subscription.revoke"
            };
            self.change_status(who, s, status, action, reason).await?;
        }
        Ok(())
    }

    /// The catalogue entry a request on `spec` falls under, checked against it: a schema without an entry, a
    /// 不予共享 entry, a field that is not a data item, or a sharing mode the entry does not offer is refused,
    /// every problem named at once.
    pub(super) fn entry_for_request(
        &self,
        spec: &SubscriptionSpec,
    ) -> Result<CatalogueEntry, ApiError> {
        let entry = self.control.catalogue_entry(&spec.schema).ok_or_else(|| {
            ApiError::Invalid(format!(
                "schema `{}` has no entry in the resource catalogue; only catalogued resources are shared",
                spec.schema
            ))
        })?;
        self.check_against_entry(&entry, spec)?;
        Ok(entry)
    }

    /// Checks a request on `spec` against catalogue entry `entry` (this hub's, or a linked hub's as it
    /// published it), every problem named at once.
    pub(super) fn check_against_entry(
        &self,
        entry: &CatalogueEntry,
        spec: &SubscriptionSpec,
    ) -> Result<(), ApiError> {
        if let Some(refusal) = entry.terms.refusal() {
            return Err(ApiError::Invalid(refusal));
        }
        let mut problems = Vec::new();
        let fields: Vec<&str> = spec.fields.iter().map(|f| f.field.as_str()).collect();
        if let Some(p) = entry.terms.items_problem(&entry.schema, &fields) {
            problems.push(p);
        }
        let mode = unsilo_policy::catalogue::ShareMode::of_channel(&spec.channel);
        if !entry.terms.share_modes.contains(&mode) {
            problems.push(format!(
                "the {} channel is sharing mode {} ({}), which catalogue entry {} does not offer (it offers {})",
                spec.channel.kind(),
                mode.as_str(),
                mode.title_zh(),
                entry.id,
                entry
                    .terms
                    .share_modes
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(problems.join("; ")))
        }
    }
}
