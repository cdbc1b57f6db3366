//! The built-in connectors, compiled into the binary from their definition folders under `connectors/builtin/`.
//!
//! Each built-in has a small module listing its files with `include_str!`, so the binary needs no files at run
//! time, while the folders stay ordinary definitions that `unsilo mapping test` and a text editor work on.
//! Configure one with `definition = "builtin:<name>"`.

mod dept_file;
mod dept_sql;
mod grid;
mod hotline12345;
mod qinwuyuan;

use crate::conformance::FixtureError;
use crate::definition::{ConnectorDefinition, DefinitionError};

/// A built-in connector: its name and its definition files (path relative to the folder, contents).
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// The connector's name, e.g. `grid`.
    pub name: &'static str,
    /// The files of its definition folder: `connector.toml`, the contract, the mappings and the fixtures.
    pub files: &'static [(&'static str, &'static str)],
}

impl Builtin {
    /// Reads its files by path, as [`crate::definition::folder_reader`] reads a folder's.
    pub fn reader(&self) -> impl Fn(&str) -> Result<(String, String), DefinitionError> + '_ {
        move |relative: &str| {
            self.file(relative)
                .map(|text| (format!("builtin:{}/{relative}", self.name), text.to_owned()))
                .ok_or_else(|| DefinitionError::Read {
                    path: format!("builtin:{}/{relative}", self.name),
                    reason: "not among the built-in connector's files".into(),
                })
        }
    }

    /// The contents of one file of the folder, by its relative path (`README.md`, `contract.json` …).
    pub fn file(&self, path: &str) -> Option<&'static str> {
        self.files
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, text)| *text)
    }

    /// The property names the raw contract declares: its top-level properties and those of the named `$defs`
    /// (what a connector's README must document).
    pub fn contract_properties(&self, defs: &[&str]) -> Result<Vec<String>, FixtureError> {
        let text = self
            .file("contract.json")
            .ok_or_else(|| FixtureError(format!("{}: no contract.json", self.name)))?;
        let contract: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FixtureError(format!("{}: contract.json: {e}", self.name)))?;
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let mut names = keys(&contract["properties"]);
        for def in defs {
            names.extend(keys(&contract["$defs"][*def]["properties"]));
        }
        Ok(names)
    }
}

/// Every built-in connector. (Each entry's module lists its files.)
pub const BUILTINS: &[Builtin] = &[
    // One line per built-in connector, e.g. `grid::BUILTIN,`.
    dept_file::BUILTIN,
    dept_sql::BUILTIN,
    grid::BUILTIN,
    hotline12345::BUILTIN,
    qinwuyuan::BUILTIN,
];

/// The names of the built-in connectors.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

/// The built-in connector called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Loads and checks the definition of the built-in connector `name`.
pub fn definition(name: &str) -> Result<ConnectorDefinition, DefinitionError> {
    let b = builtin(name).ok_or_else(|| DefinitionError::UnknownBuiltin {
        name: name.to_owned(),
        known: names().join(", "),
    })?;
    ConnectorDefinition::load_with(b.reader())
}

/// The fixtures of a built-in connector: `(path, contents)` of every file under `fixtures/`.
pub fn fixtures(name: &str) -> Vec<(&'static str, &'static str)> {
    builtin(name)
        .map(|b| {
            b.files
                .iter()
                .filter(|(path, _)| path.starts_with("fixtures/"))
                .copied()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads() {
        for b in BUILTINS {
            let d = definition(b.name).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert_eq!(d.name(), b.name);
        }
    }

    /// Every file of every definition folder under `connectors/builtin/` is compiled in, unchanged — so a file
    /// added to a folder but not to its module's list fails here, not in production.
    #[test]
    fn every_builtin_compiles_in_exactly_its_folder() {
        use std::collections::BTreeMap;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../builtin");
        let mut folders: Vec<String> = std::fs::read_dir(&root)
            .expect("builtin folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let mut names = names();
        names.sort_unstable();
        assert_eq!(
            folders, names,
            "every folder under connectors/builtin/ is a built-in, and back"
        );
        for b in BUILTINS {
            let folder = root.join(b.name);
            let mut on_disk = BTreeMap::new();
            let mut dirs = vec![folder.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).expect("readable") {
                    let path = entry.expect("an entry").path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else {
                        let relative = path
                            .strip_prefix(&folder)
                            .expect("inside")
                            .to_string_lossy()
                            .replace('\\', "/");
                        on_disk.insert(relative, std::fs::read_to_string(&path).expect("text"));
                    }
                }
            }
            let compiled: BTreeMap<String, String> = b
                .files
                .iter()
                .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
                .collect();
            assert_eq!(
                compiled.keys().collect::<Vec<_>>(),
                on_disk.keys().collect::<Vec<_>>(),
                "src/builtin/ must list every file of builtin/{}/",
                b.name
            );
            assert_eq!(compiled, on_disk, "builtin/{}/", b.name);
        }
    }

    #[test]
    fn an_unknown_builtin_names_the_known_ones() {
        let err = definition("no-such").expect_err("must fail");
        assert!(err.to_string().contains("no-such"), "{err}");
    }
}
