//! Where the walker writes: Avro binary into a `Vec<u8>`, or plain JSON for `to_json`.
//!
//! One walker drives both through the [`Sink`] trait, monomorphised, so the binary path pays nothing for the
//! abstraction and the JSON path cannot drift from it: the tests decode the binary with apache-avro and compare
//! it with the JSON converted by `unsilo_schemas::json_to_avro`.
//!
//! Avro binary encoding (specification 1.11, "Binary Encoding"): `int` and `long` are zig-zag varints; `float`
//! and `double` little-endian IEEE 754; `string` and `bytes` a long length then the bytes; a record its fields in
//! order; an enum the symbol's index as an int; a union the branch index as a long then the value; arrays and maps
//! blocks of (count, items) closed by a zero count — we always write one block.

use serde_json::{Map, Value as Json};

use super::convert::Typed;
use super::plan::{ConstVal, ScalarTarget, ScalarType, UnionPos};

/// Receives one Avro value as a sequence of events.
pub(crate) trait Sink {
    fn null(&mut self);
    fn boolean(&mut self, v: bool);
    fn int(&mut self, v: i32);
    fn long(&mut self, v: i64);
    fn float(&mut self, v: f32);
    fn double(&mut self, v: f64);
    fn string(&mut self, v: &str);
    fn bytes(&mut self, v: &[u8]);
    fn enumeration(&mut self, index: u32, symbol: &str);
    fn union_begin(&mut self, pos: &UnionPos);
    fn union_end(&mut self, pos: &UnionPos);
    fn record_begin(&mut self);
    fn field(&mut self, name: &str);
    fn record_end(&mut self);
    fn array_begin(&mut self, len: usize);
    fn array_end(&mut self);
    fn map_begin(&mut self, len: usize);
    fn map_key(&mut self, key: &str);
    fn map_end(&mut self);
    fn constant(&mut self, c: &ConstVal);
}

pub(crate) use unsilo_schemas::avro::write_long;

/// Avro binary into a byte vector.
pub(crate) struct BinSink<'o> {
    pub(crate) out: &'o mut Vec<u8>,
}

impl Sink for BinSink<'_> {
    #[inline]
    fn null(&mut self) {}
    #[inline]
    fn boolean(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }
    #[inline]
    fn int(&mut self, v: i32) {
        write_long(self.out, i64::from(v));
    }
    #[inline]
    fn long(&mut self, v: i64) {
        write_long(self.out, v);
    }
    #[inline]
    fn float(&mut self, v: f32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn double(&mut self, v: f64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn string(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    #[inline]
    fn bytes(&mut self, v: &[u8]) {
        write_long(self.out, v.len() as i64);
        self.out.extend_from_slice(v);
    }
    #[inline]
    fn enumeration(&mut self, index: u32, _symbol: &str) {
        write_long(self.out, i64::from(index));
    }
    #[inline]
    fn union_begin(&mut self, pos: &UnionPos) {
        write_long(self.out, i64::from(pos.index));
    }
    #[inline]
    fn union_end(&mut self, _pos: &UnionPos) {}
    #[inline]
    fn record_begin(&mut self) {}
    #[inline]
    fn field(&mut self, _name: &str) {}
    #[inline]
    fn record_end(&mut self) {}
    #[inline]
    fn array_begin(&mut self, len: usize) {
        if len > 0 {
            write_long(self.out, len as i64);
        }
    }
    #[inline]
    fn array_end(&mut self) {
        self.out.push(0);
    }
    #[inline]
    fn map_begin(&mut self, len: usize) {
        self.array_begin(len);
    }
    #[inline]
    fn map_key(&mut self, key: &str) {
        self.string(key);
    }
    #[inline]
    fn map_end(&mut self) {
        self.out.push(0);
    }
    #[inline]
    fn constant(&mut self, c: &ConstVal) {
        self.out.extend_from_slice(&c.bytes);
    }
}

/// A container being filled by [`JsonSink`].
enum Frame {
    Object(Map<String, Json>, Option<String>),
    Array(Vec<Json>),
    Tagged(String, Option<Json>),
}

/// Plain JSON (the form `unsilo_schemas::json_to_avro` reads), for `to_json` and for constants.
#[derive(Default)]
pub(crate) struct JsonSink {
    stack: Vec<Frame>,
    result: Option<Json>,
}

impl JsonSink {
    /// The value written (null if nothing was).
    pub(crate) fn finish(mut self) -> Json {
        while !self.stack.is_empty() {
            self.close();
        }
        self.result.unwrap_or(Json::Null)
    }

    fn put(&mut self, v: Json) {
        match self.stack.last_mut() {
            Some(Frame::Object(map, key)) => {
                if let Some(k) = key.take() {
                    map.insert(k, v);
                }
            }
            Some(Frame::Array(items)) => items.push(v),
            Some(Frame::Tagged(_, slot)) => *slot = Some(v),
            None => self.result = Some(v),
        }
    }

    fn close(&mut self) {
        let value = match self.stack.pop() {
            Some(Frame::Object(map, _)) => Json::Object(map),
            Some(Frame::Array(items)) => Json::Array(items),
            Some(Frame::Tagged(tag, v)) => {
                let mut map = Map::new();
                map.insert(tag, v.unwrap_or(Json::Null));
                Json::Object(map)
            }
            None => return,
        };
        self.put(value);
    }
}

impl Sink for JsonSink {
    fn null(&mut self) {
        self.put(Json::Null);
    }
    fn boolean(&mut self, v: bool) {
        self.put(Json::Bool(v));
    }
    fn int(&mut self, v: i32) {
        self.put(Json::from(v));
    }
    fn long(&mut self, v: i64) {
        self.put(Json::from(v));
    }
    fn float(&mut self, v: f32) {
        self.put(Json::from(f64::from(v)));
    }
    fn double(&mut self, v: f64) {
        self.put(Json::from(v));
    }
    fn string(&mut self, v: &str) {
        self.put(Json::String(v.to_string()));
    }
    fn bytes(&mut self, v: &[u8]) {
        // Avro's JSON encoding of bytes: one character U+0000..U+00FF per byte.
        self.put(Json::String(v.iter().map(|&b| char::from(b)).collect()));
    }
    fn enumeration(&mut self, _index: u32, symbol: &str) {
        self.put(Json::String(symbol.to_string()));
    }
    fn union_begin(&mut self, pos: &UnionPos) {
        if let Some(tag) = &pos.tag {
            self.stack.push(Frame::Tagged(tag.to_string(), None));
        }
    }
    fn union_end(&mut self, pos: &UnionPos) {
        if pos.tag.is_some() {
            self.close();
        }
    }
    fn record_begin(&mut self) {
        self.stack.push(Frame::Object(Map::new(), None));
    }
    fn field(&mut self, name: &str) {
        if let Some(Frame::Object(_, key)) = self.stack.last_mut() {
            *key = Some(name.to_string());
        }
    }
    fn record_end(&mut self) {
        self.close();
    }
    fn array_begin(&mut self, len: usize) {
        self.stack.push(Frame::Array(Vec::with_capacity(len)));
    }
    fn array_end(&mut self) {
        self.close();
    }
    fn map_begin(&mut self, _len: usize) {
        self.stack.push(Frame::Object(Map::new(), None));
    }
    fn map_key(&mut self, key: &str) {
        self.field(key);
    }
    fn map_end(&mut self) {
        self.close();
    }
    fn constant(&mut self, c: &ConstVal) {
        self.put(c.json.clone());
    }
}

/// Writes a converted value at a scalar target (its union branch first).
#[inline]
pub(crate) fn write_typed<S: Sink>(sink: &mut S, target: &ScalarTarget, value: &Typed<'_>) {
    if let Some(u) = &target.union {
        sink.union_begin(u);
    }
    match value {
        Typed::Bool(b) => sink.boolean(*b),
        Typed::Int(i) => sink.int(*i),
        Typed::Long(l) => sink.long(*l),
        Typed::Float(f) => sink.float(*f),
        Typed::Double(d) => sink.double(*d),
        Typed::Str(s) => sink.string(s),
        Typed::Bytes(b) => sink.bytes(b),
        Typed::Enum(i) => {
            let symbol = match &target.ty {
                ScalarType::Enum(symbols) => symbols.get(*i as usize).map_or("", |s| &**s),
                _ => "",
            };
            sink.enumeration(*i, symbol);
        }
    }
    if let Some(u) = &target.union {
        sink.union_end(u);
    }
}

/// A constant for a scalar target: the value encoded both ways.
pub(crate) fn scalar_const(target: &ScalarTarget, value: &Typed<'_>) -> ConstVal {
    let mut bytes = Vec::new();
    write_typed(&mut BinSink { out: &mut bytes }, target, value);
    let mut json = JsonSink::default();
    write_typed(&mut json, target, value);
    ConstVal {
        bytes: bytes.into_boxed_slice(),
        json: json.finish(),
    }
}

/// The null constant of a nullable position.
pub(crate) fn null_const(union: &UnionPos) -> ConstVal {
    let mut bytes = Vec::new();
    write_long(&mut bytes, i64::from(union.index));
    ConstVal {
        bytes: bytes.into_boxed_slice(),
        json: Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints_match_the_specification() {
        for (v, want) in [
            (0i64, vec![0x00]),
            (-1, vec![0x01]),
            (1, vec![0x02]),
            (-2, vec![0x03]),
            (63, vec![0x7e]),
            (64, vec![0x80, 0x01]),
            (-64, vec![0x7f]),
            (-65, vec![0x81, 0x01]),
            (1_718_674_335_000, vec![0xb0, 0x94, 0xc9, 0x8f, 0x85, 0x64]),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
        let mut out = Vec::new();
        write_long(&mut out, i64::MIN);
        assert_eq!(out.len(), 10);
        write_long(&mut out, i64::MAX);
        assert_eq!(out.len(), 20);
    }

    #[test]
    fn json_sink_builds_nested_values_and_tagged_unions() {
        let mut s = JsonSink::default();
        s.record_begin();
        s.field("a");
        s.array_begin(2);
        s.int(1);
        s.string("x");
        s.array_end();
        s.field("u");
        let pos = UnionPos {
            index: 2,
            tag: Some("long".into()),
        };
        s.union_begin(&pos);
        s.long(5);
        s.union_end(&pos);
        s.record_end();
        assert_eq!(
            s.finish(),
            serde_json::json!({"a": [1, "x"], "u": {"long": 5}})
        );
    }
}
