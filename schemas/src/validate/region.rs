//! Administrative divisions of Shaanxi (陕西省) and the region and grid codes built on them.
//!
//! # Codes
//!
//! Region codes are the National Bureau of Statistics' 12-digit statistical division codes (统计用区划代码):
//! `PP CC DD TTT VVV` = province, city, county (GB/T 2260), town/street, village/community committee. The embedded
//! tables (`schemas/data/regions/`, province 61 only) name every division down to the village.
//!
//! [`validate_region_code`] accepts a 12-digit code that names a known division at **any** level, with the lower
//! levels zero-padded: `610921100001` (南街社区, a community), `610921100000` (城关镇, a town), `610921000000`
//! (汉阴县, a county), `610900000000` (安康市) and `610000000000` (陕西省). A record that only knows its county (a
//! hotline call without an address, a county-level department export) can thus still carry a valid code, and
//! [`Region::level`] tells how precise it is. Codes outside Shaanxi are rejected: the tables only cover the province
//! the hub serves.
//!
//! # Grid codes
//!
//! A grid code is exactly **15 digits**: the 12-digit code of a known village or community (level
//! [`RegionLevel::Village`]) followed by a 3-digit grid serial `001`..=`999` (`000` is not a grid). One village has
//! at most a few dozen base grids (汉阴县: 4,876 grids in 156 villages and communities), so three digits suffice.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use serde::Deserialize;
use thiserror::Error;

const CITIES_CSV: &str = include_str!("../../data/regions/shaanxi-cities.csv");
const AREAS_CSV: &str = include_str!("../../data/regions/shaanxi-areas.csv");
const STREETS_CSV: &str = include_str!("../../data/regions/shaanxi-streets.csv");
const VILLAGES_CSV: &str = include_str!("../../data/regions/shaanxi-villages.csv");

static SHAANXI: LazyLock<RegionTable> = LazyLock::new(|| {
    let csv = RegionCsv {
        province_code: "61",
        province_name: "陕西省",
        cities: CITIES_CSV,
        counties: AREAS_CSV,
        towns: STREETS_CSV,
        villages: VILLAGES_CSV,
    };
    // The CSVs are compiled in and a unit test loads them, so this cannot fail in a built crate.
    RegionTable::from_csv(&csv)
        .unwrap_or_else(|e| panic!("embedded Shaanxi region tables are invalid: {e}"))
});

/// Level of an administrative division.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RegionLevel {
    /// 省 (2 significant digits).
    Province,
    /// 市 (4 significant digits).
    City,
    /// 县/区 (6 significant digits).
    County,
    /// 乡/镇/街道 (9 significant digits).
    Town,
    /// 村/社区 (all 12 digits).
    Village,
}

impl RegionLevel {
    /// Number of significant leading digits of a code at this level.
    pub fn significant_digits(self) -> usize {
        match self {
            Self::Province => 2,
            Self::City => 4,
            Self::County => 6,
            Self::Town => 9,
            Self::Village => 12,
        }
    }

    fn from_significant_digits(len: usize) -> Option<Self> {
        [
            Self::Province,
            Self::City,
            Self::County,
            Self::Town,
            Self::Village,
        ]
        .into_iter()
        .find(|level| level.significant_digits() == len)
    }
}

impl fmt::Display for RegionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Province => "province",
            Self::City => "city",
            Self::County => "county",
            Self::Town => "town",
            Self::Village => "village",
        })
    }
}

/// One administrative division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    code: String,
    name: String,
    level: RegionLevel,
    parent: Option<String>,
}

impl Region {
    /// The 12-digit code, zero-padded below the division's level (e.g. `610921000000` for 汉阴县).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The significant digits only (e.g. `610921` for 汉阴县), as GB/T 2260 and the source tables write them.
    pub fn short_code(&self) -> &str {
        &self.code[..self.level.significant_digits()]
    }

    /// The official name, e.g. `汉阴县` or `南街社区居委会`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The level.
    pub fn level(&self) -> RegionLevel {
        self.level
    }

    /// 12-digit code of the enclosing division (`None` for the province).
    pub fn parent_code(&self) -> Option<&str> {
        self.parent.as_deref()
    }
}

/// The CSV texts a [`RegionTable`] is built from (columns as in `schemas/data/regions/README.md`).
#[derive(Debug, Clone, Copy)]
pub struct RegionCsv<'a> {
    /// Two-digit province code, e.g. `61`.
    pub province_code: &'a str,
    /// Province name, e.g. `陕西省`.
    pub province_name: &'a str,
    /// `code,name,provinceCode` (4-digit codes).
    pub cities: &'a str,
    /// `code,name,cityCode,provinceCode` (6-digit codes).
    pub counties: &'a str,
    /// `code,name,areaCode,provinceCode,cityCode` (9-digit codes).
    pub towns: &'a str,
    /// `code,name,streetCode,provinceCode,cityCode,areaCode` (12-digit codes).
    pub villages: &'a str,
}

/// A region table that could not be built.
#[derive(Debug, Error)]
pub enum RegionDataError {
    /// A row could not be read.
    #[error("{table} table, record {record}: {source}")]
    Csv {
        /// Which table.
        table: &'static str,
        /// 1-based data record number.
        record: usize,
        /// The parse error.
        source: csv::Error,
    },
    /// A row is inconsistent with the rest of the table.
    #[error("{table} table, code {code}: {reason}")]
    Inconsistent {
        /// Which table.
        table: &'static str,
        /// The row's code.
        code: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a text is not a known 12-digit region code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegionError {
    /// Not exactly 12 characters.
    #[error("region code must have 12 digits, got {len} characters")]
    Length {
        /// Number of characters found.
        len: usize,
    },
    /// Contains a character other than an ASCII digit.
    #[error("region code {code:?} must contain only digits")]
    NotDigits {
        /// The code.
        code: String,
    },
    /// Well-formed but names no known division.
    #[error("region code {code} names no known division{}", nearest_hint(.nearest_known))]
    Unknown {
        /// The code.
        code: String,
        /// The closest known enclosing division, as `code name`.
        nearest_known: Option<String>,
    },
}

fn nearest_hint(nearest: &Option<String>) -> String {
    match nearest {
        Some(n) => format!(" (nearest known division: {n})"),
        None => " in Shaanxi (province 61)".to_string(),
    }
}

/// Why a text is not a valid grid code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GridCodeError {
    /// Not exactly 15 characters.
    #[error("grid code must have 15 digits (12-digit village code + 3-digit serial), got {len} characters")]
    Length {
        /// Number of characters found.
        len: usize,
    },
    /// Contains a character other than an ASCII digit.
    #[error("grid code {code:?} must contain only digits")]
    NotDigits {
        /// The code.
        code: String,
    },
    /// The first 12 digits are not a known region code.
    #[error("grid code {code}: {source}")]
    UnknownVillage {
        /// The grid code.
        code: String,
        /// Why the village part is not known.
        source: RegionError,
    },
    /// The first 12 digits name a division above village level.
    #[error("grid code {code}: {village_code} is a {level} ({name}), not a village or community")]
    NotAVillage {
        /// The grid code.
        code: String,
        /// The first 12 digits.
        village_code: String,
        /// Level of the division they name.
        level: RegionLevel,
        /// Name of that division.
        name: String,
    },
    /// Serial `000`.
    #[error("grid code {code}: grid serial 000 is not allowed (serials run 001-999)")]
    ZeroSerial {
        /// The grid code.
        code: String,
    },
}

/// A valid grid code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCode<'t> {
    code: String,
    village: &'t Region,
    serial: u16,
}

impl<'t> GridCode<'t> {
    /// The 15-digit code.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// The village or community the grid belongs to.
    pub fn village(&self) -> &'t Region {
        self.village
    }

    /// The grid serial within the village, 1..=999.
    pub fn serial(&self) -> u16 {
        self.serial
    }
}

/// Divisions of one province, indexed by code, with parent/child links.
#[derive(Debug)]
pub struct RegionTable {
    regions: Vec<Region>,
    /// Position in `regions` by the 12-digit code read as a number (see [`numeric_code`]).
    index: HashMap<u64, usize, BuildHasherDefault<CodeHasher>>,
    children: HashMap<String, Vec<usize>>,
}

/// A hasher for numeric codes: one multiply, with the high bits folded down (the table's bucket index uses the
/// low bits, and codes of one level differ only in their high digits).
#[derive(Debug, Default)]
struct CodeHasher(u64);

impl Hasher for CodeHasher {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// The code right-padded with zeros to 12 digits, read as a number; `None` unless it is at most 12 ASCII
/// digits. Two texts of up to 12 digits get the same number exactly when their padded forms are equal.
fn numeric_code(code: &str) -> Option<u64> {
    let b = code.as_bytes();
    if b.len() > 12 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = b
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some(value * 10u64.pow(12 - b.len() as u32))
}

#[derive(Deserialize)]
struct Row {
    code: String,
    name: String,
}

fn pad12(short: &str) -> String {
    format!("{short:0<12}")
}

impl RegionTable {
    /// The embedded table of Shaanxi (province 61), parsed on first use.
    pub fn shaanxi() -> &'static RegionTable {
        &SHAANXI
    }

    /// Builds a table from CSV texts; each row's parent is derived from its code and must already be known.
    pub fn from_csv(csv: &RegionCsv<'_>) -> Result<Self, RegionDataError> {
        let mut table = Self {
            regions: Vec::new(),
            index: HashMap::default(),
            children: HashMap::new(),
        };
        table.insert("province", csv.province_code, csv.province_name.to_string())?;
        for (name, text) in [
            ("city", csv.cities),
            ("county", csv.counties),
            ("town", csv.towns),
            ("village", csv.villages),
        ] {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            for (i, row) in reader.deserialize::<Row>().enumerate() {
                let row = row.map_err(|source| RegionDataError::Csv {
                    table: name,
                    record: i + 1,
                    source,
                })?;
                table.insert(name, &row.code, row.name)?;
            }
        }
        for kids in table.children.values_mut() {
            kids.sort_by(|&a, &b| table.regions[a].code.cmp(&table.regions[b].code));
        }
        Ok(table)
    }

    fn insert(
        &mut self,
        table: &'static str,
        short: &str,
        name: String,
    ) -> Result<(), RegionDataError> {
        let inconsistent = |reason: String| RegionDataError::Inconsistent {
            table,
            code: short.to_string(),
            reason,
        };
        let level = RegionLevel::from_significant_digits(short.len())
            .filter(|_| short.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| inconsistent("code must have 2, 4, 6, 9 or 12 digits".into()))?;
        let code = pad12(short);
        let parent = match level {
            RegionLevel::Province => None,
            RegionLevel::City => Some(pad12(&short[..2])),
            RegionLevel::County => Some(pad12(&short[..4])),
            RegionLevel::Town => Some(pad12(&short[..6])),
            RegionLevel::Village => Some(pad12(&short[..9])),
        };
        if let Some(parent) = &parent {
            if self.get(parent).is_none() {
                return Err(inconsistent(format!("parent {parent} is not in the table")));
            }
        }
        // `code` is 12 ASCII digits (checked above), so it always has a numeric form.
        let key = numeric_code(&code)
            .ok_or_else(|| inconsistent("code must have 2, 4, 6, 9 or 12 digits".into()))?;
        if self.index.contains_key(&key) {
            return Err(inconsistent("duplicate code".into()));
        }
        let position = self.regions.len();
        if let Some(parent) = &parent {
            self.children
                .entry(parent.clone())
                .or_default()
                .push(position);
        }
        self.index.insert(key, position);
        self.regions.push(Region {
            code,
            name,
            level,
            parent,
        });
        Ok(())
    }

    /// Number of divisions in the table (all levels).
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The division with this code: 12 digits zero-padded, or just its significant digits (`610921`).
    pub fn get(&self, code: &str) -> Option<&Region> {
        let key = numeric_code(code)?;
        self.index.get(&key).and_then(|&i| self.regions.get(i))
    }

    /// Name of the division with this code.
    pub fn name(&self, code: &str) -> Option<&str> {
        self.get(code).map(Region::name)
    }

    /// The chain from the province down to the division itself (empty if the code is unknown).
    pub fn chain(&self, code: &str) -> Vec<&Region> {
        let mut chain = Vec::new();
        let mut current = self.get(code);
        while let Some(region) = current {
            chain.push(region);
            current = region.parent_code().and_then(|p| self.get(p));
        }
        chain.reverse();
        chain
    }

    /// Direct subdivisions of a division, in code order.
    pub fn children(&self, code: &str) -> impl Iterator<Item = &Region> + '_ {
        let key = self.get(code).map(|r| r.code.clone()).unwrap_or_default();
        self.children
            .get(&key)
            .into_iter()
            .flatten()
            .map(|&i| &self.regions[i])
    }

    /// All divisions of one level, in code order.
    pub fn at_level(&self, level: RegionLevel) -> impl Iterator<Item = &Region> + '_ {
        self.regions.iter().filter(move |r| r.level == level)
    }

    /// Villages and communities of a county (`610921` or `610921000000`), in code order.
    pub fn villages_of_county(&self, county: &str) -> impl Iterator<Item = &Region> + '_ {
        self.children(county)
            .filter(|t| t.level == RegionLevel::Town)
            .flat_map(|t| self.children(&t.code))
    }

    /// Validates a 12-digit region code (any level, zero-padded; see the module docs).
    pub fn validate(&self, code: &str) -> Result<&Region, RegionError> {
        let len = code.chars().count();
        if len != 12 {
            return Err(RegionError::Length { len });
        }
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::NotDigits {
                code: code.to_string(),
            });
        }
        if let Some(region) = self.get(code) {
            return Ok(region);
        }
        let nearest_known = [9, 6, 4, 2]
            .into_iter()
            .find_map(|n| self.get(&code[..n]))
            .map(|r| format!("{} {}", r.code, r.name));
        Err(RegionError::Unknown {
            code: code.to_string(),
            nearest_known,
        })
    }

    /// Whether `code` is a valid 15-digit grid code: exactly when [`validate_grid_code`](Self::validate_grid_code)
    /// accepts it, without allocating.
    pub fn is_valid_grid_code(&self, code: &str) -> bool {
        let b = code.as_bytes();
        if b.len() != 15 || !b.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let (village_code, serial) = code.split_at(12);
        self.get(village_code)
            .is_some_and(|v| v.level == RegionLevel::Village)
            && serial != "000"
    }

    /// Validates a 15-digit grid code (see the module docs).
    pub fn validate_grid_code(&self, code: &str) -> Result<GridCode<'_>, GridCodeError> {
        let len = code.chars().count();
        if len != 15 {
            return Err(GridCodeError::Length { len });
        }
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GridCodeError::NotDigits {
                code: code.to_string(),
            });
        }
        let (village_code, serial) = code.split_at(12);
        let village =
            self.validate(village_code)
                .map_err(|source| GridCodeError::UnknownVillage {
                    code: code.to_string(),
                    source,
                })?;
        if village.level != RegionLevel::Village {
            return Err(GridCodeError::NotAVillage {
                code: code.to_string(),
                village_code: village_code.to_string(),
                level: village.level,
                name: village.name.clone(),
            });
        }
        // Three ASCII digits always parse into a u16.
        let serial: u16 = serial.parse().unwrap_or(0);
        if serial == 0 {
            return Err(GridCodeError::ZeroSerial {
                code: code.to_string(),
            });
        }
        Ok(GridCode {
            code: code.to_string(),
            village,
            serial,
        })
    }
}

/// Whether `code` is a valid 15-digit grid code of the Shaanxi table: exactly when [`validate_grid_code`]
/// accepts it, but without allocating. Callers that need the parsed value or the error call [`validate_grid_code`].
pub fn is_valid_grid_code(code: &str) -> bool {
    RegionTable::shaanxi().is_valid_grid_code(code)
}

/// Validates a 12-digit region code against the Shaanxi table (see the module docs for the accepted levels).
pub fn validate_region_code(code: &str) -> Result<&'static Region, RegionError> {
    RegionTable::shaanxi().validate(code)
}

/// Validates a 15-digit grid code against the Shaanxi table.
pub fn validate_grid_code(code: &str) -> Result<GridCode<'static>, GridCodeError> {
    RegionTable::shaanxi().validate_grid_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_tables_load_completely() {
        let t = RegionTable::shaanxi();
        // 1 province + 10 cities + 107 counties + 1335 towns + 20356 villages (CSV rows minus headers).
        assert_eq!(t.len(), 1 + 10 + 107 + 1335 + 20356);
        assert_eq!(t.at_level(RegionLevel::City).count(), 10);
        assert_eq!(t.at_level(RegionLevel::Village).count(), 20356);
    }

    #[test]
    fn names_and_chains() {
        let t = RegionTable::shaanxi();
        assert_eq!(t.name("610921"), Some("汉阴县"));
        assert_eq!(t.name("610114000000"), Some("阎良区"));
        let chain: Vec<&str> = t.chain("610921104206").iter().map(|r| r.name()).collect();
        assert_eq!(
            chain,
            ["陕西省", "安康市", "汉阴县", "双乳镇", "江河村委会"]
        );
        assert_eq!(t.get("610921104206").unwrap().short_code(), "610921104206");
        assert_eq!(t.get("610921").unwrap().short_code(), "610921");
        assert!(t.chain("619999000000").is_empty());
    }

    #[test]
    fn villages_of_a_county() {
        let t = RegionTable::shaanxi();
        let villages: Vec<&Region> = t.villages_of_county("610921").collect();
        assert!(villages
            .iter()
            .all(|v| v.level() == RegionLevel::Village && v.code().starts_with("610921")));
        assert_eq!(villages.first().map(|v| v.name()), Some("南街社区居委会"));
        let expected = t
            .at_level(RegionLevel::Village)
            .filter(|v| v.code().starts_with("610921"))
            .count();
        assert_eq!(villages.len(), expected);
        assert!(
            villages.len() > 100,
            "汉阴县 has well over 100 villages and communities"
        );
        assert_eq!(t.villages_of_county("610921000000").count(), expected);
    }

    #[test]
    fn region_codes_at_every_level() {
        assert_eq!(
            validate_region_code("610921100001").unwrap().level(),
            RegionLevel::Village
        );
        assert_eq!(
            validate_region_code("610921100000").unwrap().name(),
            "城关镇"
        );
        assert_eq!(
            validate_region_code("610921000000").unwrap().name(),
            "汉阴县"
        );
        assert_eq!(
            validate_region_code("610900000000").unwrap().name(),
            "安康市"
        );
        assert_eq!(
            validate_region_code("610000000000").unwrap().name(),
            "陕西省"
        );
    }

    #[test]
    fn bad_region_codes() {
        assert_eq!(
            validate_region_code("610921"),
            Err(RegionError::Length { len: 6 })
        );
        assert_eq!(
            validate_region_code("61092110000a"),
            Err(RegionError::NotDigits {
                code: "61092110000a".into()
            })
        );
        let err = validate_region_code("610921100999").unwrap_err();
        assert_eq!(
            err.to_string(),
            "region code 610921100999 names no known division (nearest known division: 610921100000 城关镇)"
        );
        let err = validate_region_code("110105001001").unwrap_err();
        assert_eq!(
            err.to_string(),
            "region code 110105001001 names no known division in Shaanxi (province 61)"
        );
    }

    #[test]
    fn grid_codes() {
        let grid = validate_grid_code("610921100001003").unwrap();
        assert_eq!(grid.village().name(), "南街社区居委会");
        assert_eq!(grid.serial(), 3);
        assert_eq!(
            validate_grid_code("6109211000010030"),
            Err(GridCodeError::Length { len: 16 })
        );
        assert!(matches!(
            validate_grid_code("610921100001000"),
            Err(GridCodeError::ZeroSerial { .. })
        ));
        let err = validate_grid_code("610921100000003").unwrap_err();
        assert_eq!(
            err.to_string(),
            "grid code 610921100000003: 610921100000 is a town (城关镇), not a village or community"
        );
        assert!(matches!(
            validate_grid_code("610921100999003"),
            Err(GridCodeError::UnknownVillage { .. })
        ));
    }

    #[test]
    fn inconsistent_tables_are_rejected() {
        let csv = RegionCsv {
            province_code: "61",
            province_name: "陕西省",
            cities: "code,name,provinceCode\n6101,西安市,61\n",
            counties: "code,name,cityCode,provinceCode\n610201,王益区,6102,61\n",
            towns: "code,name,areaCode,provinceCode,cityCode\n",
            villages: "code,name,streetCode,provinceCode,cityCode,areaCode\n",
        };
        let err = RegionTable::from_csv(&csv).unwrap_err();
        assert_eq!(
            err.to_string(),
            "county table, code 610201: parent 610200000000 is not in the table"
        );
    }

    /// The lookup before codes were indexed by number: zero-pad to 12 characters, then compare text.
    fn get_by_text<'t>(by_text: &HashMap<&str, &'t Region>, code: &str) -> Option<&'t Region> {
        let key = if code.len() < 12 {
            pad12(code)
        } else {
            code.to_string()
        };
        by_text.get(key.as_str()).copied()
    }

    #[test]
    fn numeric_index_agrees_with_text_lookup_and_fast_grid_check() {
        let t = RegionTable::shaanxi();
        let by_text: HashMap<&str, &Region> = t.regions.iter().map(|r| (r.code(), r)).collect();
        let mut state = 0x1234_5678_9abc_def1_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut hits, mut grids) = (0, 0);
        for _ in 0..300_000 {
            let n = next();
            let base = &t.regions[(n % t.regions.len() as u64) as usize];
            let mut code = match (n >> 32) % 4 {
                0 => base.code().to_string(),
                1 => base.short_code().to_string(),
                2 => format!("{}{:03}", base.code(), (n >> 40) % 12),
                _ => format!("{:012}", (n >> 8) % 1_000_000_000_000),
            };
            match (n >> 36) % 10 {
                0 => code.truncate(((n >> 44) % 16) as usize),
                1 => code.push(['0', '1', 'a', '一', ' '][((n >> 44) % 5) as usize]),
                2 if !code.is_empty() => {
                    let pos = ((n >> 44) % code.len() as u64) as usize;
                    code.replace_range(
                        pos..pos + 1,
                        ["9", "0", "x", "é"][((n >> 50) % 4) as usize],
                    );
                }
                _ => {}
            }
            let want = get_by_text(&by_text, &code);
            assert_eq!(t.get(&code), want, "{code:?}");
            hits += usize::from(want.is_some());
            assert_eq!(
                t.validate(&code).ok(),
                want.filter(|_| code.chars().count() == 12),
                "{code:?}"
            );
            let grid_ok = validate_grid_code(&code).is_ok();
            grids += usize::from(grid_ok);
            assert_eq!(is_valid_grid_code(&code), grid_ok, "{code:?}");
        }
        assert!(
            hits > 100_000 && grids > 20_000,
            "{hits} hits, {grids} grids"
        );
    }
}
