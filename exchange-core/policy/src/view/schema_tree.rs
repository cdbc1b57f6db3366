//! The shared schema as the view builder reads it — the one schema model of [`unsilo_schemas::model`], read once
//! by the catalog ([`SharedSchema::tree`]) — and the suggestion of a path for a misspelt one.

#[allow(unused_imports)]
use super::*;

pub(super) use unsilo_schemas::model::{join, Base, SchemaField, SchemaRecord, SchemaType};

/// The existing path closest to `path`: one ending in `.path` (a missing parent), else the nearest by edit
/// distance if it is reasonably near.
pub(super) fn suggest(path: &str, known: &[String]) -> Option<String> {
    let suffix = format!(".{path}");
    if let Some(p) = known.iter().find(|p| p.ends_with(&suffix)) {
        return Some(p.clone());
    }
    known
        .iter()
        .map(|p| (unsilo_schemas::avro::edit_distance(path, p), p))
        .filter(|(d, _)| *d <= path.chars().count() / 3 + 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p.clone())
}
