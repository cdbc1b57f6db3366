//! Raw paths: where a value sits in the source system's JSON, and how they are looked up fast.
//!
//! Syntax (documented in `docs/mapping.md`):
//!
//! - `a.b.c` — keys of nested objects;
//! - `a[0].b`, `a[-1]` — array elements (negative counts from the end);
//! - `a["key.with.dots"]` — a key that contains `.`, `[` or `]`;
//! - `$.a.b` — from the raw record's root, even inside `each` or a record rule with its own `path`;
//! - `@` — the current value itself (the element inside `each`).
//!
//! # Scopes and slots
//!
//! Looking keys up one by one in a `serde_json::Map` hashes every key with SipHash, and a grid event reads
//! about ninety of them. Instead, the compiler gathers all paths read against the same object (the raw record,
//! one element of an array, the object a record rule's `path` names) into a [`ScopePlan`]: a trie of the keys
//! and indices they go through. Per record the walker [`resolve`]s each scope once — one pass over each object
//! in the trie, matching its keys against a small precomputed table — into a slice of slots, and a path is then
//! a single slot read ([`RawPath::get`]). Objects far larger than what the scope needs are looked up key by key
//! instead.

use std::fmt;

use serde_json::Value as Json;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    Key(Box<str>),
    Index(i64),
}

/// A path as written, split into steps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedPath {
    pub(crate) from_root: bool,
    pub(crate) segs: Vec<Seg>,
    pub(crate) text: Box<str>,
}

impl ParsedPath {
    /// Parses a path; the error explains the syntax problem.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("a raw path cannot be empty".into());
        }
        let mut from_root = false;
        if rest == "@" || rest == "$" {
            return Ok(Self {
                from_root: rest == "$",
                segs: Vec::new(),
                text: text.into(),
            });
        }
        if let Some(r) = rest.strip_prefix("$.") {
            from_root = true;
            rest = r;
        } else if rest.starts_with("$[") {
            from_root = true;
            rest = &rest[1..];
        }
        let mut segs = Vec::new();
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut expect_key = true;
        while i < bytes.len() {
            match bytes[i] {
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|p| p + i)
                        .ok_or_else(|| format!("raw path {text:?}: `[` without `]`"))?;
                    let inner = &rest[i + 1..close];
                    if inner.starts_with('"') {
                        // `["key"]`: the key may contain `]`, so search for the closing `"]`.
                        let end = rest[i + 2..]
                            .find("\"]")
                            .map(|p| p + i + 2)
                            .ok_or_else(|| format!("raw path {text:?}: `[\"` without `\"]`"))?;
                        let key = &rest[i + 2..end];
                        if key.is_empty() {
                            return Err(format!("raw path {text:?}: empty key"));
                        }
                        segs.push(Seg::Key(key.into()));
                        i = end + 2;
                    } else {
                        let index: i64 = inner.trim().parse().map_err(|_| {
                            format!("raw path {text:?}: `[{inner}]` is not an array index (write `[\"{inner}\"]` for a key)")
                        })?;
                        segs.push(Seg::Index(index));
                        i = close + 1;
                    }
                    expect_key = false;
                }
                b'.' => {
                    if expect_key {
                        return Err(format!("raw path {text:?}: empty key before `.`"));
                    }
                    i += 1;
                    expect_key = true;
                    if i == bytes.len() {
                        return Err(format!("raw path {text:?}: ends with `.`"));
                    }
                }
                b']' => return Err(format!("raw path {text:?}: `]` without `[`")),
                _ => {
                    if !expect_key {
                        return Err(format!(
                            "raw path {text:?}: expected `.` or `[` after `{}`",
                            &rest[..i]
                        ));
                    }
                    let end = rest[i..].find(['.', '[']).map_or(rest.len(), |p| p + i);
                    let key = &rest[i..end];
                    if key.contains(']') {
                        return Err(format!("raw path {text:?}: `]` without `[`"));
                    }
                    segs.push(Seg::Key(key.into()));
                    i = end;
                    expect_key = false;
                }
            }
        }
        Ok(Self {
            from_root,
            segs,
            text: text.into(),
        })
    }
}

/// The resolved slots of the scope being walked and of the raw record's root scope.
#[derive(Clone, Copy)]
pub(crate) struct Frame<'s, 'a> {
    pub(crate) root: &'s [Option<&'a Json>],
    pub(crate) cur: &'s [Option<&'a Json>],
}

impl<'a> Frame<'_, 'a> {
    /// The object the current scope was resolved against.
    pub(crate) fn current(&self) -> &'a Json {
        self.cur.first().copied().flatten().unwrap_or(&Json::Null)
    }
}

/// A compiled raw path: a slot of its scope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawPath {
    root: bool,
    slot: u32,
    text: Box<str>,
}

impl RawPath {
    /// The value at this path; `None` if any step is missing.
    #[inline]
    pub(crate) fn get<'a>(&self, frame: &Frame<'_, 'a>) -> Option<&'a Json> {
        let slots = if self.root { frame.root } else { frame.cur };
        slots.get(self.slot as usize).copied().flatten()
    }

    /// The path as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for RawPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One path, or several tried in order (`path = ["a", "b"]`: the first that is present and not null).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathSet {
    paths: Box<[RawPath]>,
}

impl PathSet {
    pub(crate) fn new(paths: Vec<RawPath>) -> Self {
        Self {
            paths: paths.into_boxed_slice(),
        }
    }

    /// The path, if there is exactly one.
    pub(crate) fn single(&self) -> Option<&RawPath> {
        match &*self.paths {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The first present, non-null value.
    #[inline]
    pub(crate) fn get<'a>(&self, frame: &Frame<'_, 'a>) -> Option<&'a Json> {
        self.paths
            .iter()
            .filter_map(|p| p.get(frame))
            .find(|v| !v.is_null())
    }
}

impl fmt::Display for PathSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.paths.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(p.as_str())?;
        }
        Ok(())
    }
}

/// A scope being compiled: the trie of steps its paths take.
#[derive(Debug)]
pub(crate) struct ScopeBuilder {
    /// Node 0 is the scope's object itself; `(parent, step)` for the others, parents before children.
    nodes: Vec<(u32, Option<Seg>)>,
}

impl Default for ScopeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ScopeBuilder {
    pub(crate) fn new() -> Self {
        Self {
            nodes: vec![(0, None)],
        }
    }

    /// The slot of a path's steps, adding trie nodes as needed.
    pub(crate) fn slot(&mut self, segs: &[Seg]) -> u32 {
        let mut node = 0u32;
        for seg in segs {
            let existing = self
                .nodes
                .iter()
                .position(|(parent, s)| *parent == node && s.as_ref() == Some(seg))
                .filter(|&i| i > 0);
            node = match existing {
                Some(i) => i as u32,
                None => {
                    self.nodes.push((node, Some(seg.clone())));
                    (self.nodes.len() - 1) as u32
                }
            };
        }
        node
    }

    /// A compiled path in this scope.
    pub(crate) fn path(&mut self, parsed: &ParsedPath, root: bool) -> RawPath {
        RawPath {
            root,
            slot: self.slot(&parsed.segs),
            text: parsed.text.clone(),
        }
    }

    pub(crate) fn build(self) -> ScopePlan {
        let n = self.nodes.len();
        let mut keys: Vec<Vec<(Box<str>, u32)>> = vec![Vec::new(); n];
        let mut indices: Vec<Vec<(i64, u32)>> = vec![Vec::new(); n];
        for (i, (parent, seg)) in self.nodes.into_iter().enumerate() {
            match seg {
                Some(Seg::Key(k)) => keys[parent as usize].push((k, i as u32)),
                Some(Seg::Index(x)) => indices[parent as usize].push((x, i as u32)),
                None => {}
            }
        }
        let nodes = keys
            .into_iter()
            .zip(indices)
            .map(|(keys, indices)| ScopeNode {
                table: KeyTable::new(&keys),
                keys: keys.into_boxed_slice(),
                indices: indices.into_boxed_slice(),
            })
            .collect();
        ScopePlan { nodes }
    }
}

/// A compiled scope: for each trie node, the keys and indices of its children.
#[derive(Debug)]
pub(crate) struct ScopePlan {
    nodes: Box<[ScopeNode]>,
}

#[derive(Debug)]
struct ScopeNode {
    keys: Box<[(Box<str>, u32)]>,
    indices: Box<[(i64, u32)]>,
    table: KeyTable,
}

impl ScopePlan {
    /// Number of slots the scope needs.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

/// An open-addressing table from key to child slot, with a cheap hash of the key's bytes.
#[derive(Debug)]
struct KeyTable {
    shift: u32,
    /// Index into the node's keys, `u32::MAX` for an empty bucket.
    buckets: Box<[u32]>,
    /// Per key: its hash and, for keys of up to 16 bytes, the key packed into an integer.
    meta: Box<[(u64, Option<u128>)]>,
}

#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
}

/// A key of up to 16 bytes as an integer, for comparing short keys without a call to `memcmp`. Together
/// with the length it determines the key: overlapping loads cover every byte (the wyhash technique), and
/// fixed-size loads avoid the store-forwarding stall a zero-padded copy would cause.
#[inline]
pub(crate) fn pack16(b: &[u8]) -> Option<u128> {
    let n = b.len();
    let (lo, hi) = match n {
        0 => (0, 0),
        1..=3 => (
            u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16,
            0,
        ),
        4..=7 => (u32_at(b, 0) | u32_at(b, n - 4) << 32, 0),
        8..=16 => (u64_at(b, 0), u64_at(b, n - 8)),
        _ => return None,
    };
    Some(u128::from(lo) | u128::from(hi) << 64)
}

#[inline]
fn key_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let n = key.len();
    let mut h = (n as u64).wrapping_mul(K);
    let mut mix = |w: u64| h = (h ^ w).wrapping_mul(K).rotate_left(29);
    match pack16(key) {
        Some(p) => {
            mix(p as u64);
            mix((p >> 64) as u64);
        }
        None => {
            let mut at = 0;
            while at + 8 <= n {
                mix(u64_at(key, at));
                at += 8;
            }
            mix(u64_at(key, n - 8));
        }
    }
    // The bucket index takes the top bits, which a multiplication mixes best.
    (h ^ (h >> 32)).wrapping_mul(K)
}

impl KeyTable {
    fn new(keys: &[(Box<str>, u32)]) -> Self {
        let size = (keys.len() * 2).next_power_of_two().max(2);
        let shift = 64 - size.trailing_zeros();
        let mask = size - 1;
        let mut buckets = vec![u32::MAX; size];
        let mut meta = Vec::with_capacity(keys.len());
        for (i, (k, _)) in keys.iter().enumerate() {
            let h = key_hash(k.as_bytes());
            meta.push((h, pack16(k.as_bytes())));
            let mut b = (h >> shift) as usize;
            while buckets[b] != u32::MAX {
                b = (b + 1) & mask;
            }
            buckets[b] = i as u32;
        }
        Self {
            shift,
            buckets: buckets.into_boxed_slice(),
            meta: meta.into_boxed_slice(),
        }
    }

    #[inline]
    fn find(&self, keys: &[(Box<str>, u32)], key: &str) -> Option<u32> {
        let bytes = key.as_bytes();
        let h = key_hash(bytes);
        let packed = pack16(bytes);
        let mask = self.buckets.len() - 1;
        let mut b = (h >> self.shift) as usize;
        loop {
            let i = self.buckets[b];
            if i == u32::MAX {
                return None;
            }
            let (kh, kp) = self.meta[i as usize];
            if kh == h {
                let (k, slot) = &keys[i as usize];
                let equal = match (kp, packed) {
                    (Some(a), Some(b)) => a == b && k.len() == bytes.len(),
                    _ => &**k == key,
                };
                if equal {
                    return Some(*slot);
                }
            }
            b = (b + 1) & mask;
        }
    }
}

/// Fills `slots` (one per node of `scope`) with the values the scope's paths lead to from `value`.
pub(crate) fn resolve<'a>(scope: &ScopePlan, value: &'a Json, slots: &mut [Option<&'a Json>]) {
    if let Some(first) = slots.first_mut() {
        *first = Some(value);
    }
    for (i, node) in scope.nodes.iter().enumerate() {
        if node.keys.is_empty() && node.indices.is_empty() {
            continue;
        }
        let here = slots.get(i).copied().flatten();
        // Every child slot is written on every resolve: the buffer is reused for each array element.
        for &(_, slot) in node.keys.iter() {
            slots[slot as usize] = None;
        }
        for &(_, slot) in node.indices.iter() {
            slots[slot as usize] = None;
        }
        match here {
            Some(Json::Object(map)) if !node.keys.is_empty() => {
                if map.len() <= node.keys.len() * 4 + 8 {
                    for (k, v) in map {
                        if let Some(slot) = node.table.find(&node.keys, k) {
                            slots[slot as usize] = Some(v);
                        }
                    }
                } else {
                    for (k, slot) in node.keys.iter() {
                        slots[*slot as usize] = map.get(&**k);
                    }
                }
            }
            Some(Json::Array(items)) => {
                for &(index, slot) in node.indices.iter() {
                    let at = if index < 0 {
                        items.len().checked_sub(index.unsigned_abs() as usize)
                    } else {
                        Some(index as usize)
                    };
                    slots[slot as usize] = at.and_then(|a| items.get(a));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Compiles `paths` into one scope, resolves it against `doc` and reads each path.
    fn get_all(paths: &[&str], doc: &Json, cur: &Json) -> Vec<Option<Json>> {
        let mut root_scope = ScopeBuilder::new();
        let mut scope = ScopeBuilder::new();
        let compiled: Vec<RawPath> = paths
            .iter()
            .map(|p| {
                let parsed = ParsedPath::parse(p).unwrap();
                if parsed.from_root {
                    root_scope.path(&parsed, true)
                } else {
                    scope.path(&parsed, false)
                }
            })
            .collect();
        let (root_plan, plan) = (root_scope.build(), scope.build());
        let mut root_slots = vec![Some(&Json::Bool(false)); root_plan.len()];
        let mut slots = vec![Some(&Json::Bool(false)); plan.len()];
        resolve(&root_plan, doc, &mut root_slots);
        resolve(&plan, cur, &mut slots);
        let frame = Frame {
            root: &root_slots,
            cur: &slots,
        };
        compiled.iter().map(|p| p.get(&frame).cloned()).collect()
    }

    #[test]
    fn walks_objects_arrays_and_quoted_keys() {
        let doc = json!({"a": {"b": [{"c": 1}, {"c": 2}]}, "x.y": {"z": "q"}, "arr": [1, 2, 3]});
        let got = get_all(
            &[
                "a.b[1].c",
                "a.b[-1].c",
                "arr[-3]",
                "arr[-4]",
                "arr[3]",
                "[\"x.y\"].z",
                "$[\"x.y\"].z",
                "a.nope",
                "a.b.c",
                "@",
                "arr.x",
                "a[0]",
            ],
            &doc,
            &doc,
        );
        assert_eq!(
            got,
            [
                Some(json!(2)),
                Some(json!(2)),
                Some(json!(1)),
                None,
                None,
                Some(json!("q")),
                Some(json!("q")),
                None,
                None,
                Some(doc.clone()),
                None,
                None,
            ]
        );
    }

    #[test]
    fn root_paths_ignore_the_current_value() {
        let doc = json!({"id": 7, "items": [{"id": 1}]});
        let got = get_all(&["$.id", "id", "$"], &doc, &doc["items"][0]);
        assert_eq!(got, [Some(json!(7)), Some(json!(1)), Some(doc.clone())]);
    }

    #[test]
    fn large_objects_are_looked_up_key_by_key_with_the_same_result() {
        let mut big = serde_json::Map::new();
        for i in 0..200 {
            big.insert(format!("k{i}"), json!(i));
        }
        let doc = Json::Object(big);
        assert_eq!(
            get_all(&["k7", "k199", "k200"], &doc, &doc),
            [Some(json!(7)), Some(json!(199)), None]
        );
    }

    #[test]
    fn stale_slots_are_cleared_when_a_scope_is_resolved_again() {
        let mut b = ScopeBuilder::new();
        let p = b.path(&ParsedPath::parse("a.b").unwrap(), false);
        let plan = b.build();
        let (first, second) = (json!({"a": {"b": 1}}), json!({"a": 5}));
        let mut slots = vec![None; plan.len()];
        resolve(&plan, &first, &mut slots);
        let frame = Frame {
            root: &[],
            cur: &slots,
        };
        assert_eq!(p.get(&frame), Some(&json!(1)));
        resolve(&plan, &second, &mut slots);
        let frame = Frame {
            root: &[],
            cur: &slots,
        };
        assert_eq!(p.get(&frame), None);
    }

    #[test]
    fn packed_keys_are_distinct_for_distinct_keys_of_one_length() {
        let keys = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "abcd",
            "abce",
            "abcdefg",
            "abcdefh",
            "abcdefgh",
            "abcdefghijklmnop",
            "abcdefghijklmnoq",
            "bbcdefghijklmnop",
            "一二三四五",
        ];
        for a in keys {
            for b in keys {
                if a.len() == b.len() {
                    assert_eq!(
                        pack16(a.as_bytes()) == pack16(b.as_bytes()),
                        a == b,
                        "{a:?} {b:?}"
                    );
                }
            }
        }
        assert_eq!(pack16(&[0u8; 17]), None);
    }

    #[test]
    fn key_table_finds_every_key_and_nothing_else() {
        let keys: Vec<(Box<str>, u32)> = (0..50)
            .map(|i| (format!("字段{i}_with_a_longer_name").into_boxed_str(), i))
            .collect();
        let table = KeyTable::new(&keys);
        for (k, slot) in &keys {
            assert_eq!(table.find(&keys, k), Some(*slot));
        }
        assert_eq!(table.find(&keys, "字段50_with_a_longer_name"), None);
        assert_eq!(table.find(&keys, ""), None);
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in [
            "", "a..b", "a.", ".a", "a[x]", "a[1", "a]", "a[0]b", "[\"\"]", "a[\"b]",
        ] {
            assert!(ParsedPath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn path_sets_take_the_first_present_value() {
        let doc = json!({"a": null, "b": "x"});
        let mut scope = ScopeBuilder::new();
        let set = PathSet::new(
            ["a", "nope", "b"]
                .iter()
                .map(|p| scope.path(&ParsedPath::parse(p).unwrap(), false))
                .collect(),
        );
        let plan = scope.build();
        let mut slots = vec![None; plan.len()];
        resolve(&plan, &doc, &mut slots);
        let frame = Frame {
            root: &[],
            cur: &slots,
        };
        assert_eq!(set.get(&frame), Some(&json!("x")));
        assert_eq!(set.to_string(), "a | nope | b");
    }
}
