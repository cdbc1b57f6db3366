//! Simulator of the county grid-management platforms (网格化服务管理平台) behind the built-in `grid` connector.
//!
//! The platform pushes JSON to the hub's `POST /ingest/grid` with `Authorization: Bearer <token>`, in the dialect
//! documented in `connectors/builtin/grid/README.md`: pinyin-initial field names, codes and numbers as strings,
//! `sbsj` as `2021/9/14 9:21`, `gxsj` as `20210914092100`, a `msgType` discriminator.
//!
//! Traffic looks like a platform coming online: first the grid units of a few real villages per county, each
//! followed by its households (care level green / yellow / red, about 10 % red) and their residents; then events.
//! An event is reported by the grid member (上报) and re-sent each time it moves on — one more `lcjl` step and a
//! newer `gxsj` — through 受理, 分流, 办理, 督办 or 退回 until it is closed (结案) after 3 to 6 steps. Now and then
//! a household is re-tagged or a resident's data changes, which makes a new version of them.
//!
//! A configurable share of the records is malformed with exactly one [`Malformation`] (a wrong check digit, a
//! missing required field, a garbage date, an unknown code, an unknown `msgType`), so the dead-letter topic has
//! something to show; each knows the stage that must reject it.
//!
//! [`GridGenerator`] makes the records, pure and deterministic from its seed (a simulated clock starts on
//! 2024-06-03 08:00 Beijing time), so tests and benchmarks use the dialect without HTTP ([`generate`]). [`run`]
//! POSTs them at the configured rate, retries on 5xx and connection errors with backoff, counts what the hub
//! accepted and rejected, and logs progress every few seconds.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tracing::{info, warn};
use unsilo_schemas::validate::{uscc_check_char, Region, RegionTable};

use super::fake::{Faker, Person, DEFAULT_COUNTIES};
use unsilo_connectors::sdk::Shutdown;

/// The connector the simulator pushes to: `POST {hub_url}/ingest/grid`.
pub const CONNECTOR: &str = "grid";

/// Villages per county whose grids the simulator sets up.
const VILLAGES_PER_COUNTY: usize = 3;
/// At most this many events are open (not yet closed) at once.
const MAX_OPEN_EVENTS: usize = 200;
/// Share of records, once set up, that report a new event (the rest move open events on, or update the registry).
const NEW_EVENT_SHARE: f64 = 0.2;
/// Share of records, once set up, that are a new version of a household, resident or grid.
const REGISTRY_UPDATE_SHARE: f64 = 0.05;
/// Attempts per batch before the simulator gives up on an unavailable hub.
const MAX_ATTEMPTS: u32 = 8;
/// First retry delay; doubled per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How often [`run`] logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------------------------
// Options, statistics, errors
// ---------------------------------------------------------------------------------------------------------------

/// Options of the grid simulator (`unsilo simulate grid`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSimulatorOptions {
    /// Base URL of the hub, e.g. `http://127.0.0.1:8080`; records go to `{hub_url}/ingest/grid`.
    #[serde(default = "default_hub_url")]
    pub hub_url: String,
    /// The `grid` connector's push token (sent as `Authorization: Bearer <token>`).
    pub token: String,
    /// Records per second (on average); `0` sends as fast as the hub answers.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Share of malformed records, 0.0–1.0.
    #[serde(default = "default_malformed_share")]
    pub malformed_share: f64,
    /// Seed of the data: the same seed gives the same records (and record ids).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stop after this many records; without it, run until shut down.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Records per request (a JSON array); 1 sends single objects.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// 6-digit county codes whose grid platforms are simulated (default 汉阴县 610921 and 阎良区 610114).
    #[serde(default = "default_counties")]
    pub counties: Vec<String>,
}

fn default_hub_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_rate() -> f64 {
    20.0
}
fn default_malformed_share() -> f64 {
    0.05
}
fn default_seed() -> u64 {
    1
}
fn default_batch_size() -> usize {
    20
}
fn default_counties() -> Vec<String> {
    DEFAULT_COUNTIES.iter().map(|c| (*c).to_owned()).collect()
}

impl Default for GridSimulatorOptions {
    fn default() -> Self {
        Self {
            hub_url: default_hub_url(),
            token: String::new(),
            rate: default_rate(),
            malformed_share: default_malformed_share(),
            seed: default_seed(),
            limit: None,
            batch_size: default_batch_size(),
            counties: default_counties(),
        }
    }
}

impl fmt::Debug for GridSimulatorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never print it.
        f.debug_struct("GridSimulatorOptions")
            .field("hub_url", &self.hub_url)
            .field("rate", &self.rate)
            .field("malformed_share", &self.malformed_share)
            .field("seed", &self.seed)
            .field("limit", &self.limit)
            .field("batch_size", &self.batch_size)
            .field("counties", &self.counties)
            .finish_non_exhaustive()
    }
}

impl GridSimulatorOptions {
    /// Checks the options; the error names the option at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |m: String| Err(Error::InvalidOptions(m));
        if !(self.hub_url.starts_with("http://") || self.hub_url.starts_with("https://")) {
            return invalid(format!(
                "hub_url `{}` must start with http:// or https://",
                self.hub_url
            ));
        }
        if self.token.trim().is_empty() {
            return invalid("token is empty; the hub needs the grid connector's push token".into());
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return invalid(format!(
                "rate {} must be a number of records per second, 0 or more",
                self.rate
            ));
        }
        if let Err(e) = crate::options::within(
            "malformed_share",
            self.malformed_share,
            crate::options::SHARE,
        ) {
            return invalid(e);
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return invalid(format!(
                "batch_size {} must be between 1 and 10000",
                self.batch_size
            ));
        }
        Ok(())
    }
}

/// What a simulator run did, as the hub answered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records the hub answered for (accepted + rejected).
    pub sent: u64,
    /// Records the hub accepted.
    pub accepted: u64,
    /// Records the hub rejected (they are on `dlq.grid`).
    pub rejected: u64,
    /// Records the simulator malformed on purpose.
    pub malformed_sent: u64,
    /// Well-formed records the hub rejected anyway (a bug in the connector or the simulator: should stay 0).
    pub unexpected_rejections: u64,
    /// Malformed records the hub accepted anyway (should stay 0).
    pub malformed_accepted: u64,
    /// Accepted records per shared schema, e.g. `grid_event`.
    pub accepted_by_schema: BTreeMap<String, u64>,
    /// Rejected records per reason, as `stage/code`, e.g. `validation/validator(cert_no)`.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// HTTP requests that got an answer.
    pub requests: u64,
    /// Requests repeated after a 5xx, 408, 429 or connection error.
    pub retries: u64,
}

/// Why the simulator stopped before its limit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are not usable (the message names the option).
    #[error("invalid simulator options: {0}")]
    InvalidOptions(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The hub refused the token (401 or 403).
    #[error("the hub refused the grid connector's token (HTTP {status})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The hub refused the request for a reason retrying will not fix (404 unknown connector, 400, 413, …).
    #[error("the hub refused the request (HTTP {status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The hub's message (shortened).
        message: String,
    },
    /// The hub stayed unreachable or unavailable through every retry.
    #[error("the hub is unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The hub answered 207 or 422 with a body the simulator cannot read.
    #[error("the hub's answer cannot be read: {0}")]
    BadAnswer(String),
}

// ---------------------------------------------------------------------------------------------------------------
// Malformations
// ---------------------------------------------------------------------------------------------------------------

/// How a malformed record is broken. Each breaks exactly one thing and is rejected at a known stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformation {
    /// An identifier fails its validator: an ID number with a wrong check digit (event party, household head,
    /// resident), or — on records without one — a grid code with serial `000`.
    BadIdentifier,
    /// A required field is missing (the record id, `gxsj`, or another required field).
    MissingField,
    /// A date that is not one: `2024/6/31 9:21`, month 13, February 30.
    GarbageDate,
    /// A code outside its code table: a care level `5`, a workflow step `35`, an ethnicity `60`.
    UnknownCode,
    /// A `msgType` the connector has no mapping for (`PATROL`, `VISIT`, …).
    UnknownMsgType,
}

impl Malformation {
    /// Every malformation.
    pub const ALL: [Malformation; 5] = [
        Self::BadIdentifier,
        Self::MissingField,
        Self::GarbageDate,
        Self::UnknownCode,
        Self::UnknownMsgType,
    ];

    /// The stage of the hub's normaliser that rejects it: `validation`, `contract` or `mapping`.
    pub fn expected_stage(self) -> &'static str {
        match self {
            Self::BadIdentifier => "validation",
            Self::MissingField => "contract",
            Self::GarbageDate | Self::UnknownCode | Self::UnknownMsgType => "mapping",
        }
    }

    /// The reject code the hub gives it, or the code's prefix for validator failures (`validator(`).
    pub fn expected_code_prefix(self) -> &'static str {
        match self {
            Self::BadIdentifier => "validator(",
            Self::MissingField => "contract_violation",
            Self::GarbageDate => "bad_datetime",
            Self::UnknownCode => "bad_code",
            Self::UnknownMsgType => "no_mapping",
        }
    }
}

/// One raw record of the grid dialect, as the platform would push it.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedRecord {
    /// The message (a JSON object).
    pub record: Value,
    /// How it was broken, if it was.
    pub malformation: Option<Malformation>,
}

// ---------------------------------------------------------------------------------------------------------------
// Reference data of the simulated platform
// ---------------------------------------------------------------------------------------------------------------

/// One kind of event in the platform's event-type table.
struct EventKind {
    /// 事件类型代码 `sjlx`.
    code: &'static str,
    /// 事件类型名称 `sjlxmc`.
    name: &'static str,
    /// 事件大类 `sjdl`.
    category: &'static str,
    /// Relative frequency.
    weight: u32,
    /// 紧急程度 usually given.
    urgency: &'static str,
    /// Title patterns: `{v}` village, `{g}` group number, `{x}` a detail.
    titles: &'static [&'static str],
    /// Details substituted for `{x}`.
    details: &'static [&'static str],
    /// What the grid member adds in the description.
    notes: &'static [&'static str],
    /// County department the event is dispatched to (after the county name).
    department: &'static str,
    /// Parties: 0 none, 1 one (role `roles[0]`), 2 two (`roles[0]`, `roles[1]`).
    parties: usize,
    /// Party roles (`js`).
    roles: [&'static str; 2],
}

const EVENT_KINDS: &[EventKind] = &[
    EventKind {
        code: "0101",
        name: "邻里纠纷",
        category: "01",
        weight: 14,
        urgency: "1",
        titles: &[
            "{v}{g}组两户村民因{x}发生纠纷",
            "{v}{g}组邻里之间因{x}发生争执",
        ],
        details: &[
            "宅基地界限",
            "排水沟堵塞",
            "通行道路",
            "房屋漏水",
            "树木遮挡采光",
            "噪音扰民",
        ],
        notes: &[
            "双方情绪激动，网格员到场劝解后情绪稳定，需进一步协调化解。",
            "双方多次协商未果，申请村（社区）调委会调解。",
        ],
        department: "司法局",
        parties: 2,
        roles: ["1", "2"],
    },
    EventKind {
        code: "0102",
        name: "婚姻家庭纠纷",
        category: "01",
        weight: 6,
        urgency: "1",
        titles: &["{v}{g}组一户家庭因{x}发生矛盾"],
        details: &["赡养老人", "子女抚养", "家庭财产分割", "婚姻关系"],
        notes: &[
            "家庭成员矛盾较深，需持续跟进化解。",
            "网格员已上门劝解，当事人情绪基本稳定。",
        ],
        department: "妇女联合会",
        parties: 2,
        roles: ["1", "2"],
    },
    EventKind {
        code: "0103",
        name: "土地山林权属纠纷",
        category: "01",
        weight: 5,
        urgency: "1",
        titles: &["{v}{g}组村民因{x}发生争议"],
        details: &["承包地边界", "林地权属", "土地流转费用"],
        notes: &[
            "涉及历史遗留问题，需调取确权资料核实。",
            "双方各执一词，需镇村联合调处。",
        ],
        department: "农业农村局",
        parties: 2,
        roles: ["1", "2"],
    },
    EventKind {
        code: "0104",
        name: "劳资纠纷",
        category: "01",
        weight: 4,
        urgency: "2",
        titles: &["{v}务工人员反映{x}"],
        details: &["工程款拖欠工资", "厂方拖欠工资", "工伤赔偿未落实"],
        notes: &[
            "涉及务工人员多人，情绪较为激动，需尽快协调。",
            "已告知通过劳动监察渠道依法维权。",
        ],
        department: "人力资源和社会保障局",
        parties: 1,
        roles: ["1", "9"],
    },
    EventKind {
        code: "0201",
        name: "治安隐患",
        category: "02",
        weight: 4,
        urgency: "1",
        titles: &["{v}{g}组{x}"],
        details: &[
            "夜间有陌生车辆频繁出入",
            "发现疑似赌博聚集点",
            "出租屋人员流动频繁未登记",
        ],
        notes: &[
            "已提醒周边群众提高警惕，请求派出所核查。",
            "网格员已做好记录，持续关注。",
        ],
        department: "公安局",
        parties: 0,
        roles: ["9", "9"],
    },
    EventKind {
        code: "0202",
        name: "电信网络诈骗",
        category: "02",
        weight: 4,
        urgency: "2",
        titles: &["{v}{g}组村民疑似遭遇{x}诈骗"],
        details: &["冒充客服", "冒充公检法", "虚假网贷", "刷单返利"],
        notes: &[
            "已劝阻当事人暂停转账并报警。",
            "当事人已转账，已陪同前往派出所报案。",
        ],
        department: "公安局",
        parties: 1,
        roles: ["3", "9"],
    },
    EventKind {
        code: "0301",
        name: "房屋安全隐患",
        category: "03",
        weight: 6,
        urgency: "2",
        titles: &["{v}{g}组一处{x}"],
        details: &["土坯房墙体开裂", "危旧房屋顶塌陷", "老旧房屋梁柱腐朽"],
        notes: &[
            "已劝导住户暂时搬离，需住建部门鉴定。",
            "房屋仍有人居住，存在较大安全风险。",
        ],
        department: "住房和城乡建设局",
        parties: 1,
        roles: ["4", "9"],
    },
    EventKind {
        code: "0302",
        name: "地质灾害隐患",
        category: "03",
        weight: 6,
        urgency: "2",
        titles: &["{v}{g}组{x}"],
        details: &["屋后边坡出现裂缝", "发生小型滑坡", "山体落石威胁道路"],
        notes: &[
            "近日连续降雨，险情有扩大趋势，已提醒群众避险。",
            "已设置警示标志，请求专业人员现场勘查。",
        ],
        department: "自然资源局",
        parties: 1,
        roles: ["4", "9"],
    },
    EventKind {
        code: "0303",
        name: "消防安全隐患",
        category: "03",
        weight: 5,
        urgency: "1",
        titles: &["{v}{x}"],
        details: &[
            "沿街商铺电动车违规充电",
            "村民房前堆放大量柴草",
            "废品收购站消防通道堵塞",
        ],
        notes: &[
            "已现场提醒整改，当事人表示配合。",
            "多次劝导未整改，请求相关部门处理。",
        ],
        department: "消防救援大队",
        parties: 1,
        roles: ["4", "9"],
    },
    EventKind {
        code: "0401",
        name: "垃圾乱堆乱放",
        category: "04",
        weight: 7,
        urgency: "1",
        titles: &["{v}{g}组{x}"],
        details: &["河道旁垃圾堆积", "生活垃圾未及时清运", "建筑垃圾乱倒"],
        notes: &["影响村容村貌，群众反映强烈。", "已拍照留存，需安排清运。"],
        department: "城市管理执法局",
        parties: 0,
        roles: ["9", "9"],
    },
    EventKind {
        code: "0402",
        name: "污水排放",
        category: "04",
        weight: 4,
        urgency: "1",
        titles: &["{v}{x}"],
        details: &[
            "养殖场污水直排河道",
            "生活污水横流",
            "小作坊夜间排放异味废水",
        ],
        notes: &[
            "周边群众反映异味明显，需环保部门核查。",
            "已告知相关责任人，暂未整改。",
        ],
        department: "生态环境分局",
        parties: 0,
        roles: ["9", "9"],
    },
    EventKind {
        code: "0501",
        name: "道路损毁",
        category: "05",
        weight: 6,
        urgency: "1",
        titles: &["{v}{g}组{x}"],
        details: &["通组道路路面塌陷", "村道边坡垮塌", "便民桥护栏损坏"],
        notes: &[
            "影响群众出行，已设置临时围挡。",
            "存在安全隐患，需尽快修复。",
        ],
        department: "交通运输局",
        parties: 0,
        roles: ["9", "9"],
    },
    EventKind {
        code: "0502",
        name: "供水设施故障",
        category: "05",
        weight: 5,
        urgency: "2",
        titles: &["{v}{g}组{x}"],
        details: &["自来水管道破裂", "连续多日停水", "饮用水源水质浑浊"],
        notes: &[
            "涉及农户二十余户，群众生活用水困难。",
            "已临时组织送水，需尽快抢修。",
        ],
        department: "水利局",
        parties: 0,
        roles: ["9", "9"],
    },
    EventKind {
        code: "0601",
        name: "困难救助",
        category: "06",
        weight: 6,
        urgency: "1",
        titles: &["{v}{g}组{x}"],
        details: &[
            "一户因病致贫申请临时救助",
            "独居老人生活困难需要帮扶",
            "困难家庭房屋漏雨需修缮",
        ],
        notes: &["家庭情况已核实，符合救助条件。", "已协助准备申请材料。"],
        department: "民政局",
        parties: 1,
        roles: ["1", "9"],
    },
    EventKind {
        code: "0602",
        name: "政策咨询",
        category: "06",
        weight: 5,
        urgency: "1",
        titles: &["{v}村民咨询{x}"],
        details: &["城乡居民医保缴费", "养老保险待遇认证", "高龄补贴申领"],
        notes: &[
            "已现场解答部分问题，其余需职能部门答复。",
            "群众对政策理解有偏差，需进一步解释。",
        ],
        department: "医疗保障局",
        parties: 1,
        roles: ["1", "9"],
    },
    EventKind {
        code: "0701",
        name: "重点人员健康服务",
        category: "07",
        weight: 4,
        urgency: "2",
        titles: &["{v}{g}组{x}"],
        details: &[
            "独居老人突发疾病需送医",
            "严重精神障碍患者停药情绪异常",
            "慢性病患者需上门随访",
        ],
        notes: &[
            "已联系村医到场，家属正在赶回。",
            "需卫生健康部门安排人员上门。",
        ],
        department: "卫生健康局",
        parties: 1,
        roles: ["4", "9"],
    },
    EventKind {
        code: "0801",
        name: "信访诉求",
        category: "08",
        weight: 3,
        urgency: "1",
        titles: &["{v}村民反映{x}"],
        details: &[
            "征地补偿款分配问题",
            "移民搬迁安置房质量问题",
            "低保评定不公问题",
        ],
        notes: &[
            "诉求人情绪较为激动，已做好稳控工作。",
            "已登记诉求，按程序转办。",
        ],
        department: "信访局",
        parties: 1,
        roles: ["1", "9"],
    },
    EventKind {
        code: "9901",
        name: "其他事件",
        category: "99",
        weight: 2,
        urgency: "1",
        titles: &["{v}{g}组{x}"],
        details: &["流浪犬伤人", "野猪毁坏庄稼"],
        notes: &["已提醒群众注意安全。", "需相关部门协助处理。"],
        department: "农业农村局",
        parties: 1,
        roles: ["3", "9"],
    },
];

/// 户标签 by care level.
const RED_TAGS: &[&str] = &["监测户", "低保户", "五保户", "脱贫户"];
const YELLOW_TAGS: &[&str] = &["脱贫户", "留守户", "残疾人户", "独居老人户"];
/// Dedicated grids (专属网格) of a town.
const DEDICATED_PLACES: &[&str] = &["中心学校", "卫生院", "工业园区", "农贸市场", "敬老院"];
/// Chinese numerals for grid names (第一网格 …).
const NUMERALS: &[&str] = &[
    "零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二", "十三",
    "十四", "十五",
];
/// `msgType`s of other platform messages, not (yet) mapped: 巡查日志, 走访记录, 通知公告.
const UNMAPPED_MSG_TYPES: &[&str] = &["PATROL", "VISIT", "NOTICE"];

/// The USCC of the county's grid centre (社会治理综合服务中心), the provider of the data.
fn provider_uscc(county: &str) -> String {
    match county {
        "610921" => "11610921016050037T".into(),
        "610114" => "11610114016075532X".into(),
        other => {
            let first17 = format!("11{other}016{}", &format!("{other:0>6}")[..6]);
            let check = uscc_check_char(&first17).unwrap_or('0');
            format!("{first17}{check}")
        }
    }
}

/// A village's name as written in addresses: 南街社区居委会 → 南街社区, 三塘村委会 → 三塘村.
fn village_display(name: &str) -> String {
    if let Some(s) = name.strip_suffix("居委会") {
        s.to_owned()
    } else if let Some(s) = name.strip_suffix("村委会") {
        format!("{s}村")
    } else if let Some(s) = name.strip_suffix("委员会") {
        s.to_owned()
    } else {
        name.to_owned()
    }
}

fn numeral(n: usize) -> String {
    NUMERALS
        .get(n)
        .map_or_else(|| n.to_string(), |s| (*s).to_owned())
}

/// `2021/9/14 9:21`, as the app shows and sends it.
fn app_time(t: NaiveDateTime) -> String {
    format!(
        "{}/{}/{} {}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `20210914092100`, as the database stores it.
fn compact_time(t: NaiveDateTime) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

/// `2021-09-14 09:21:00`, as the workflow engine writes it.
fn step_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The year of birth of a simulated person.
fn birth_year(p: &Person) -> i32 {
    p.birth
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(1970)
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

// ---------------------------------------------------------------------------------------------------------------
// The simulated platform's state
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Member {
    id: String,
    name: String,
    phone: String,
}

impl Member {
    fn to_json(&self) -> Value {
        json!({ "wgybh": self.id, "xm": self.name, "lxdh": self.phone })
    }
}

#[derive(Debug)]
struct County {
    code: String,
    name: String,
    provider: String,
    /// `陕西省安康市汉阴县`.
    prefix: String,
}

#[derive(Debug)]
struct Grid {
    county: usize,
    code: String,
    name: String,
    /// `1` base, `2` dedicated.
    kind: &'static str,
    village: &'static Region,
    village_name: String,
    town_code: String,
    town_name: String,
    leader: Option<Member>,
    member: Member,
    centre: (f64, f64),
    half: f64,
    household_count: u32,
    population: u32,
    established: NaiveDate,
    households: Vec<usize>,
}

#[derive(Debug)]
struct Resident {
    id: String,
    person: Person,
    /// 证件类型 (`111` resident ID card, else a permit).
    cert_type: &'static str,
    cert_no: String,
    relation: &'static str,
    marital: &'static str,
    population_type: &'static str,
    registered_address: String,
    special: Vec<&'static str>,
    status: &'static str,
}

#[derive(Debug)]
struct Household {
    grid: usize,
    id: String,
    group: u32,
    address: String,
    care: &'static str,
    residence: &'static str,
    tags: Vec<&'static str>,
    phone: String,
    location: (f64, f64),
    residents: Vec<Resident>,
}

/// One planned workflow step.
#[derive(Clone, Debug)]
struct Step {
    stage: &'static str,
    level: &'static str,
    at: NaiveDateTime,
    org: String,
    org_code: String,
    operator: String,
    opinion: String,
    due: Option<NaiveDateTime>,
}

impl Step {
    fn to_json(&self) -> Value {
        json!({
            "hj": self.stage,
            "czsj": step_time(self.at),
            "cj": self.level,
            "bldw": self.org,
            "bldwdm": self.org_code,
            "jbr": self.operator,
            "blyj": self.opinion,
            "blsx": self.due.map(step_time).unwrap_or_default(),
        })
    }
}

/// An event that is not closed yet: its fixed fields, its planned steps, and how many were sent.
#[derive(Debug)]
struct OpenEvent {
    base: Map<String, Value>,
    steps: Vec<Step>,
    sent: usize,
}

/// Paths through the workflow (环节 codes), with their relative frequency.
const PATHS: &[(&[&str], u32)] = &[
    (&["10", "20", "90"], 25),
    (&["10", "20", "40", "90"], 30),
    (&["10", "20", "30", "40", "90"], 25),
    (&["10", "20", "30", "40", "50", "90"], 10),
    (&["10", "20", "30", "60", "40", "90"], 10),
];

/// What to emit next.
#[derive(Debug)]
enum Pending {
    Grid(usize),
    Household(usize),
    Resident(usize, usize),
}

/// The grid platform's data, generated deterministically from a seed.
///
/// ```
/// use unsilo_simulate::grid::GridGenerator;
///
/// let mut a = GridGenerator::new(7, &["610921"], 0.0);
/// let mut b = GridGenerator::new(7, &["610921"], 0.0);
/// let first = a.next_record();
/// assert_eq!(first, b.next_record());
/// assert_eq!(first.record["msgType"], "GRID");
/// ```
#[derive(Debug)]
pub struct GridGenerator {
    faker: Faker,
    malformed_share: f64,
    clock: NaiveDateTime,
    counties: Vec<County>,
    grids: Vec<Grid>,
    households: Vec<Household>,
    pending: VecDeque<Pending>,
    open: Vec<OpenEvent>,
    event_serials: HashMap<String, u32>,
    org_codes: HashMap<String, String>,
    staff: HashMap<String, String>,
    total_weight: u32,
}

impl GridGenerator {
    /// A generator for the given 6-digit county codes (unknown ones are ignored; none known means 汉阴县 and
    /// 阎良区), with the given share (0.0–1.0) of malformed records.
    pub fn new(seed: u64, counties: &[&str], malformed_share: f64) -> Self {
        let table = RegionTable::shaanxi();
        let mut known: Vec<&str> = counties
            .iter()
            .copied()
            .filter(|c| table.villages_of_county(c).next().is_some())
            .collect();
        known.dedup();
        if known.is_empty() {
            known = DEFAULT_COUNTIES.to_vec();
        }
        let start = NaiveDate::from_ymd_opt(2024, 6, 3)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .unwrap_or_default();
        let mut g = Self {
            faker: Faker::for_counties(seed, &known),
            malformed_share: if malformed_share.is_finite() {
                malformed_share.clamp(0.0, 1.0)
            } else {
                0.0
            },
            clock: start,
            counties: Vec::new(),
            grids: Vec::new(),
            households: Vec::new(),
            pending: VecDeque::new(),
            open: Vec::new(),
            event_serials: HashMap::new(),
            org_codes: HashMap::new(),
            staff: HashMap::new(),
            total_weight: EVENT_KINDS.iter().map(|k| k.weight).sum(),
        };
        for county in known {
            g.set_up_county(county);
        }
        g
    }

    /// The next record (deterministic from the seed).
    pub fn next_record(&mut self) -> GeneratedRecord {
        self.clock += chrono::Duration::seconds(self.faker.rng().random_range(10..=120));
        let record = self.next_clean();
        if self.faker.chance(self.malformed_share) {
            let which = *self.faker.pick(&Malformation::ALL);
            let mut record = record;
            self.malform(&mut record, which);
            GeneratedRecord {
                record,
                malformation: Some(which),
            }
        } else {
            GeneratedRecord {
                record,
                malformation: None,
            }
        }
    }

    /// The next `n` records.
    pub fn next_batch(&mut self, n: usize) -> Vec<GeneratedRecord> {
        (0..n).map(|_| self.next_record()).collect()
    }

    // ---- set-up: grids, households, residents ----

    fn set_up_county(&mut self, code: &str) {
        let table = RegionTable::shaanxi();
        let chain: Vec<String> = table
            .chain(&format!("{code:0<12}"))
            .iter()
            .map(|r| r.name().to_owned())
            .collect();
        let name = chain.last().cloned().unwrap_or_else(|| code.to_owned());
        let county = self.counties.len();
        self.counties.push(County {
            code: code.to_owned(),
            name,
            provider: provider_uscc(code),
            prefix: chain.concat(),
        });
        let villages: Vec<&'static Region> = table.villages_of_county(code).collect();
        if villages.is_empty() {
            return;
        }
        let mut chosen: Vec<&'static Region> = Vec::new();
        for _ in 0..VILLAGES_PER_COUNTY * 4 {
            if chosen.len() == VILLAGES_PER_COUNTY {
                break;
            }
            let v = *self.faker.pick(&villages);
            if !chosen.iter().any(|c| c.code() == v.code()) {
                chosen.push(v);
            }
        }
        for (i, village) in chosen.iter().enumerate() {
            let grids = self.faker.rng().random_range(1..=3usize);
            let leader = Member {
                id: format!("WGZ{}", village.code()),
                name: self.faker.name(),
                phone: self.faker.phone(),
            };
            for serial in 1..=grids {
                let g = self.new_grid(county, village, serial, "1", Some(leader.clone()));
                self.pending.push_back(Pending::Grid(g));
                let households = self.faker.rng().random_range(5..=9usize);
                for _ in 0..households {
                    let h = self.new_household(g);
                    self.pending.push_back(Pending::Household(h));
                    for r in 0..self.households[h].residents.len() {
                        self.pending.push_back(Pending::Resident(h, r));
                    }
                }
            }
            if i == 0 {
                // One dedicated grid (专属网格: a school, a clinic, an industrial park) per county.
                let g = self.new_grid(county, village, 20 + grids, "2", None);
                self.pending.push_back(Pending::Grid(g));
            }
        }
    }

    fn new_grid(
        &mut self,
        county: usize,
        village: &'static Region,
        serial: usize,
        kind: &'static str,
        leader: Option<Member>,
    ) -> usize {
        let table = RegionTable::shaanxi();
        let village_name = village_display(village.name());
        let town_code = village.parent_code().unwrap_or_default().to_owned();
        let town_name = table.name(&town_code).unwrap_or_default().to_owned();
        let code = format!("{}{serial:03}", village.code());
        let name = if kind == "2" {
            let place = *self.faker.pick(DEDICATED_PLACES);
            format!("{town_name}{village_name}{place}专属网格")
        } else {
            format!("{town_name}{village_name}第{}网格", numeral(serial))
        };
        let centre = self.faker.coordinates(village);
        let half = self.faker.rng().random_range(0.0008..0.004);
        let (household_count, population) = if kind == "2" {
            (0, 0)
        } else {
            let hs = self.faker.rng().random_range(18..=32u32);
            (hs, hs * 3 + self.faker.rng().random_range(0..=hs))
        };
        let established = NaiveDate::from_ymd_opt(
            self.faker.rng().random_range(2016..=2021),
            self.faker.rng().random_range(1..=12),
            self.faker.rng().random_range(1..=28),
        )
        .unwrap_or_default();
        let member = Member {
            id: format!("WGY{code}"),
            name: self.faker.name(),
            phone: self.faker.phone(),
        };
        self.grids.push(Grid {
            county,
            code,
            name,
            kind,
            village,
            village_name,
            town_code,
            town_name,
            leader,
            member,
            centre,
            half,
            household_count,
            population,
            established,
            households: Vec::new(),
        });
        self.grids.len() - 1
    }

    /// A person born in `years`, of `gender` (`1`/`2`) if given: redrawn a few times, then taken as it is.
    fn person_born(
        &mut self,
        years: std::ops::RangeInclusive<i32>,
        gender: Option<&str>,
    ) -> Person {
        let mut p = self.faker.person();
        for _ in 0..40 {
            if years.contains(&birth_year(&p)) && gender.is_none_or(|g| g == p.gender_code) {
                break;
            }
            p = self.faker.person();
        }
        p
    }

    fn new_household(&mut self, grid: usize) -> usize {
        let serial = self.grids[grid].households.len() + 1;
        let id = format!("HH{}{serial:04}", self.grids[grid].code);
        let group = self.faker.rng().random_range(1..=12u32);
        let house = self.faker.rng().random_range(1..=80u32);
        let g = &self.grids[grid];
        let address = format!(
            "{}{}{}{group}组{house}号",
            self.counties[g.county].prefix, g.town_name, g.village_name
        );
        let registered_address = format!(
            "陕西省{}{}{}{group}组{house}号",
            self.counties[g.county].name, g.town_name, g.village_name
        );
        let (lng, lat) = g.centre;
        let half = g.half;
        let roll: f64 = self.faker.rng().random();
        let care = if roll < 0.10 {
            "3"
        } else if roll < 0.35 {
            "2"
        } else {
            "1"
        };
        let residence = {
            let r: f64 = self.faker.rng().random();
            if r < 0.85 {
                "1"
            } else if r < 0.95 {
                "2"
            } else {
                "3"
            }
        };
        let mut tags: Vec<&'static str> = Vec::new();
        match care {
            "3" => {
                tags.push(*self.faker.pick(RED_TAGS));
                if self.faker.chance(0.5) {
                    let t = *self.faker.pick(RED_TAGS);
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
            }
            "2" => tags.push(*self.faker.pick(YELLOW_TAGS)),
            _ => {
                if self.faker.chance(0.05) {
                    tags.push("军属户");
                }
            }
        }

        // Members: a head, often a spouse, children, sometimes a parent or a grandchild.
        let alone = care == "2" && tags.contains(&"独居老人户");
        let head_male = self.faker.chance(if alone { 0.4 } else { 0.8 });
        let head_years = if alone { 1940..=1955 } else { 1940..=1990 };
        let head = self.person_born(head_years, Some(if head_male { "1" } else { "2" }));
        let head_year = birth_year(&head);
        let surname: String = head.name.chars().take(1).collect();
        let mut members: Vec<(Person, &'static str)> = vec![(head, "02")];
        if !alone {
            if self.faker.chance(0.8) {
                let spouse = self.person_born(
                    head_year - 5..=head_year + 5,
                    Some(if head_male { "2" } else { "1" }),
                );
                members.push((spouse, "10"));
            }
            let children = self.faker.rng().random_range(0..=2usize);
            for _ in 0..children {
                let mut child = self.person_born(head_year + 20..=head_year + 35, None);
                child.name = format!(
                    "{surname}{}",
                    child.name.chars().skip(1).collect::<String>()
                );
                let relation = if child.gender_code == "1" { "20" } else { "30" };
                members.push((child, relation));
            }
            if head_year >= 1975 && self.faker.chance(0.3) {
                let parent = self.person_born(head_year - 32..=head_year - 20, None);
                members.push((parent, "50"));
            }
            if head_year <= 1965 && self.faker.chance(0.3) {
                let mut grandchild = self.person_born(2008..=2020, None);
                grandchild.name = format!(
                    "{surname}{}",
                    grandchild.name.chars().skip(1).collect::<String>()
                );
                members.push((grandchild, "40"));
            }
        }
        let phone = if self.faker.chance(0.1) {
            String::new()
        } else {
            members
                .first()
                .map(|(p, _)| p.phone.clone())
                .unwrap_or_default()
        };
        let mut residents = Vec::with_capacity(members.len());
        for (i, (person, relation)) in members.into_iter().enumerate() {
            let age = 2024 - birth_year(&person);
            let marital = match relation {
                "02" if alone => "30",
                "02" | "10" | "50" => "20",
                _ if age >= 24 && self.faker.chance(0.6) => "20",
                _ => "10",
            };
            let mut special: Vec<&'static str> = Vec::new();
            match care {
                "3" if i == 0 => {
                    special.push(*self.faker.pick(&["01", "02", "12", "07"]));
                }
                "3" if self.faker.chance(0.3) => special.push("03"),
                "2" if age >= 70 && alone => special.push("04"),
                "2" if age < 16 && tags.contains(&"留守户") => special.push("05"),
                "2" if age >= 65 && tags.contains(&"留守户") => special.push("06"),
                "2" if tags.contains(&"残疾人户") && i == 0 => special.push("03"),
                _ => {}
            }
            if (20..=60).contains(&age) && self.faker.chance(0.03) {
                special.push(*self.faker.pick(&["08", "09", "11"]));
            }
            let (cert_type, cert_no, population_type) = if self.faker.chance(0.01) {
                let permit = format!("H{:08}", self.faker.rng().random_range(0..100_000_000u32));
                ("516", permit, "3")
            } else if self.faker.chance(0.05) {
                (
                    "111",
                    person.cert_no.clone(),
                    "2", // a floating resident
                )
            } else {
                ("111", person.cert_no.clone(), "1")
            };
            let status = if self.faker.chance(0.02) { "2" } else { "1" };
            residents.push(Resident {
                id: format!("RK{}{serial:04}{:02}", self.grids[grid].code, i + 1),
                cert_type,
                cert_no,
                relation,
                marital,
                population_type,
                registered_address: if population_type == "1" {
                    registered_address.clone()
                } else {
                    String::new()
                },
                special,
                status,
                person,
            });
        }
        let location = (
            ((lng + self.faker.rng().random_range(-half..half)) * 1e6).round() / 1e6,
            ((lat + self.faker.rng().random_range(-half..half)) * 1e6).round() / 1e6,
        );
        self.households.push(Household {
            grid,
            id,
            group,
            address,
            care,
            residence,
            tags,
            phone,
            location,
            residents,
        });
        let h = self.households.len() - 1;
        self.grids[grid].households.push(h);
        h
    }

    // ---- records ----

    fn envelope(&mut self, msg_type: &str, county: usize) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("msgType".into(), json!(msg_type));
        let id: u128 = self.faker.rng().random();
        m.insert("msgId".into(), json!(format!("{id:032x}")));
        m.insert("tgdwdm".into(), json!(self.counties[county].provider));
        m
    }

    fn grid_json(&mut self, g: usize) -> Value {
        let county = self.grids[g].county;
        let mut m = self.envelope("GRID", county);
        let grid = &self.grids[g];
        let (lng, lat) = grid.centre;
        let h = grid.half;
        let r4 = |x: f64| (x * 1e4).round() / 1e4;
        let area = (2.0 * h * 111.32 * lat.to_radians().cos()) * (2.0 * h * 110.57);
        m.insert("wgbm".into(), json!(grid.code));
        m.insert("wgmc".into(), json!(grid.name));
        m.insert("wglx".into(), json!(grid.kind));
        m.insert("sqdm".into(), json!(grid.village.code()));
        if let Some(leader) = &grid.leader {
            m.insert("wgz".into(), leader.to_json());
        }
        m.insert("wgy".into(), grid.member.to_json());
        m.insert("hs".into(), json!(grid.household_count.to_string()));
        m.insert("rks".into(), json!(grid.population.to_string()));
        if grid.kind == "1" {
            m.insert(
                "wgfw".into(),
                json!(format!(
                    "POLYGON(({a} {b},{c} {b},{c} {d},{a} {d},{a} {b}))",
                    a = r4(lng - h),
                    b = r4(lat - h),
                    c = r4(lng + h),
                    d = r4(lat + h)
                )),
            );
        }
        m.insert("zxjd".into(), json!(format!("{lng:.6}")));
        m.insert("zxwd".into(), json!(format!("{lat:.6}")));
        m.insert("zbxt".into(), json!("4"));
        m.insert("mj".into(), json!(format!("{area:.3}")));
        m.insert("wgzt".into(), json!("1"));
        m.insert(
            "hdrq".into(),
            json!(grid.established.format("%Y-%m-%d").to_string()),
        );
        m.insert("gxsj".into(), json!(compact_time(self.clock)));
        Value::Object(m)
    }

    fn household_json(&mut self, h: usize) -> Value {
        let county = self.grids[self.households[h].grid].county;
        let mut m = self.envelope("HOUSEHOLD", county);
        let hh = &self.households[h];
        let grid = &self.grids[hh.grid];
        let head = hh.residents.first();
        m.insert("hhbh".into(), json!(hh.id));
        m.insert("wgbm".into(), json!(grid.code));
        m.insert("sqdm".into(), json!(grid.village.code()));
        m.insert("zz".into(), json!(hh.address));
        m.insert(
            "hzxm".into(),
            json!(head.map(|r| r.person.name.as_str()).unwrap_or_default()),
        );
        m.insert(
            "hzsfzh".into(),
            json!(head.map(|r| r.person.cert_no.as_str()).unwrap_or_default()),
        );
        m.insert("lxdh".into(), json!(hh.phone));
        m.insert(
            "jtrks".into(),
            json!(hh
                .residents
                .iter()
                .filter(|r| r.status == "1")
                .count()
                .to_string()),
        );
        m.insert("gxdj".into(), json!(hh.care));
        m.insert("rhzt".into(), json!(hh.residence));
        m.insert("hbq".into(), json!(hh.tags.join(",")));
        m.insert("jd".into(), json!(format!("{:.6}", hh.location.0)));
        m.insert("wd".into(), json!(format!("{:.6}", hh.location.1)));
        m.insert("zbxt".into(), json!("4"));
        m.insert("gxsj".into(), json!(compact_time(self.clock)));
        Value::Object(m)
    }

    fn resident_json(&mut self, h: usize, r: usize) -> Value {
        let county = self.grids[self.households[h].grid].county;
        let mut m = self.envelope("RESIDENT", county);
        let hh = &self.households[h];
        let grid = &self.grids[hh.grid];
        let Some(res) = hh.residents.get(r) else {
            return Value::Object(m);
        };
        let ethnicity = match res.person.ethnicity {
            "回族" => "03",
            "满族" => "11",
            "蒙古族" => "02",
            _ => "01",
        };
        m.insert("rybh".into(), json!(res.id));
        m.insert("zjlx".into(), json!(res.cert_type));
        m.insert("zjhm".into(), json!(res.cert_no));
        m.insert("xm".into(), json!(res.person.name));
        m.insert("xb".into(), json!(res.person.gender_code));
        m.insert("csrq".into(), json!(res.person.birth));
        m.insert("mz".into(), json!(ethnicity));
        let phone = if 2024 - birth_year(&res.person) >= 16 {
            res.person.phone.as_str()
        } else {
            ""
        };
        m.insert("lxdh".into(), json!(phone));
        m.insert("hhbh".into(), json!(hh.id));
        m.insert("yhzgx".into(), json!(res.relation));
        m.insert("hyzk".into(), json!(res.marital));
        m.insert("rklx".into(), json!(res.population_type));
        m.insert("hjdz".into(), json!(res.registered_address));
        m.insert("xzz".into(), json!(hh.address));
        m.insert("wgbm".into(), json!(grid.code));
        m.insert("sqdm".into(), json!(grid.village.code()));
        m.insert("tsrq".into(), json!(res.special));
        m.insert("ryzt".into(), json!(res.status));
        m.insert("gxsj".into(), json!(compact_time(self.clock)));
        Value::Object(m)
    }

    fn next_clean(&mut self) -> Value {
        if let Some(p) = self.pending.pop_front() {
            return match p {
                Pending::Grid(g) => self.grid_json(g),
                Pending::Household(h) => self.household_json(h),
                Pending::Resident(h, r) => self.resident_json(h, r),
            };
        }
        let roll: f64 = self.faker.rng().random();
        if roll < REGISTRY_UPDATE_SHARE && !self.households.is_empty() {
            return self.registry_update();
        }
        if self.open.is_empty()
            || (self.open.len() < MAX_OPEN_EVENTS && roll < REGISTRY_UPDATE_SHARE + NEW_EVENT_SHARE)
        {
            if let Some(e) = self.new_event() {
                self.open.push(e);
            }
        }
        if self.open.is_empty() {
            // No grid with households at all (cannot happen with real counties): a grid record instead.
            let g = self.faker.rng().random_range(0..self.grids.len().max(1));
            return if self.grids.is_empty() {
                json!({ "msgType": "GRID" })
            } else {
                self.grid_json(g)
            };
        }
        // A new event is sent at once (its report); otherwise an open event moves on by one step.
        let i = if self.open.last().is_some_and(|e| e.sent == 0) {
            self.open.len() - 1
        } else {
            self.faker.rng().random_range(0..self.open.len())
        };
        let event = &mut self.open[i];
        event.sent += 1;
        let record = render_event(event);
        if event.sent >= event.steps.len() {
            self.open.swap_remove(i);
        }
        record
    }

    /// A new version of a household (re-tagged care level), a resident (new phone, moved out) or a grid (new
    /// grid member).
    fn registry_update(&mut self) -> Value {
        let h = self.faker.rng().random_range(0..self.households.len());
        let roll: f64 = self.faker.rng().random();
        if roll < 0.6 {
            // 关心等级 is re-assessed: mostly one step towards green, sometimes up.
            let care = self.households[h].care;
            let new = match care {
                "3" => "2",
                "2" => *self.faker.pick(&["1", "3"]),
                _ => "2",
            };
            let hh = &mut self.households[h];
            hh.care = new;
            match new {
                "3" if !hh.tags.contains(&"监测户") => hh.tags.push("监测户"),
                "1" => hh.tags.retain(|t| *t == "脱贫户" || *t == "军属户"),
                _ => {}
            }
            self.household_json(h)
        } else if roll < 0.9 && !self.households[h].residents.is_empty() {
            let r = self
                .faker
                .rng()
                .random_range(0..self.households[h].residents.len());
            let phone = self.faker.phone();
            let moved = self.faker.chance(0.1);
            let res = &mut self.households[h].residents[r];
            res.person.phone = phone;
            if moved && r > 0 {
                res.status = "2";
            }
            self.resident_json(h, r)
        } else {
            let g = self.households[h].grid;
            let member = Member {
                id: self.grids[g].member.id.clone(),
                name: self.faker.name(),
                phone: self.faker.phone(),
            };
            self.grids[g].member = member;
            self.grid_json(g)
        }
    }

    fn org_code(&mut self, county: usize, org: &str) -> String {
        if let Some(c) = self.org_codes.get(org) {
            return c.clone();
        }
        let code = self.faker.uscc(&self.counties[county].code, true);
        self.org_codes.insert(org.to_owned(), code.clone());
        code
    }

    fn operator(&mut self, org: &str) -> String {
        if let Some(n) = self.staff.get(org) {
            return n.clone();
        }
        let name = self.faker.name();
        self.staff.insert(org.to_owned(), name.clone());
        name
    }

    fn pick_kind(&mut self) -> &'static EventKind {
        let mut n = self.faker.rng().random_range(0..self.total_weight.max(1));
        for k in EVENT_KINDS {
            if n < k.weight {
                return k;
            }
            n -= k.weight;
        }
        &EVENT_KINDS[0]
    }

    fn new_event(&mut self) -> Option<OpenEvent> {
        let base_grids: Vec<usize> = (0..self.grids.len())
            .filter(|g| !self.grids[*g].households.is_empty())
            .collect();
        if base_grids.is_empty() {
            return None;
        }
        let g = *self.faker.pick(&base_grids);
        let kind = self.pick_kind();
        let county = self.grids[g].county;
        let county_name = self.counties[county].name.clone();

        // Parties: residents of the grid (their household linked), or a passer-by without an ID number.
        let mut parties: Vec<Value> = Vec::new();
        let mut household_ids: Vec<String> = Vec::new();
        let mut resident_ids: Vec<String> = Vec::new();
        let mut first_household: Option<usize> = None;
        for p in 0..kind.parties {
            let stranger = p == 1 && self.faker.chance(0.3);
            if stranger {
                let person = self.faker.person();
                let phone = if self.faker.chance(0.5) {
                    person.phone
                } else {
                    String::new()
                };
                parties.push(
                    json!({ "xm": person.name, "sfzh": "", "lxdh": phone, "js": kind.roles[p] }),
                );
                continue;
            }
            let hs = self.grids[g].households.clone();
            let h = *self.faker.pick(&hs);
            let n = self.households[h].residents.len();
            if n == 0 {
                continue;
            }
            // Parties are adults (born 2006 or earlier); the head if the household has no other.
            let adults: Vec<usize> = (0..n)
                .filter(|r| birth_year(&self.households[h].residents[*r].person) <= 2006)
                .collect();
            let r = if adults.is_empty() {
                0
            } else {
                *self.faker.pick(&adults)
            };
            let res = &self.households[h].residents[r];
            let cert = if res.cert_type == "111" {
                res.cert_no.clone()
            } else {
                String::new()
            };
            parties.push(json!({
                "xm": res.person.name,
                "sfzh": cert,
                "lxdh": res.person.phone,
                "js": kind.roles[p],
            }));
            if !household_ids.contains(&self.households[h].id) {
                household_ids.push(self.households[h].id.clone());
            }
            resident_ids.push(res.id.clone());
            first_household.get_or_insert(h);
        }

        let grid = &self.grids[g];
        let group = match first_household {
            Some(h) => self.households[h].group,
            None => self.faker.rng().random_range(1..=12u32),
        };
        let place = match first_household {
            Some(h) => self.households[h].address.clone(),
            None => format!(
                "{}{}{}{group}组",
                self.counties[county].prefix, grid.town_name, grid.village_name
            ),
        };
        let village_name = grid.village_name.clone();
        let member = grid.member.clone();
        let (lng, lat) = grid.centre;
        let half = grid.half;
        let title_pattern = *self.faker.pick(kind.titles);
        let detail = *self.faker.pick(kind.details);
        let title = title_pattern
            .replace("{v}", &village_name)
            .replace("{g}", &group.to_string())
            .replace("{x}", detail);
        let reported = self.clock;
        let from_hotline = self.faker.chance(0.08);
        let note = *self.faker.pick(kind.notes);
        let description = if from_hotline {
            format!("接12345热线转办：群众反映{title}。网格员上门核实，情况属实。{note}")
        } else {
            format!(
                "{}月{}日，网格员{}巡查发现：{title}。{note}",
                reported.month(),
                reported.day(),
                member.name
            )
        };
        let mut urgency = kind.urgency;
        if self.faker.chance(0.1) {
            urgency = if urgency == "1" { "2" } else { "3" };
        }

        let date = reported.format("%Y%m%d").to_string();
        let serial = self
            .event_serials
            .entry(format!("{}{date}", self.counties[county].code))
            .or_insert(0);
        *serial = (*serial % 9999) + 1;
        let event_no = format!("SJ{}{date}{:04}", self.counties[county].code, *serial);

        let mut base = Map::new();
        base.insert("msgType".into(), json!("EVENT"));
        base.insert("msgId".into(), json!(""));
        base.insert("tgdwdm".into(), json!(self.counties[county].provider));
        base.insert("sjbh".into(), json!(event_no));
        base.insert("sjbt".into(), json!(title));
        base.insert("sjms".into(), json!(description));
        base.insert("sjlx".into(), json!(kind.code));
        base.insert("sjlxmc".into(), json!(kind.name));
        base.insert("sjdl".into(), json!(kind.category));
        base.insert("jjcd".into(), json!(urgency));
        if self.faker.chance(0.7) {
            let before = self.faker.rng().random_range(10..=720);
            base.insert("fssj".into(), json!(app_time(reported - minutes(before))));
        }
        base.insert("sbsj".into(), json!(app_time(reported)));
        base.insert("sqdm".into(), json!(self.grids[g].village.code()));
        base.insert("wgbm".into(), json!(self.grids[g].code));
        base.insert("fsdd".into(), json!(place));
        let jd = lng + self.faker.rng().random_range(-half..half);
        let wd = lat + self.faker.rng().random_range(-half..half);
        base.insert("jd".into(), json!(format!("{jd:.6}")));
        base.insert("wd".into(), json!(format!("{wd:.6}")));
        base.insert("zbxt".into(), json!("4"));
        base.insert("sbr".into(), member.to_json());
        base.insert("dsr".into(), Value::Array(parties));
        if !household_ids.is_empty() {
            base.insert("glhh".into(), json!(household_ids));
            base.insert("glry".into(), json!(resident_ids));
        }
        base.insert(
            "fjsl".into(),
            json!(self.faker.rng().random_range(0..=6u32).to_string()),
        );
        if from_hotline {
            let ticket = format!(
                "GD{date}{:06}",
                self.faker.rng().random_range(1..1_000_000u32)
            );
            base.insert("rxgdbh".into(), json!(ticket));
        }

        let steps = self.plan_steps(g, kind, &county_name, reported, from_hotline);
        Some(OpenEvent {
            base,
            steps,
            sent: 0,
        })
    }

    fn plan_steps(
        &mut self,
        g: usize,
        kind: &EventKind,
        county_name: &str,
        reported: NaiveDateTime,
        from_hotline: bool,
    ) -> Vec<Step> {
        let total: u32 = PATHS.iter().map(|(_, w)| *w).sum();
        let mut n = self.faker.rng().random_range(0..total.max(1));
        let mut path: &[&str] = PATHS[0].0;
        for (p, w) in PATHS {
            if n < *w {
                path = p;
                break;
            }
            n -= *w;
        }
        let county = self.grids[g].county;
        let grid_org = {
            let grid = &self.grids[g];
            // 三塘村第二网格: the grid's name without the town.
            grid.name
                .strip_prefix(grid.town_name.as_str())
                .unwrap_or(&grid.name)
                .to_owned()
        };
        let village_org = {
            let name = self.grids[g].village.name();
            if name.ends_with("村委会") {
                format!("{}村委会", self.grids[g].village_name)
            } else {
                name.to_owned()
            }
        };
        let town_org = format!("{}综治中心", self.grids[g].town_name);
        let town_key = self.grids[g].town_code.clone();
        let centre_org = format!("{county_name}社会治理综合服务中心");
        let department = format!("{county_name}{}", kind.department);
        let dispatched = path.contains(&"30");
        // Without a dispatch, a village handles simple events, a town the rest.
        let local_level = if !dispatched && (path.len() == 3 || self.faker.chance(0.5)) {
            "2"
        } else {
            "3"
        };
        let reporter = self.grids[g].member.name.clone();
        let mut steps: Vec<Step> = Vec::with_capacity(path.len());
        let mut at = reported;
        let mut handled_by_department = dispatched;
        for (i, stage) in path.iter().enumerate() {
            if i > 0 {
                let gap = match *stage {
                    "20" => self.faker.rng().random_range(5..=90),
                    "30" => self.faker.rng().random_range(10..=120),
                    "40" => self.faker.rng().random_range(60..=1800),
                    "50" => self.faker.rng().random_range(1440..=4320),
                    "60" => self.faker.rng().random_range(60..=1440),
                    _ => self.faker.rng().random_range(60..=2880),
                };
                at += minutes(gap);
            }
            let (level, org) = match *stage {
                "10" => ("1", grid_org.clone()),
                "20" if local_level == "2" => ("2", village_org.clone()),
                "20" => ("3", town_org.clone()),
                "30" | "50" => ("4", centre_org.clone()),
                "60" => ("4", department.clone()),
                "40" if handled_by_department => ("4", department.clone()),
                "40" | "90" if local_level == "2" => ("2", village_org.clone()),
                _ => ("3", town_org.clone()),
            };
            if *stage == "60" {
                // Returned: the town handles it itself afterwards.
                handled_by_department = false;
            }
            let org_code = match level {
                "1" | "2" => String::new(),
                "3" => {
                    let key = format!("{town_key}镇人民政府");
                    self.org_code(county, &key)
                }
                _ if org == centre_org => self.counties[county].provider.clone(),
                _ => self.org_code(county, &org),
            };
            let operator = if *stage == "10" {
                reporter.clone()
            } else {
                self.operator(&org)
            };
            let opinion = self.opinion(stage, level, &department, from_hotline);
            let due = match *stage {
                "20" | "30" | "50" => {
                    let day = (at + chrono::Duration::days(3)).date();
                    day.and_hms_opt(18, 0, 0)
                }
                _ => None,
            };
            steps.push(Step {
                stage,
                level,
                at,
                org,
                org_code,
                operator,
                opinion,
                due,
            });
        }
        steps
    }

    fn opinion(
        &mut self,
        stage: &str,
        level: &str,
        department: &str,
        from_hotline: bool,
    ) -> String {
        let pick = |f: &mut Faker, options: &[&str]| (*f.pick(options)).to_owned();
        match stage {
            "10" if from_hotline => "接12345工单转办，已上门核实，情况属实，请求处置。".to_owned(),
            "10" => pick(
                &mut self.faker,
                &[
                    "已现场核实，情况属实，先行劝导并上报。",
                    "现场拍照取证，已告知当事人等待处理结果。",
                    "已初步处置，需上级协调解决。",
                ],
            ),
            "20" if level == "2" => pick(
                &mut self.faker,
                &[
                    "已受理，由村（社区）调委会负责化解。",
                    "已受理，村两委安排专人跟进。",
                ],
            ),
            "20" => pick(
                &mut self.faker,
                &["已受理，镇综治中心牵头办理。", "已受理，报县级分流。"],
            ),
            "30" => format!("分流至{department}办理，限3个工作日内办结。"),
            "40" if level == "4" => pick(
                &mut self.faker,
                &[
                    "已安排人员现场处置，正在落实整改。",
                    "已约谈相关责任人，限期整改。",
                    "已联系相关单位上门维修。",
                ],
            ),
            "40" => pick(
                &mut self.faker,
                &[
                    "组织双方现场协商，达成初步意见。",
                    "已协调相关人员现场处理。",
                ],
            ),
            "50" => format!("已超办理时限，请{department}加快办理进度并及时反馈。"),
            "60" => "经核实，该事项不属于本单位职责范围，申请退回。".to_owned(),
            _ => pick(
                &mut self.faker,
                &[
                    "问题已解决，经回访群众满意，予以结案。",
                    "经调解双方达成一致，签订调解协议，结案。",
                    "整改完成，现场复核无误，结案。",
                ],
            ),
        }
    }

    // ---- malformations ----

    fn malform(&mut self, record: &mut Value, which: Malformation) {
        let Some(m) = record.as_object_mut() else {
            return;
        };
        let msg_type = m
            .get("msgType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match which {
            Malformation::BadIdentifier => self.break_identifier(m, &msg_type),
            Malformation::MissingField => {
                let required: &[&str] = match msg_type.as_str() {
                    "EVENT" => &[
                        "sjbh", "sbsj", "sqdm", "wgbm", "lcjl", "sjzt", "sbr", "gxsj",
                    ],
                    "HOUSEHOLD" => &["hhbh", "gxdj", "hzsfzh", "wgbm", "gxsj"],
                    "RESIDENT" => &["rybh", "zjhm", "xm", "hhbh", "gxsj"],
                    _ => &["wgbm", "wgmc", "wgy", "gxsj"],
                };
                let key = *self.faker.pick(required);
                m.remove(key);
            }
            Malformation::GarbageDate => {
                let year = self.clock.year();
                match msg_type.as_str() {
                    "EVENT" => {
                        let garbage = [
                            format!("{year}/2/30 9:21"),
                            format!("{year}/6/31 14:05"),
                            format!("{year}/13/2 8:40"),
                            format!("{year}/7/9 25:10"),
                            "上午9点20分".to_owned(),
                            "0000/00/00 00:00".to_owned(),
                        ];
                        let g = self.faker.pick(&garbage).clone();
                        m.insert("sbsj".into(), json!(g));
                    }
                    "RESIDENT" => {
                        let birth = m
                            .get("csrq")
                            .and_then(Value::as_str)
                            .and_then(|s| s.get(..4))
                            .unwrap_or("1970")
                            .to_owned();
                        let bad = *self.faker.pick(&["0230", "0431", "1301", "0000"]);
                        m.insert("csrq".into(), json!(format!("{birth}{bad}")));
                    }
                    "GRID" => {
                        let bad = *self.faker.pick(&["2017-02-30", "2018-13-01", "2019-04-31"]);
                        m.insert("hdrq".into(), json!(bad));
                    }
                    _ => {
                        // `gxsj` keeps its 14-digit shape (the contract passes) but names no real instant.
                        let t = compact_time(self.clock);
                        let bad = format!(
                            "{}13{}",
                            t.get(..4).unwrap_or("2024"),
                            t.get(6..).unwrap_or("01000000")
                        );
                        m.insert("gxsj".into(), json!(bad));
                    }
                }
            }
            Malformation::UnknownCode => match msg_type.as_str() {
                "EVENT" => match self.faker.rng().random_range(0..4) {
                    0 => {
                        m.insert("sjdl".into(), json!("42"));
                    }
                    1 => {
                        m.insert("jjcd".into(), json!("7"));
                    }
                    2 => {
                        m.insert("sjzt".into(), json!("70"));
                    }
                    _ => {
                        if let Some(last) = m
                            .get_mut("lcjl")
                            .and_then(Value::as_array_mut)
                            .and_then(|a| a.last_mut())
                            .and_then(Value::as_object_mut)
                        {
                            last.insert("hj".into(), json!("35"));
                        }
                    }
                },
                "HOUSEHOLD" => {
                    let bad = *self.faker.pick(&["0", "4", "5", "9"]);
                    m.insert("gxdj".into(), json!(bad));
                }
                "RESIDENT" => {
                    if self.faker.chance(0.5) {
                        m.insert("mz".into(), json!("60"));
                    } else {
                        m.insert("yhzgx".into(), json!("65"));
                    }
                }
                _ => {
                    m.insert("wglx".into(), json!("9"));
                }
            },
            Malformation::UnknownMsgType => {
                let t = *self.faker.pick(UNMAPPED_MSG_TYPES);
                m.insert("msgType".into(), json!(t));
            }
        }
    }

    fn break_identifier(&mut self, m: &mut Map<String, Value>, msg_type: &str) {
        let cert_key: Option<&str> = match msg_type {
            "HOUSEHOLD" => Some("hzsfzh"),
            "RESIDENT" if m.get("zjlx").and_then(Value::as_str) == Some("111") => Some("zjhm"),
            _ => None,
        };
        if let Some(key) = cert_key {
            if let Some(cert) = m.get(key).and_then(Value::as_str).map(str::to_owned) {
                let broken = self.faker.corrupt_cert_no(&cert);
                m.insert(key.into(), json!(broken));
                return;
            }
        }
        if msg_type == "EVENT" {
            let party = m
                .get_mut("dsr")
                .and_then(Value::as_array_mut)
                .and_then(|ps| {
                    ps.iter_mut().find(|p| {
                        p.get("sfzh")
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                    })
                });
            if let Some(p) = party {
                let cert = p
                    .get("sfzh")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let broken = self.faker.corrupt_cert_no(&cert);
                p["sfzh"] = json!(broken);
                return;
            }
        }
        // No ID number on this record: a grid code with serial 000 (validator(grid_code)).
        if let Some(code) = m.get("wgbm").and_then(Value::as_str) {
            let village = code.get(..12).unwrap_or(code).to_owned();
            m.insert("wgbm".into(), json!(format!("{village}000")));
        }
    }
}

/// An event as sent after its `sent` first steps: the fixed fields, the steps so far, the state of the last.
fn render_event(e: &OpenEvent) -> Value {
    let mut m = e.base.clone();
    let steps = &e.steps[..e.sent.min(e.steps.len())];
    m.insert(
        "lcjl".into(),
        Value::Array(steps.iter().map(Step::to_json).collect()),
    );
    if let Some(last) = steps.last() {
        m.insert("sjzt".into(), json!(last.stage));
        m.insert("czcj".into(), json!(last.level));
        m.insert("gxsj".into(), json!(compact_time(last.at)));
        if last.stage == "90" {
            m.insert("jasj".into(), json!(app_time(last.at)));
        }
    }
    // The message id differs per push of the same event.
    let id = format!(
        "{}{:02}",
        m.get("sjbh").and_then(Value::as_str).unwrap_or_default(),
        e.sent
    );
    m.insert("msgId".into(), json!(id));
    Value::Object(m)
}

/// The first `count` records of a generator with this seed, counties and malformed share — for tests and
/// benchmarks that want the grid dialect without HTTP.
pub fn generate(
    seed: u64,
    counties: &[&str],
    malformed_share: f64,
    count: usize,
) -> Vec<GeneratedRecord> {
    GridGenerator::new(seed, counties, malformed_share).next_batch(count)
}

// ---------------------------------------------------------------------------------------------------------------
// Pushing to the hub
// ---------------------------------------------------------------------------------------------------------------

/// The hub's answer to one push, as far as the simulator reads it.
#[derive(Debug, Default, Deserialize)]
struct IngestAnswer {
    #[serde(default)]
    accepted: Option<u64>,
    #[serde(default)]
    rejected: Option<u64>,
    #[serde(default)]
    results: Vec<IngestResult>,
}

#[derive(Debug, Deserialize)]
struct IngestResult {
    #[serde(default)]
    index: Option<usize>,
    status: String,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    error: Option<IngestError>,
}

#[derive(Debug, Deserialize)]
struct IngestError {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    code: String,
}

impl Stats {
    /// Adds the hub's answer for one batch.
    fn absorb(&mut self, status: u16, body: &[u8], batch: &[GeneratedRecord]) -> Result<(), Error> {
        let answer: IngestAnswer = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(_) if status == 200 => IngestAnswer::default(),
            Err(e) => return Err(Error::BadAnswer(format!("HTTP {status}: {e}"))),
        };
        self.requests += 1;
        self.malformed_sent += batch.iter().filter(|r| r.malformation.is_some()).count() as u64;
        if answer.results.is_empty() {
            // No per-record results: trust the totals, or (200) take every record as accepted.
            let accepted =
                answer
                    .accepted
                    .unwrap_or(if status == 200 { batch.len() as u64 } else { 0 });
            let rejected = answer
                .rejected
                .unwrap_or((batch.len() as u64).saturating_sub(accepted));
            self.accepted += accepted;
            self.rejected += rejected;
            self.sent += accepted + rejected;
            return Ok(());
        }
        for (position, result) in answer.results.iter().enumerate() {
            let index = result.index.unwrap_or(position);
            let malformed = batch.get(index).and_then(|r| r.malformation).is_some();
            self.sent += 1;
            if result.status == "accepted" {
                self.accepted += 1;
                if malformed {
                    self.malformed_accepted += 1;
                }
                let schema = result.schema.clone().unwrap_or_else(|| "unknown".into());
                *self.accepted_by_schema.entry(schema).or_insert(0) += 1;
            } else {
                self.rejected += 1;
                if !malformed {
                    self.unexpected_rejections += 1;
                }
                let reason = result.error.as_ref().map_or_else(
                    || "unknown".to_owned(),
                    |e| format!("{}/{}", e.stage, e.code),
                );
                *self.rejected_by_reason.entry(reason).or_insert(0) += 1;
            }
        }
        Ok(())
    }
}

/// POSTs one batch, retrying on 5xx, 408, 429 and connection errors with exponential backoff.
/// `Ok(None)`: shutdown was requested while waiting to retry.
async fn post_with_retry(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
    shutdown: &mut Shutdown,
    stats: &mut Stats,
) -> Result<Option<(u16, Vec<u8>)>, Error> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let sent = client
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let failure = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200 | 207 | 422 => {
                        return match response.bytes().await {
                            Ok(b) => Ok(Some((status, b.to_vec()))),
                            Err(e) => Err(Error::BadAnswer(format!(
                                "HTTP {status}: cannot read the body: {e}"
                            ))),
                        };
                    }
                    401 | 403 => return Err(Error::Unauthorized { status }),
                    408 | 429 | 500..=599 => format!("HTTP {status}"),
                    _ => {
                        let text = response.text().await.unwrap_or_default();
                        let message: String = text.chars().take(300).collect();
                        return Err(Error::Refused { status, message });
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(Error::Unavailable {
                attempts: attempt,
                last: failure,
            });
        }
        warn!(
            attempt,
            retry_in_ms = backoff.as_millis() as u64,
            error = %failure,
            "Push failed, retrying."
        );
        stats.retries += 1;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(None),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs the simulator: POSTs generated records to `{hub_url}/ingest/grid` at `rate` records per second in
/// batches of `batch_size`, until `limit` records were answered for or `shutdown` fires. Returns what the hub
/// answered; fails on a refused token, a refused request or a hub that stays unavailable through the retries.
pub async fn run(options: GridSimulatorOptions, mut shutdown: Shutdown) -> Result<Stats, Error> {
    options.validate()?;
    let counties: Vec<&str> = options.counties.iter().map(String::as_str).collect();
    let mut generator = GridGenerator::new(options.seed, &counties, options.malformed_share);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Client(e.to_string()))?;
    let url = format!(
        "{}/ingest/{CONNECTOR}",
        options.hub_url.trim_end_matches('/')
    );
    info!(url = %url, rate = options.rate, malformed_share = options.malformed_share, seed = options.seed, "Grid simulator started.");
    let started = Instant::now();
    let mut last_log = started;
    let mut generated: u64 = 0;
    let mut stats = Stats::default();
    loop {
        if shutdown.is_requested() {
            break;
        }
        let room = options
            .limit
            .map_or(u64::MAX, |l| l.saturating_sub(generated));
        if room == 0 {
            break;
        }
        let n = (options.batch_size as u64).min(room) as usize;
        if options.rate > 0.0 {
            // The batch goes out when the records before it have had their time at the configured rate.
            let due = started + Duration::from_secs_f64(generated as f64 / options.rate);
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = shutdown.wait() => break,
            }
        }
        let batch = generator.next_batch(n);
        generated += n as u64;
        let body = match batch.as_slice() {
            [one] => serde_json::to_vec(&one.record),
            many => serde_json::to_vec(&many.iter().map(|r| &r.record).collect::<Vec<_>>()),
        }
        .map_err(|e| Error::BadAnswer(format!("cannot encode the batch: {e}")))?;
        let Some((status, answer)) = post_with_retry(
            &client,
            &url,
            &options.token,
            body,
            &mut shutdown,
            &mut stats,
        )
        .await?
        else {
            break;
        };
        stats.absorb(status, &answer, &batch)?;
        if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            info!(
                sent = stats.sent,
                accepted = stats.accepted,
                rejected = stats.rejected,
                malformed = stats.malformed_sent,
                unexpected_rejections = stats.unexpected_rejections,
                records_per_s = format!("{:.1}", stats.sent as f64 / secs),
                "Grid simulator progress."
            );
        }
    }
    info!(
        sent = stats.sent,
        accepted = stats.accepted,
        rejected = stats.rejected,
        retries = stats.retries,
        elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
        "Grid simulator finished."
    );
    Ok(stats)
}
