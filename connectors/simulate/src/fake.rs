//! Realistic fake data for the source-system simulators: Chinese names, resident ID numbers with correct
//! check digits, real Shaanxi county / town / village codes and names, addresses, mobile numbers, unified social
//! credit codes with correct check characters, and coordinates near the county.
//!
//! Everything comes from one seeded random generator, so a simulator run is reproducible from its seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use unsilo_schemas::validate::{cert_no_check_char, uscc_check_char, Region, RegionTable};

/// Common surnames (百家姓, by frequency).
const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "付", "方", "白", "邹", "孟", "熊", "秦",
];

/// Characters common in given names.
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "玉", "兰", "建", "国", "文", "辉", "鑫", "宇",
    "浩", "婷", "雪", "琳", "晨", "欣", "佳", "子", "梓", "涵", "轩", "博", "思", "雨", "海", "红",
    "春", "林", "志", "德", "福", "荣",
];

/// Ethnic groups as written on ID cards, most Shaanxi residents being Han.
const ETHNICITIES: &[&str] = &[
    "汉族",
    "汉族",
    "汉族",
    "汉族",
    "汉族",
    "汉族",
    "回族",
    "满族",
    "蒙古族",
];

/// Mobile number prefixes of the three carriers.
const MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "173", "177", "180", "181", "182", "183", "185",
    "186", "187", "188", "189", "191", "198", "199",
];

/// The counties the demo simulates by default: 汉阴县 (the "321" model) and 阎良区 ("两平台三机制").
pub const DEFAULT_COUNTIES: &[&str] = &["610921", "610114"];

/// Approximate centre (longitude, latitude) of a county, for plausible event coordinates.
fn county_centre(county: &str) -> (f64, f64) {
    match county {
        "610921" => (108.508, 32.893),                   // 汉阴县
        "610114" => (109.226, 34.662),                   // 阎良区
        c if c.starts_with("6101") => (108.940, 34.341), // 西安市
        c if c.starts_with("6109") => (109.029, 32.685), // 安康市
        _ => (108.940, 34.341),
    }
}

/// A division's name as it is written in an address: a village committee (村委会, 村民委员会) is its village
/// (…村), a residents' committee (居委会, 居民委员会) its community.
fn place_name(official: &str) -> String {
    for (suffix, replacement) in [
        ("村民委员会", "村"),
        ("村委会", "村"),
        ("居民委员会", ""),
        ("居委会", ""),
    ] {
        if let Some(stem) = official.strip_suffix(suffix) {
            return format!("{stem}{replacement}");
        }
    }
    official.to_owned()
}

/// A simulated resident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// Full name.
    pub name: String,
    /// `1` male, `2` female (GB/T 2261.1), as the ID number's 17th digit implies.
    pub gender_code: &'static str,
    /// Birth date as `YYYYMMDD`.
    pub birth: String,
    /// 18-character ID number with a correct check character, issued in `county`.
    pub cert_no: String,
    /// 11-digit mobile number.
    pub phone: String,
    /// Ethnic group.
    pub ethnicity: &'static str,
}

/// The fake-data generator.
#[derive(Debug)]
pub struct Faker {
    rng: StdRng,
    counties: Vec<String>,
    /// Villages of the configured counties (the pool events and households are drawn from).
    villages: Vec<&'static Region>,
}

impl Faker {
    /// A generator for the default counties, seeded.
    pub fn new(seed: u64) -> Self {
        Self::for_counties(seed, DEFAULT_COUNTIES)
    }

    /// A generator for the given 6-digit county codes (unknown ones are ignored; if none is known, the default
    /// counties are used).
    pub fn for_counties(seed: u64, counties: &[&str]) -> Self {
        let table = RegionTable::shaanxi();
        let mut villages: Vec<&'static Region> = Vec::new();
        let mut known = Vec::new();
        for c in counties {
            let before = villages.len();
            villages.extend(table.villages_of_county(c));
            if villages.len() > before {
                known.push((*c).to_owned());
            }
        }
        if villages.is_empty() {
            for c in DEFAULT_COUNTIES {
                villages.extend(table.villages_of_county(c));
                known.push((*c).to_owned());
            }
        }
        Self {
            rng: StdRng::seed_from_u64(seed),
            counties: known,
            villages,
        }
    }

    /// The random generator, for simulator-specific choices.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// One of `items`, uniformly.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    /// One of `items` (not empty), each as likely as its `weight`; the first when every weight is 0.
    pub fn pick_weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
        let total: u32 = items.iter().map(&weight).sum();
        let mut roll = self.rng.random_range(0..total.max(1));
        items
            .iter()
            .find(|item| {
                let w = weight(item);
                if roll < w {
                    true
                } else {
                    roll -= w;
                    false
                }
            })
            .unwrap_or(&items[0])
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// A Chinese full name: surname plus one or two given-name characters.
    pub fn name(&mut self) -> String {
        let mut n = (*self.pick(SURNAMES)).to_owned();
        let first: &str = self.pick::<&str>(GIVEN);
        n.push_str(first);
        if self.chance(0.7) {
            let second: &str = self.pick::<&str>(GIVEN);
            n.push_str(second);
        }
        n
    }

    /// An 11-digit mobile number.
    pub fn phone(&mut self) -> String {
        let prefix = *self.pick(MOBILE_PREFIXES);
        format!("{prefix}{:08}", self.rng.random_range(0..100_000_000u32))
    }

    /// A random village of the configured counties.
    pub fn village(&mut self) -> &'static Region {
        let i = self.rng.random_range(0..self.villages.len());
        self.villages[i]
    }

    /// A 15-digit grid code inside `village`: the village code plus a serial 001–030.
    pub fn grid_code(&mut self, village: &Region) -> String {
        format!("{}{:03}", village.code(), self.rng.random_range(1..=30))
    }

    /// A street address in `village`: province, city, county, town, village, group and house number.
    pub fn address(&mut self, village: &Region) -> String {
        let chain: Vec<String> = RegionTable::shaanxi()
            .chain(village.code())
            .iter()
            .map(|r| place_name(r.name()))
            .collect();
        let group = self.rng.random_range(1..=12);
        let house = self.rng.random_range(1..=80);
        format!("{}{group}组{house}号", chain.concat())
    }

    /// Coordinates (longitude, latitude) within ~15 km of the village's county centre, at 6 decimals.
    pub fn coordinates(&mut self, village: &Region) -> (f64, f64) {
        let (lng, lat) = county_centre(&village.code()[..6]);
        let round = |x: f64| (x * 1e6).round() / 1e6;
        (
            round(lng + self.rng.random_range(-0.15..0.15)),
            round(lat + self.rng.random_range(-0.12..0.12)),
        )
    }

    /// A person born between 1940 and 2015, with an ID number issued in one of the configured counties.
    pub fn person(&mut self) -> Person {
        let year = self.rng.random_range(1940..=2015);
        let month = self.rng.random_range(1..=12u32);
        let day = self.rng.random_range(1..=28u32);
        let birth = format!("{year:04}{month:02}{day:02}");
        let male = self.chance(0.5);
        let seq = self.rng.random_range(0..500u32) * 2 + u32::from(male);
        let county = self.counties[self.rng.random_range(0..self.counties.len())].clone();
        let first17 = format!("{county}{birth}{seq:03}");
        // The first 17 characters are digits by construction, so the check character always exists.
        let check = cert_no_check_char(&first17).unwrap_or('0');
        Person {
            name: self.name(),
            gender_code: if male { "1" } else { "2" },
            birth,
            cert_no: format!("{first17}{check}"),
            phone: self.phone(),
            ethnicity: self.pick::<&str>(ETHNICITIES),
        }
    }

    /// A unified social credit code of an organisation registered in `county` (registration authority 1 =
    /// organisation code authority, type 1 = government organ, or 9/1 = enterprise), with a correct check
    /// character.
    pub fn uscc(&mut self, county: &str, government: bool) -> String {
        const CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
        let head = if government { "11" } else { "91" };
        let mut body = String::with_capacity(9);
        for _ in 0..9 {
            body.push(CHARSET[self.rng.random_range(0..CHARSET.len())] as char);
        }
        let first17 = format!("{head}{county}{body}");
        let check = uscc_check_char(&first17).unwrap_or('0');
        format!("{first17}{check}")
    }

    /// Breaks an ID number's check character (for the share of malformed records).
    pub fn corrupt_cert_no(&mut self, cert_no: &str) -> String {
        let mut chars: Vec<char> = cert_no.chars().collect();
        if let Some(last) = chars.last_mut() {
            *last = if *last == '1' { '2' } else { '1' };
        }
        let broken: String = chars.into_iter().collect();
        if broken == cert_no {
            format!("{cert_no}0")
        } else {
            broken
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unsilo_schemas::validate::{
        validate_cert_no, validate_grid_code, validate_phone, validate_region_code, validate_uscc,
    };

    #[test]
    fn generated_identifiers_pass_the_validators() {
        let mut f = Faker::new(7);
        for _ in 0..500 {
            let p = f.person();
            let id = validate_cert_no(&p.cert_no).expect("valid ID number");
            assert_eq!(id.birth_date().to_string().replace('-', ""), p.birth);
            validate_phone(&p.phone).expect("valid phone");
            let v = f.village();
            validate_region_code(v.code()).expect("real village");
            validate_grid_code(&f.grid_code(v)).expect("valid grid code");
            validate_uscc(&f.uscc(&v.code()[..6], true)).expect("valid USCC");
            validate_uscc(&f.uscc(&v.code()[..6], false)).expect("valid USCC");
            assert!(validate_cert_no(&f.corrupt_cert_no(&p.cert_no)).is_err());
        }
    }

    #[test]
    fn same_seed_same_data() {
        let (mut a, mut b) = (Faker::new(42), Faker::new(42));
        for _ in 0..20 {
            assert_eq!(a.person(), b.person());
        }
    }

    #[test]
    fn addresses_name_the_whole_chain() {
        let mut f = Faker::for_counties(1, &["610921"]);
        let v = f.village();
        let a = f.address(v);
        assert!(a.starts_with("陕西省安康市汉阴县"), "{a}");
        assert!(a.contains(&place_name(v.name())), "{a}");
        assert_eq!(place_name("三塘村委会"), "三塘村");
        assert_eq!(place_name("民乐社区居委会"), "民乐社区");
        assert_eq!(place_name("城关镇"), "城关镇");
    }
}
