//! Simulator of the 12345 government service hotline's work-order API, which the hub polls.
//!
//! It *serves* the API itself (axum), the way the hotline vendor's system does:
//!
//! ```text
//! GET /api/workorders?updatedSince=20240914092100&pageSize=100      (header X-Api-Key when a key is set)
//! → 200 {"code": 0, "msg": "成功", "data": {"items": [ <work order>, … ]}}
//! ```
//!
//! Items are the tickets whose update time `gxsj` is at or after `updatedSince` (inclusive, as the `updated_since`
//! cursor of [`HttpPollSource`](unsilo_connectors::transport::http_poll::HttpPollSource) requires), oldest first, each
//! ticket in its current version only. Without `updatedSince` the API starts from the oldest ticket.
//!
//! Tickets are created at `rate` per second and then live on a simulated clock that runs `time_scale` times faster
//! than the wall clock: registration, dispatch to a lead unit (and sometimes an assisting town), signing,
//! sometimes a return and re-dispatch (退单改派) or a refused return, sometimes an extension request (延期),
//! completion (办结), a callback with the caller's satisfaction (回访) and archiving. Every change rewrites the
//! ticket with a new `gxsj` (at least one second after the previous one), so ticket number + `gxsj` names one
//! version. A `malformed_share` of tickets carry one defect in every version (content missing, call time in the
//! wrong format or on an impossible date, an unknown appeal type code, an unknown region code), so they end on the
//! dead-letter topic.
//!
//! The raw format is documented in `connectors/builtin/hotline12345/README.md`. [`WorkOrderGenerator`] is the
//! same generator without HTTP, deterministic for a seed and a start time, for tests and benchmarks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset};
use rand::Rng;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tracing::info;
use unsilo_schemas::validate::{Region, RegionLevel, RegionTable};

use super::clock::{
    beijing, close_of_business, floor_second, format_with, wall_clock_ms, DAY, HOUR, MINUTE, SECOND,
};
use super::fake::{Faker, DEFAULT_COUNTIES};
use unsilo_connectors::sdk::Shutdown;

/// The time format of every time field: `yyyyMMddHHmmss`.
const TIME_FORMAT: &str = "%Y%m%d%H%M%S";
/// The largest page the API returns (larger `pageSize` values are cut to it).
const MAX_PAGE_SIZE: usize = 5_000;
/// Who answers consultations directly and completes them (直接答复办结).
const HOTLINE_UNIT: &str = "陕西省12345政务服务便民热线";

// ---------------------------------------------------------------------------------------------------------------
// Options, statistics, errors
// ---------------------------------------------------------------------------------------------------------------

/// Options of the 12345 hotline simulator.
#[derive(Clone, Debug)]
pub struct Hotline12345Options {
    /// Where [`run`] serves the work-order API, e.g. `127.0.0.1:18345`.
    pub addr: SocketAddr,
    /// New tickets per (wall-clock) second.
    pub rate: f64,
    /// Share of tickets with a defect in every version, from 0.0 to 1.0.
    pub malformed_share: f64,
    /// Seed of the random generator: the same seed and start give the same tickets.
    pub seed: u64,
    /// Stop creating tickets after this many (those created live on to the end of their life).
    pub limit: Option<u64>,
    /// Simulated seconds per wall-clock second. At 1440 a simulated day passes in a minute, and a ticket's life
    /// of a few days in a few minutes.
    pub time_scale: f64,
    /// The simulated time at which the run starts; `None` for the wall clock at start.
    pub start: Option<DateTime<FixedOffset>>,
    /// When set, every request must carry this key in an `X-Api-Key` header (401 otherwise).
    pub api_key: Option<String>,
    /// 6-digit codes of the counties the tickets come from (unknown ones are ignored).
    pub counties: Vec<String>,
}

impl Default for Hotline12345Options {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 18345)),
            rate: 1.0,
            malformed_share: 0.02,
            seed: 12345,
            limit: None,
            time_scale: 1440.0,
            start: None,
            api_key: None,
            counties: DEFAULT_COUNTIES.iter().map(|c| (*c).to_owned()).collect(),
        }
    }
}

/// What a simulator run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tickets created.
    pub tickets: u64,
    /// Of which malformed.
    pub malformed_tickets: u64,
    /// Ticket versions that became visible on the API.
    pub versions: u64,
    /// API requests answered (including refused ones).
    pub requests: u64,
}

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options cannot work.
    #[error("invalid 12345 simulator options: {0}")]
    Options(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The HTTP server failed.
    #[error("12345 work-order API server failed: {0}")]
    Serve(String),
}

use crate::options::{clamped, within, SHARE};

/// The slowest and fastest rates (per second) and time scales the simulator takes.
const RATE_RANGE: (f64, f64) = (0.001, 100_000.0);
const TIME_SCALE_RANGE: (f64, f64) = (0.001, 10_000_000.0);

fn check(options: &Hotline12345Options) -> Result<(), Error> {
    within("rate", options.rate, RATE_RANGE).map_err(Error::Options)?;
    within("malformed_share", options.malformed_share, SHARE).map_err(Error::Options)?;
    within("time_scale", options.time_scale, TIME_SCALE_RANGE).map_err(Error::Options)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------------------------

/// Epoch milliseconds as `yyyyMMddHHmmss` in Beijing time.
fn format_time(ms: i64) -> String {
    format_with(ms, TIME_FORMAT)
}

fn to_ms(time: &DateTime<FixedOffset>) -> i64 {
    time.timestamp_millis()
}

// ---------------------------------------------------------------------------------------------------------------
// What callers ring about
// ---------------------------------------------------------------------------------------------------------------

/// The units tickets are dispatched to, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dept {
    Housing,
    CityManagement,
    HumanResources,
    CivilAffairs,
    MarketRegulation,
    Police,
    Ecology,
    Transport,
    Water,
    MedicalInsurance,
    /// The town (镇) or street (街道) government of the place.
    Town,
}

const DEPTS: [Dept; 10] = [
    Dept::Housing,
    Dept::CityManagement,
    Dept::HumanResources,
    Dept::CivilAffairs,
    Dept::MarketRegulation,
    Dept::Police,
    Dept::Ecology,
    Dept::Transport,
    Dept::Water,
    Dept::MedicalInsurance,
];

/// A kind of appeal: its category, how it comes in, who handles it, and what is said.
struct Topic {
    /// Relative frequency.
    weight: u32,
    /// 诉求分类代码.
    code: &'static str,
    /// 诉求分类名称.
    category: &'static str,
    /// The 诉求类型 codes it comes as (`1` 咨询 … `6` 表扬), one picked uniformly.
    kinds: &'static [&'static str],
    /// The lead unit.
    lead: Dept,
    /// Whether the town or street government assists (协办).
    town_assists: bool,
    /// Whether the grid platform may get it as a grid event (something on the ground).
    on_site: bool,
    /// Chance the agent answers it directly (直接答复), without dispatch.
    direct: f64,
    /// Chance it is urgent.
    urgent: f64,
    titles: &'static [&'static str],
    contents: &'static [&'static str],
    /// Completion replies: (解决情况 code, text).
    replies: &'static [(&'static str, &'static str)],
}

const TOPICS: &[Topic] = &[
    Topic {
        weight: 12,
        code: "0601",
        category: "生态环境/噪声污染",
        kinds: &["3", "3", "2"],
        lead: Dept::Housing,
        town_assists: true,
        on_site: true,
        direct: 0.0,
        urgent: 0.1,
        titles: &["{place}附近工地夜间施工噪音扰民", "反映{town}某工地违规夜间施工"],
        contents: &[
            "来电人反映：{town}{place}附近一处在建工地连续{days}天晚上十点以后仍在施工，搅拌机和打桩机声音很大，周边居民无法休息，诉求相关部门核实并制止夜间违规施工。",
            "来电人反映：{county}{town}{place}旁边的工地凌晨还在浇筑混凝土，噪音扰民严重，家中老人孩子睡不好觉，此前已向工地反映无果，诉求处理。",
        ],
        replies: &[
            ("1", "经现场核查，该工地确有夜间违规施工行为，已责令其停止22时至次日6时的高噪声作业，并对施工单位约谈，后续将加强夜间巡查。"),
            ("2", "经核实，该工地因混凝土连续浇筑工艺需要办理了夜间施工许可，已要求其采取降噪措施并提前公示，对超时作业予以制止。"),
        ],
    },
    Topic {
        weight: 8,
        code: "0602",
        category: "社会治安/噪声扰民",
        kinds: &["3"],
        lead: Dept::Police,
        town_assists: false,
        on_site: true,
        direct: 0.0,
        urgent: 0.05,
        titles: &["{place}广场舞音响音量过大扰民", "{place}沿街商铺高音喇叭噪音扰民"],
        contents: &[
            "来电人反映：{town}{place}广场每晚有人跳广场舞到22点以后，音响音量过大，严重影响周边居民休息，多次劝说无效，诉求相关部门协调处理。",
            "来电人反映：{place}沿街一家商铺每天用大功率音箱循环播放促销广告，从早到晚噪音不断，诉求处理。",
        ],
        replies: &[
            ("1", "辖区派出所民警已到场劝导，活动组织者同意将音量调低并在21时30分前结束，社区将持续跟进。"),
            ("1", "经民警现场处置，已责令该商铺停止使用高音喇叭，商户表示配合整改。"),
        ],
    },
    Topic {
        weight: 10,
        code: "0402",
        category: "城市管理/市政设施",
        kinds: &["2", "3"],
        lead: Dept::CityManagement,
        town_assists: true,
        on_site: true,
        direct: 0.0,
        urgent: 0.05,
        titles: &["{place}路段多盏路灯不亮", "反映{town}{place}路灯损坏无人维修"],
        contents: &[
            "来电人反映：{town}{place}路段约{n}盏路灯已损坏不亮{days}天，晚上路面漆黑，老人孩子出行存在安全隐患，诉求尽快维修。",
            "来电人反映：{county}{town}{place}主干道路灯时亮时不亮，已经持续半个多月，诉求相关部门检修。",
        ],
        replies: &[
            ("1", "经排查系线路老化导致短路，维修人员已更换电缆及损坏灯具，该路段路灯已全部恢复照明。"),
            ("1", "已安排路灯维护单位现场检修，更换灯头{n}个，现已恢复正常。"),
        ],
    },
    Topic {
        weight: 9,
        code: "0701",
        category: "劳动保障/拖欠工资",
        kinds: &["3", "2"],
        lead: Dept::HumanResources,
        town_assists: false,
        on_site: false,
        direct: 0.0,
        urgent: 0.35,
        titles: &["反映某建筑工地拖欠农民工工资", "反映{county}某公司拖欠工资"],
        contents: &[
            "来电人反映：其在{town}某建筑工地务工，承包方拖欠其及{n}名工友{months}个月工资共计约{amount}万元，多次讨要未果，诉求协调尽快支付。",
            "来电人反映：其原在{county}一家商贸公司上班，离职已{months}个月，公司一直拖欠最后两个月工资，负责人电话不接，诉求帮助追讨。",
        ],
        replies: &[
            ("1", "经劳动保障监察大队调查核实，已责令用人单位限期支付，来电人反映的欠薪款项已于近日全部发放到位。"),
            ("2", "已约谈施工总承包单位，督促其从农民工工资专用账户先行垫付部分工资，剩余款项承诺于月底前结清，监察大队将跟踪督办。"),
            ("4", "经核实，双方对工资数额存在争议，已告知来电人可向县劳动人事争议仲裁委员会申请仲裁，并提供法律援助渠道。"),
        ],
    },
    Topic {
        weight: 7,
        code: "0801",
        category: "民政/社会救助",
        kinds: &["1", "2"],
        lead: Dept::CivilAffairs,
        town_assists: true,
        on_site: false,
        direct: 0.25,
        urgent: 0.05,
        titles: &["咨询并申请城乡居民最低生活保障", "咨询低保申请条件和材料"],
        contents: &[
            "来电人反映：家住{town}{place}，丈夫去年因病去世，儿子在外打工收入不稳定，家中生活困难，想申请低保，不知道该找哪个部门、需要准备哪些材料，请求帮助。",
            "来电人咨询：本人患有慢性病需长期服药，无固定收入，想了解城乡居民最低生活保障的申请条件和办理流程。",
        ],
        replies: &[
            ("1", "经核实，已联系{town}民政办工作人员上门指导，来电人已提交低保申请书、身份证、户口簿及收入证明，镇政府正在入户调查，审核结果将于20个工作日内告知。"),
            ("4", "已向来电人解释低保申请条件：家庭人均收入低于当地低保标准且财产状况符合规定，可向户籍所在地镇政府（街道办）提出申请，也可通过秦务员APP在线申请。"),
        ],
    },
    Topic {
        weight: 8,
        code: "0305",
        category: "城乡建设/物业管理",
        kinds: &["3"],
        lead: Dept::Housing,
        town_assists: true,
        on_site: false,
        direct: 0.0,
        urgent: 0.3,
        titles: &["{place}某小区电梯频繁故障无人维修", "反映{place}小区物业不作为"],
        contents: &[
            "来电人反映：{town}{place}某小区{n}号楼电梯近一个月多次停运，曾发生困人，物业以维修资金未到位为由推诿，诉求尽快维修并排查安全隐患。",
            "来电人反映：{place}某小区物业长期不清理楼道垃圾，地下车库积水无人管，业主多次反映未果，诉求相关部门督促物业履职。",
        ],
        replies: &[
            ("1", "经核查，已督促物业启用专项维修资金更换电梯主板，电梯已恢复运行并经特种设备检验合格。"),
            ("2", "已约谈物业公司负责人，要求其限期清理楼道垃圾、排除车库积水，并纳入物业服务考核，后续将组织回头看。"),
        ],
    },
    Topic {
        weight: 6,
        code: "0302",
        category: "城乡建设/供水",
        kinds: &["2", "3"],
        lead: Dept::Water,
        town_assists: false,
        on_site: true,
        direct: 0.0,
        urgent: 0.5,
        titles: &["{place}突然停水未提前通知", "反映{place}自来水水压低"],
        contents: &[
            "来电人反映：{town}{place}自昨日起停水，未见任何停水通知，家中老人做饭饮水困难，诉求尽快恢复供水并说明原因。",
            "来电人反映：{place}一带近期自来水水压很低，高层住户基本无水可用，诉求排查解决。",
        ],
        replies: &[
            ("1", "经查系主管道爆裂抢修所致，供水已于当日恢复，已要求供水单位今后停水须提前24小时公告。"),
            ("1", "已对该区域二次加压泵站进行检修，水压已恢复正常。"),
        ],
    },
    Topic {
        weight: 7,
        code: "0401",
        category: "城市管理/市容环境",
        kinds: &["3"],
        lead: Dept::CityManagement,
        town_assists: true,
        on_site: true,
        direct: 0.0,
        urgent: 0.0,
        titles: &["{place}早市占道经营堵塞交通", "反映{town}{place}路口流动摊贩占道"],
        contents: &[
            "来电人反映：{town}{place}路口每天早上6点到9点有大量摊贩占道经营，车辆无法通行，垃圾遍地，多次反映未见改善，诉求规范管理。",
        ],
        replies: &[
            ("2", "已联合城管中队每日早间巡查，劝离占道摊贩，并协调在附近空地设置临时疏导点，后续将持续巡查。"),
            ("1", "已对占道摊贩进行清理规范，设置便民疏导点，该路口通行已恢复正常。"),
        ],
    },
    Topic {
        weight: 5,
        code: "0901",
        category: "市场监管/食品安全",
        kinds: &["4", "3"],
        lead: Dept::MarketRegulation,
        town_assists: false,
        on_site: false,
        direct: 0.0,
        urgent: 0.1,
        titles: &["举报{place}某小餐馆后厨卫生脏乱", "反映{town}某超市销售过期食品"],
        contents: &[
            "来电人举报：{town}{place}附近一家小餐馆后厨苍蝇多、生熟不分，员工无健康证，诉求市场监管部门检查。",
            "来电人反映：其在{town}某超市购买的牛奶已过保质期{days}天，与超市协商未果，诉求处理。",
        ],
        replies: &[
            ("1", "执法人员已对该经营户进行检查，责令其限期整改后厨卫生、补办从业人员健康证明，并依法立案调查。"),
            ("1", "经调解，超市已按规定向来电人退一赔十，执法人员对该超市下架过期食品并立案查处。"),
        ],
    },
    Topic {
        weight: 7,
        code: "1001",
        category: "医疗保障/参保缴费",
        kinds: &["1"],
        lead: Dept::MedicalInsurance,
        town_assists: false,
        on_site: false,
        direct: 0.7,
        urgent: 0.0,
        titles: &["咨询城乡居民医保缴费方式", "咨询异地就医备案办理"],
        contents: &[
            "来电人咨询：{year}年度城乡居民医保个人缴费标准是多少，能否通过秦务员APP缴费，缴费截止时间是什么时候。",
            "来电人咨询：家中老人长期在外地随子女居住，看病如何办理异地就医备案，报销比例是否有变化。",
        ],
        replies: &[
            ("4", "已依据知识库答复：可通过秦务员APP或“陕西税务”微信公众号缴纳城乡居民医保，集中缴费期为每年9月至12月。"),
            ("4", "已答复：异地长期居住人员可通过国家医保服务平台APP或秦务员APP办理异地就医备案，备案后在就医地定点医院直接结算。"),
        ],
    },
    Topic {
        weight: 6,
        code: "1101",
        category: "交通运输/道路养护",
        kinds: &["3", "2"],
        lead: Dept::Transport,
        town_assists: true,
        on_site: true,
        direct: 0.0,
        urgent: 0.15,
        titles: &["{place}通村道路坑槽多通行困难", "反映{town}至县城公路破损"],
        contents: &[
            "来电人反映：{town}{place}通村道路有多处坑槽，雨天积水，车辆通行困难，已有电动车摔倒，诉求尽快修补。",
        ],
        replies: &[
            ("1", "公路养护站已对该路段坑槽进行修补，共修补路面约{n}0平方米，现已恢复正常通行。"),
            ("2", "已对危险坑槽进行临时修补并设置警示标志，该路段已列入年度大中修计划。"),
        ],
    },
    Topic {
        weight: 6,
        code: "0403",
        category: "城市管理/环境卫生",
        kinds: &["3"],
        lead: Dept::Town,
        town_assists: false,
        on_site: true,
        direct: 0.0,
        urgent: 0.05,
        titles: &["{place}垃圾收集点多日无人清运"],
        contents: &[
            "来电人反映：{town}{place}垃圾收集点已经{days}天无人清运，垃圾堆积散发异味，诉求尽快清运。",
        ],
        replies: &[
            ("1", "已安排环卫人员当日清运，并要求保洁公司固定每日清运时间，镇上将加强督查。"),
        ],
    },
    Topic {
        weight: 3,
        code: "1102",
        category: "交通运输/公共交通",
        kinds: &["5"],
        lead: Dept::Transport,
        town_assists: false,
        on_site: false,
        direct: 0.0,
        urgent: 0.0,
        titles: &["建议增加{town}至县城公交班次"],
        contents: &[
            "来电人建议：{town}至{county}城区的公交班次太少，早晚高峰一车难求，建议增加班次或延长运营时间。",
        ],
        replies: &[
            ("4", "感谢您的建议。已将该线路早晚高峰班次由每30分钟一班调整为每20分钟一班，后续将根据客流继续优化。"),
        ],
    },
    Topic {
        weight: 2,
        code: "1201",
        category: "其他/表扬",
        kinds: &["6"],
        lead: Dept::Town,
        town_assists: false,
        on_site: false,
        direct: 1.0,
        urgent: 0.0,
        titles: &["表扬{place}网格员热心帮助群众"],
        contents: &[
            "来电人表扬：{town}{place}网格员在其家中老人突发疾病时及时联系救护车并陪同送医，特致电表示感谢。",
        ],
        replies: &[("1", "已记录来电人的表扬意见，转{town}知悉。")],
    },
];

/// Reasons a unit gives for an extension (延期).
const EXTENSION_REASONS: &[&str] = &[
    "需协调多个部门现场会商，申请延期办理。",
    "涉及资金审批流程，需延长办理时限。",
    "需等待第三方检测结果，申请延期。",
    "当事人外出务工联系不上，需延期核实。",
];

/// Callback comments by satisfaction code.
const COMMENTS: &[(&str, &[&str])] = &[
    ("1", &["问题已经解决了，谢谢。", "处理很及时，满意。", ""]),
    (
        "2",
        &["基本解决了，希望后续保持。", "处理了，但是时间有点长。"],
    ),
    (
        "3",
        &[
            "问题没有实际解决。",
            "只是打电话解释，没人到现场看。",
            "巡查那几天好了，现在又恢复原样了。",
        ],
    ),
];

/// Intake channels (受理渠道) with weights: mostly phone.
const CHANNELS: &[(&str, u32)] = &[("1", 70), ("2", 5), ("3", 8), ("4", 10), ("6", 2), ("7", 5)];

// ---------------------------------------------------------------------------------------------------------------
// Units of a county
// ---------------------------------------------------------------------------------------------------------------

/// A unit tickets are dispatched to.
#[derive(Clone, Debug)]
struct Unit {
    name: String,
    uscc: String,
}

/// The handling units of one county, made once per county.
#[derive(Debug)]
struct CountyUnits {
    /// e.g. 汉阴县.
    name: String,
    /// The landline area code, for callers ringing from a fixed line.
    area_code: &'static str,
    depts: Vec<(Dept, Unit)>,
    /// Town and street governments by 12-digit town code.
    towns: BTreeMap<String, Unit>,
}

impl CountyUnits {
    fn new(faker: &mut Faker, county: &str) -> Self {
        let table = RegionTable::shaanxi();
        let name = table.name(county).unwrap_or("本县").to_owned();
        let city = table
            .get(county)
            .and_then(Region::parent_code)
            .and_then(|c| table.name(c))
            .unwrap_or("")
            .to_owned();
        let short = name.trim_end_matches(['县', '区']).to_owned();
        let district = name.ends_with('区');
        let area_code = if county.starts_with("6109") {
            "0915"
        } else {
            "029"
        };
        let depts = DEPTS
            .iter()
            .map(|d| {
                let unit_name = match d {
                    Dept::Housing => format!("{name}住房和城乡建设局"),
                    Dept::CityManagement => format!("{name}城市管理和综合执法局"),
                    Dept::HumanResources => format!("{name}人力资源和社会保障局"),
                    Dept::CivilAffairs => format!("{name}民政局"),
                    Dept::MarketRegulation => format!("{name}市场监督管理局"),
                    Dept::Police if district => format!("{city}公安局{short}分局"),
                    Dept::Police => format!("{name}公安局"),
                    Dept::Ecology => format!("{city}生态环境局{short}分局"),
                    Dept::Transport => format!("{name}交通运输局"),
                    Dept::Water if district => format!("{name}水务局"),
                    Dept::Water => format!("{name}水利局"),
                    Dept::MedicalInsurance => format!("{name}医疗保障局"),
                    Dept::Town => format!("{name}人民政府"),
                };
                (
                    *d,
                    Unit {
                        name: unit_name,
                        uscc: faker.uscc(county, true),
                    },
                )
            })
            .collect();
        let towns = table
            .children(county)
            .filter(|t| t.level() == RegionLevel::Town)
            .map(|t| {
                let suffix = if t.name().ends_with("街道") {
                    "办事处"
                } else {
                    "人民政府"
                };
                (
                    t.code().to_owned(),
                    Unit {
                        name: format!("{name}{}{suffix}", t.name()),
                        uscc: faker.uscc(county, true),
                    },
                )
            })
            .collect();
        Self {
            name,
            area_code,
            depts,
            towns,
        }
    }

    fn unit(&self, dept: Dept, town: &str) -> Option<Unit> {
        match dept {
            Dept::Town => self.towns.get(town).cloned(),
            d => self
                .depts
                .iter()
                .find(|(k, _)| *k == d)
                .map(|(_, u)| u.clone()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------------

/// What is wrong with a malformed ticket (the same in each of its versions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Defect {
    /// `sqnr` left out: the contract rejects it.
    MissingContent,
    /// `ldsj` written `2024-09-14 09:21:00`: the contract rejects it.
    DashedCallTime,
    /// `ldsj` on 30 February: the mapping rejects it (`bad_datetime`).
    ImpossibleCallDate,
    /// `sqlx` = `9`: the mapping rejects it (`bad_code`).
    UnknownAppealType,
    /// `xzqh` names no division: the validator rejects it.
    UnknownRegion,
}

const DEFECTS: [Defect; 5] = [
    Defect::MissingContent,
    Defect::DashedCallTime,
    Defect::ImpossibleCallDate,
    Defect::UnknownAppealType,
    Defect::UnknownRegion,
];

impl Defect {
    fn spoil(self, record: &mut Map<String, Value>) {
        let call_time = record
            .get("ldsj")
            .and_then(Value::as_str)
            .unwrap_or("20240101000000")
            .to_owned();
        match self {
            Defect::MissingContent => {
                record.shift_remove("sqnr");
            }
            Defect::DashedCallTime => {
                let t = &call_time;
                let dashed = if t.len() == 14 && t.is_ascii() {
                    format!(
                        "{}-{}-{} {}:{}:{}",
                        &t[0..4],
                        &t[4..6],
                        &t[6..8],
                        &t[8..10],
                        &t[10..12],
                        &t[12..14]
                    )
                } else {
                    "2024-01-01 00:00:00".to_owned()
                };
                record.insert("ldsj".into(), Value::String(dashed));
            }
            Defect::ImpossibleCallDate => {
                let t = &call_time;
                let impossible = if t.len() == 14 && t.is_ascii() {
                    format!("{}0230{}", &t[0..4], &t[8..14])
                } else {
                    "20240230000000".to_owned()
                };
                record.insert("ldsj".into(), Value::String(impossible));
            }
            Defect::UnknownAppealType => {
                record.insert("sqlx".into(), Value::String("9".into()));
            }
            Defect::UnknownRegion => {
                let code = record
                    .get("xzqh")
                    .and_then(Value::as_str)
                    .filter(|c| c.len() >= 6 && c.is_ascii())
                    .map_or("610921".to_owned(), |c| c[..6].to_owned());
                record.insert("xzqh".into(), Value::String(format!("{code}999999")));
            }
        }
    }
}

/// One version of a ticket, as the API returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct TicketVersion {
    /// The simulated time of the change (`gxsj`), in epoch milliseconds.
    pub updated_ms: i64,
    /// The raw work order, as the API returns it.
    pub record: Value,
}

/// One ticket's whole life: every version, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    /// 工单编号.
    pub ticket_no: String,
    /// Whether every version carries a defect (and must be rejected).
    pub malformed: bool,
    /// The versions, in time order, each at least a second after the previous one.
    pub versions: Vec<TicketVersion>,
}

/// Builds a ticket's versions.
struct Life {
    record: Map<String, Value>,
    /// 派单记录, 退单申请, 延期申请: written into the record when not empty.
    dispatches: Vec<Map<String, Value>>,
    returns: Vec<Value>,
    extensions: Vec<Map<String, Value>>,
    at: i64,
    versions: Vec<TicketVersion>,
    defect: Option<Defect>,
}

impl Life {
    /// Moves the ticket's clock on by `delay` (at least a second) and returns the new time.
    fn step(&mut self, delay: i64) -> i64 {
        self.at = floor_second(self.at.saturating_add(delay.max(SECOND)));
        self.at
    }

    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.record.insert(key.to_owned(), value.into());
    }

    fn publish(&mut self, status: &str) {
        self.set("gdzt", status);
        let lists = [
            (
                "pdjl",
                self.dispatches
                    .iter()
                    .cloned()
                    .map(Value::Object)
                    .collect::<Vec<_>>(),
            ),
            ("tdjl", self.returns.clone()),
            (
                "yqsq",
                self.extensions.iter().cloned().map(Value::Object).collect(),
            ),
        ];
        for (key, items) in lists {
            if !items.is_empty() {
                self.set(key, Value::Array(items));
            }
        }
        // The update time comes last, as the vendor's API writes it.
        self.record.shift_remove("gxsj");
        self.set("gxsj", format_time(self.at));
        let mut record = self.record.clone();
        if let Some(defect) = self.defect {
            defect.spoil(&mut record);
        }
        self.versions.push(TicketVersion {
            updated_ms: self.at,
            record: Value::Object(record),
        });
    }
}

/// Where a dispatched ticket goes.
struct Routing {
    ticket_no: String,
    urgent: bool,
    /// The unit that handles it.
    lead: Unit,
    /// The town or street government that assists, if any.
    assist: Option<Unit>,
    /// The unit it goes to first by mistake, which returns it (退单), if any.
    misrouted: Option<Unit>,
    /// The grid event number when the grid platform gets it too.
    grid_event_no: Option<String>,
}

/// The text variables of one ticket.
struct Vars {
    county: String,
    town: String,
    place: String,
    n: u32,
    days: u32,
    months: u32,
    amount: String,
    year: i32,
}

impl Vars {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{county}", &self.county)
            .replace("{town}", &self.town)
            .replace("{place}", &self.place)
            .replace("{n}", &self.n.to_string())
            .replace("{days}", &self.days.to_string())
            .replace("{months}", &self.months.to_string())
            .replace("{amount}", &self.amount)
            .replace("{year}", &self.year.to_string())
    }
}

fn short_place(name: &str) -> String {
    name.trim_end_matches("居委会")
        .trim_end_matches("村委会")
        .trim_end_matches("委员会")
        .to_owned()
}

/// Generates the tickets of a run — deterministic for the options' seed, rate, time scale, malformed share and
/// counties, and the start time.
///
/// Ticket *n* (from 0) is called in at `start + n / rate × time_scale` seconds (plus a jitter within that gap),
/// so the same generator also tells when each ticket is created.
#[derive(Debug)]
pub struct WorkOrderGenerator {
    faker: Faker,
    start_ms: i64,
    /// Simulated milliseconds between two tickets.
    gap_ms: f64,
    created: u64,
    malformed_share: f64,
    units: BTreeMap<String, CountyUnits>,
}

impl WorkOrderGenerator {
    /// A generator for these options, whose first ticket is called in at `start`.
    pub fn new(options: &Hotline12345Options, start: DateTime<FixedOffset>) -> Self {
        let counties: Vec<&str> = options.counties.iter().map(String::as_str).collect();
        // Out-of-range options (`run` refuses them) are brought into range rather than panicking.
        let rate = clamped(options.rate, RATE_RANGE, 1.0);
        let scale = clamped(options.time_scale, TIME_SCALE_RANGE, 1.0);
        Self {
            faker: Faker::for_counties(options.seed, &counties),
            start_ms: floor_second(to_ms(&start)),
            gap_ms: 1000.0 * scale / rate,
            created: 0,
            malformed_share: clamped(options.malformed_share, SHARE, 0.0),
            units: BTreeMap::new(),
        }
    }

    /// How many tickets have been generated.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The simulated time (epoch milliseconds) from which the next ticket may be called in.
    pub fn next_ticket_ms(&self) -> i64 {
        self.start_ms
            .saturating_add((self.created as f64 * self.gap_ms) as i64)
    }

    fn units(&mut self, county: &str) -> &CountyUnits {
        let faker = &mut self.faker;
        self.units
            .entry(county.to_owned())
            .or_insert_with(|| CountyUnits::new(faker, county))
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            low
        } else {
            self.faker.rng().random_range(low..high)
        }
    }

    /// The next ticket, with its whole life.
    pub fn next_ticket(&mut self) -> Ticket {
        let base = self.next_ticket_ms();
        self.created += 1;
        let serial = self.created;
        let jitter = self.between(0, (self.gap_ms as i64).max(1));
        let called = floor_second(base.saturating_add(jitter));

        let village = self.faker.village();
        let county_code = village.code().get(..6).unwrap_or("610921").to_owned();
        let town_code = village.parent_code().unwrap_or_default().to_owned();
        let table = RegionTable::shaanxi();
        let town_name = table.name(&town_code).unwrap_or("").to_owned();
        let (county_name, area_code) = {
            let u = self.units(&county_code);
            (u.name.clone(), u.area_code)
        };

        let topic = self.faker.pick_weighted(TOPICS, |t| t.weight);

        let year = DateTime::from_timestamp_millis(called)
            .map(|t| chrono::Datelike::year(&t.with_timezone(&beijing())))
            .unwrap_or(2024);
        let vars = Vars {
            county: county_name.clone(),
            town: town_name.clone(),
            place: short_place(village.name()),
            n: self.faker.rng().random_range(2..=12),
            days: self.faker.rng().random_range(3..=20),
            months: self.faker.rng().random_range(2..=8),
            amount: format!("{:.1}", self.faker.rng().random_range(0.8..15.0)),
            year: year + 1,
        };
        let defect = if self.faker.chance(self.malformed_share) {
            Some(*self.faker.pick(&DEFECTS))
        } else {
            None
        };

        let call_day = format_time(called)
            .get(..8)
            .unwrap_or("20240101")
            .to_owned();
        let ticket_no = format!("GD{call_day}{:06}", serial % 1_000_000);
        let kind = *self.faker.pick(topic.kinds);
        let channel = self.faker.pick_weighted(CHANNELS, |c| c.1).0;
        let caller = self.faker.person();
        let caller_name = if self.faker.chance(0.12) {
            String::new()
        } else {
            caller.name.clone()
        };
        let caller_phone = if self.faker.chance(0.2) {
            // Xi'an numbers have eight digits, Ankang's seven.
            let local = if area_code == "029" {
                self.faker.rng().random_range(80_000_000..90_000_000)
            } else {
                self.faker.rng().random_range(5_000_000..5_600_000)
            };
            format!("{area_code}-{local}")
        } else {
            caller.phone.clone()
        };
        let title = vars.fill(self.faker.pick::<&str>(topic.titles));
        let content = vars.fill(self.faker.pick::<&str>(topic.contents));
        let address = self.faker.address(village);
        let urgent = self.faker.chance(topic.urgent);

        let mut record = Map::new();
        record.insert("gdbh".into(), json!(ticket_no));
        record.insert("slqd".into(), json!(channel));
        record.insert("sqlx".into(), json!(kind));
        record.insert("ldsj".into(), json!(format_time(called)));
        record.insert("ldrxm".into(), json!(caller_name));
        record.insert("ldrdh".into(), json!(caller_phone));
        record.insert(
            "sfbm".into(),
            json!(if self.faker.chance(0.3) { "1" } else { "0" }),
        );
        record.insert("gdbt".into(), json!(title));
        record.insert("sqnr".into(), json!(content));
        record.insert("sqfl".into(), json!(topic.code));
        record.insert("sqflmc".into(), json!(topic.category));
        record.insert("xzqh".into(), json!(village.code()));
        record.insert("sqdz".into(), json!(address));
        if self.faker.chance(0.7) {
            let (lng, lat) = self.faker.coordinates(village);
            record.insert("jd".into(), json!(lng));
            record.insert("wd".into(), json!(lat));
        }
        record.insert("jjcd".into(), json!(if urgent { "2" } else { "1" }));

        let mut life = Life {
            record,
            dispatches: Vec::new(),
            returns: Vec::new(),
            extensions: Vec::new(),
            at: called,
            versions: Vec::new(),
            defect,
        };
        // 登记: the agent registers the call.
        let d = self.between(2 * MINUTE, 10 * MINUTE);
        life.step(d);
        life.publish("01");

        if self.faker.chance(topic.direct) {
            self.answer_directly(&mut life, topic, &vars);
        } else {
            let lead = self.units(&county_code).unit(topic.lead, &town_code);
            let town = self.units(&county_code).unit(Dept::Town, &town_code);
            let fallback = Unit {
                name: format!("{county_name}人民政府办公室"),
                uscc: String::new(),
            };
            let lead = lead.or_else(|| town.clone()).unwrap_or(fallback);
            let assist = if topic.town_assists && topic.lead != Dept::Town {
                town.clone()
            } else {
                None
            };
            // Sometimes the first dispatch goes to the wrong unit, which returns the ticket.
            let misrouted = if self.faker.chance(0.12) {
                let wrong = if topic.lead == Dept::Town {
                    self.units(&county_code)
                        .unit(Dept::CityManagement, &town_code)
                } else {
                    town.clone()
                };
                wrong.filter(|w| w.name != lead.name)
            } else {
                None
            };
            let transfer_to_grid = topic.on_site && self.faker.chance(0.1);
            let routing = Routing {
                ticket_no: ticket_no.clone(),
                urgent,
                lead,
                assist,
                misrouted,
                grid_event_no: transfer_to_grid
                    .then(|| format!("WG{call_day}{:04}", serial % 10_000)),
            };
            self.dispatch_and_handle(&mut life, topic, &vars, routing);
        }
        Ticket {
            ticket_no,
            malformed: defect.is_some(),
            versions: life.versions,
        }
    }

    /// A consultation (or praise) the agent answers at once: 直接答复办结, then maybe a callback, then archived.
    fn answer_directly(&mut self, life: &mut Life, topic: &Topic, vars: &Vars) {
        let d = self.between(3 * MINUTE, 25 * MINUTE);
        self.conclude(life, topic, vars, d, HOTLINE_UNIT.into(), "02", 0.6);
    }

    /// 办结 by `unit` after `delay`: the resolution and reply recorded and published as `status`; then, with
    /// probability `callback_chance`, the citizen is called back; the ticket is archived (`08`) within two days.
    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &mut self,
        life: &mut Life,
        topic: &Topic,
        vars: &Vars,
        delay: i64,
        unit: String,
        status: &str,
        callback_chance: f64,
    ) {
        let t = life.step(delay);
        let (resolution, reply) = *self.faker.pick(topic.replies);
        life.set("bjsj", format_time(t));
        life.set("bjdw", unit);
        life.set("jjqk", resolution);
        life.set("bjnr", vars.fill(reply));
        life.publish(status);
        if self.faker.chance(callback_chance) {
            self.callback(life);
        }
        let d = self.between(HOUR, 2 * DAY);
        life.step(d);
        life.publish("08");
    }

    fn callback(&mut self, life: &mut Life) {
        let d = self.between(4 * HOUR, 2 * DAY);
        let t = life.step(d);
        life.set("hfsj", format_time(t));
        if self.faker.chance(0.85) {
            let roll = self.faker.rng().random_range(0..100);
            let satisfaction = match roll {
                0..=71 => "1",
                72..=89 => "2",
                _ => "3",
            };
            let comments = COMMENTS
                .iter()
                .find(|(code, _)| *code == satisfaction)
                .map_or(&[""][..], |(_, c)| *c);
            let comment = *self.faker.pick(comments);
            life.set("sfjt", "1");
            life.set("myd", satisfaction);
            life.set("hfyj", comment);
        } else {
            life.set("sfjt", "0");
        }
        life.publish("07");
    }

    fn dispatch_entry(
        ticket_no: &str,
        number: usize,
        unit: &Unit,
        lead: bool,
        at: i64,
        due: i64,
    ) -> Map<String, Value> {
        let mut entry = Map::new();
        let pdid = format!("PD{}-{number}", ticket_no.trim_start_matches("GD"));
        entry.insert("pdid".into(), json!(pdid));
        entry.insert("cbdw".into(), json!(unit.name));
        if !unit.uscc.is_empty() {
            entry.insert("cbdwdm".into(), json!(unit.uscc));
        }
        entry.insert("sfzb".into(), json!(if lead { "1" } else { "0" }));
        entry.insert("pdsj".into(), json!(format_time(at)));
        entry.insert("blsx".into(), json!(format_time(due)));
        entry.insert("sfth".into(), json!("0"));
        entry
    }

    /// Dispatches (派单) to the lead unit and the assisting one; returns the new dispatches' indices.
    fn dispatch(
        &mut self,
        life: &mut Life,
        ticket_no: &str,
        urgent: bool,
        lead: &Unit,
        assist: Option<&Unit>,
    ) -> Vec<usize> {
        let d = self.between(10 * MINUTE, 90 * MINUTE);
        let t = life.step(d);
        let days = if urgent {
            2
        } else {
            self.faker.rng().random_range(3..=7)
        };
        let due = close_of_business(t.saturating_add(days * DAY));
        let mut indices = Vec::new();
        for (unit, is_lead) in std::iter::once((lead, true)).chain(assist.map(|a| (a, false))) {
            let n = life.dispatches.len();
            life.dispatches.push(Self::dispatch_entry(
                ticket_no,
                n + 1,
                unit,
                is_lead,
                t,
                due,
            ));
            indices.push(n);
        }
        indices
    }

    /// The units sign for their dispatches (签收), a few minutes apart.
    fn sign(&mut self, life: &mut Life, indices: &[usize]) {
        let d = self.between(20 * MINUTE, 6 * HOUR);
        let mut t = life.step(d);
        for (k, i) in indices.iter().enumerate() {
            if k > 0 {
                t = life.step(7 * MINUTE);
            }
            if let Some(entry) = life.dispatches.get_mut(*i) {
                entry.insert("qssj".into(), json!(format_time(t)));
            }
        }
        life.publish("04");
    }

    fn pdid(life: &Life, index: Option<&usize>) -> Value {
        index
            .and_then(|i| life.dispatches.get(*i))
            .and_then(|e| e.get("pdid"))
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn dispatch_and_handle(
        &mut self,
        life: &mut Life,
        topic: &Topic,
        vars: &Vars,
        routing: Routing,
    ) {
        let Routing {
            ticket_no,
            urgent,
            lead,
            assist,
            misrouted,
            grid_event_no,
        } = routing;
        let ticket_no = ticket_no.as_str();
        if let Some(wrong) = misrouted {
            // 派单 to the wrong unit, which signs, asks to return it (退单), and the centre approves: the
            // approved return is written on the dispatch itself, the request in 退单申请.
            let indices = self.dispatch(life, ticket_no, urgent, &wrong, None);
            life.publish("03");
            self.sign(life, &indices);
            let d = self.between(HOUR, 6 * HOUR);
            let asked = life.step(d);
            let d = self.between(20 * MINUTE, 3 * HOUR);
            let approved = life.step(d);
            let reason = format!("该诉求属{}职责范围，申请退回改派。", lead.name);
            let pdid = Self::pdid(life, indices.first());
            if let Some(entry) = indices.first().and_then(|i| life.dispatches.get_mut(*i)) {
                entry.insert("sfth".into(), json!("1"));
                entry.insert("thsj".into(), json!(format_time(approved)));
                entry.insert("thyy".into(), json!(reason));
            }
            life.returns.push(json!({
                "pdid": pdid,
                "sqdw": wrong.name,
                "sqsj": format_time(asked),
                "tdyy": reason,
                "shjg": "1",
                "shsj": format_time(approved),
                "shyj": format!("同意退回，改派{}办理。", lead.name),
            }));
            life.publish("05");
        }
        let indices = self.dispatch(life, ticket_no, urgent, &lead, assist.as_ref());
        if let Some(no) = grid_event_no {
            life.set("wgsjbh", no);
        }
        life.publish("03");
        self.sign(life, &indices);

        // Sometimes the lead asks to return it and the centre refuses (不予退回).
        if self.faker.chance(0.05) {
            let d = self.between(HOUR, 8 * HOUR);
            let asked = life.step(d);
            let d = self.between(30 * MINUTE, 4 * HOUR);
            let decided = life.step(d);
            let pdid = Self::pdid(life, indices.first());
            life.returns.push(json!({
                "pdid": pdid,
                "sqdw": lead.name,
                "sqsj": format_time(asked),
                "tdyy": "诉求地址不详，无法核查，申请退回。",
                "shjg": "2",
                "shsj": format_time(decided),
                "shyj": "来电人已说明具体位置，请承办单位实地排查，不予退回。",
            }));
            life.publish("04");
        }

        // Sometimes an extension (延期): asked, then decided.
        if self.faker.chance(0.1) {
            let d = self.between(DAY, 3 * DAY);
            let asked = life.step(d);
            let days: i64 = self.faker.rng().random_range(3..=10);
            let reason = *self.faker.pick(EXTENSION_REASONS);
            let mut request = Map::new();
            request.insert("sqdw".into(), json!(lead.name));
            request.insert("sqsj".into(), json!(format_time(asked)));
            request.insert("sqts".into(), json!(days));
            request.insert("yqly".into(), json!(reason));
            request.insert("shjg".into(), json!("0"));
            life.extensions.push(request);
            life.publish("04");
            let d = self.between(2 * HOUR, 8 * HOUR);
            let decided = life.step(d);
            let approve = self.faker.chance(0.8);
            if let Some(last) = life.extensions.last_mut() {
                last.insert(
                    "pzts".into(),
                    if approve { json!(days) } else { Value::Null },
                );
                last.insert("shjg".into(), json!(if approve { "1" } else { "2" }));
                last.insert("shsj".into(), json!(format_time(decided)));
            }
            life.publish("04");
        }

        // 办结.
        let d = self.between(6 * HOUR, 4 * DAY);
        self.conclude(life, topic, vars, d, lead.name.clone(), "06", 0.9);
    }
}

/// The first `tickets` tickets of a run with these options starting at `start` — the same tickets the API
/// serves, without HTTP.
pub fn generate(
    options: &Hotline12345Options,
    start: DateTime<FixedOffset>,
    tickets: usize,
) -> Vec<Ticket> {
    let mut generator = WorkOrderGenerator::new(options, start);
    (0..tickets).map(|_| generator.next_ticket()).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------------------------

/// The simulated hotline: tickets created so far and what the API shows.
struct World {
    generator: WorkOrderGenerator,
    limit: Option<u64>,
    /// Versions not visible yet, by (time, ticket serial, version index).
    pending: BinaryHeap<Reverse<(i64, u64, usize)>>,
    /// The versions of each ticket not yet visible, by ticket serial.
    lives: HashMap<u64, Vec<TicketVersion>>,
    /// What the API shows: each ticket's current version, by (`gxsj`, `gdbh`).
    visible: BTreeMap<(String, String), Value>,
    /// The key of each ticket's current version in `visible`.
    current: HashMap<u64, (String, String)>,
    stats: Stats,
}

impl World {
    /// A world of tickets generated from `start` on, none visible yet.
    fn new(options: &Hotline12345Options, start: DateTime<FixedOffset>) -> Self {
        World {
            generator: WorkOrderGenerator::new(options, start),
            limit: options.limit,
            pending: BinaryHeap::new(),
            lives: HashMap::new(),
            visible: BTreeMap::new(),
            current: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Creates the tickets called in by `now` and makes visible every version whose time has come.
    fn advance(&mut self, now: i64) {
        while self.limit.is_none_or(|l| self.generator.created() < l)
            && self.generator.next_ticket_ms() <= now
        {
            let serial = self.generator.created() + 1;
            let ticket = self.generator.next_ticket();
            self.stats.tickets += 1;
            if ticket.malformed {
                self.stats.malformed_tickets += 1;
            }
            for (i, v) in ticket.versions.iter().enumerate() {
                self.pending.push(Reverse((v.updated_ms, serial, i)));
            }
            self.lives.insert(serial, ticket.versions);
        }
        while let Some(Reverse((at, serial, index))) = self.pending.peek().copied() {
            if at > now {
                break;
            }
            self.pending.pop();
            let Some(versions) = self.lives.get_mut(&serial) else {
                continue;
            };
            let Some(version) = versions.get_mut(index) else {
                continue;
            };
            let record = std::mem::take(&mut version.record);
            if index + 1 == versions.len() {
                self.lives.remove(&serial);
            }
            let key = (
                record
                    .get("gxsj")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                record
                    .get("gdbh")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
            if let Some(old) = self.current.insert(serial, key.clone()) {
                self.visible.remove(&old);
            }
            self.visible.insert(key, record);
            self.stats.versions += 1;
        }
    }

    fn page(&self, since: Option<&str>, size: usize) -> Vec<Value> {
        let from = match since {
            Some(s) => Bound::Included((s.to_owned(), String::new())),
            None => Bound::Unbounded,
        };
        self.visible
            .range((from, Bound::Unbounded))
            .take(size)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

struct Api {
    world: Mutex<World>,
    started: Instant,
    start_ms: i64,
    time_scale: f64,
    api_key: Option<String>,
}

impl Api {
    fn world(&self) -> MutexGuard<'_, World> {
        match self.world.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The simulated time now.
    fn now(&self) -> i64 {
        self.start_ms.saturating_add(
            (self.started.elapsed().as_secs_f64() * self.time_scale * 1000.0) as i64,
        )
    }
}

fn api_error(status: StatusCode, code: u16, msg: &str) -> Response {
    (status, Json(json!({ "code": code, "msg": msg }))).into_response()
}

async fn work_orders(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let now = api.now();
    let mut world = api.world();
    world.stats.requests += 1;
    if let Some(key) = &api.api_key {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str()) {
            return api_error(StatusCode::UNAUTHORIZED, 401, "接口密钥无效");
        }
    }
    let since = query.get("updatedSince").map(String::as_str);
    if since.is_some_and(|s| s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit())) {
        return api_error(
            StatusCode::BAD_REQUEST,
            400,
            "参数updatedSince格式应为yyyyMMddHHmmss",
        );
    }
    let size = match query.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(MAX_PAGE_SIZE),
        Some(_) => {
            return api_error(StatusCode::BAD_REQUEST, 400, "参数pageSize应为正整数");
        }
    };
    world.advance(now);
    let items = world.page(since, size);
    drop(world);
    Json(json!({ "code": 0, "msg": "成功", "data": { "items": items } })).into_response()
}

/// Serves the work-order API on `options.addr` until `shutdown` fires; returns what was done.
pub async fn run(options: Hotline12345Options, shutdown: Shutdown) -> Result<Stats, Error> {
    check(&options)?;
    let listener = TcpListener::bind(options.addr)
        .await
        .map_err(|e| Error::Bind {
            addr: options.addr,
            reason: e.to_string(),
        })?;
    serve(listener, options, shutdown).await
}

/// Serves the work-order API on an already bound listener (tests bind `127.0.0.1:0`) until `shutdown` fires;
/// `options.addr` is not used.
pub async fn serve(
    listener: TcpListener,
    options: Hotline12345Options,
    mut shutdown: Shutdown,
) -> Result<Stats, Error> {
    check(&options)?;
    let start_ms = options
        .start
        .as_ref()
        .map_or_else(|| floor_second(wall_clock_ms()), to_ms);
    let start = DateTime::from_timestamp_millis(start_ms)
        .map(|t| t.with_timezone(&beijing()))
        .ok_or_else(|| Error::Options(format!("start {start_ms} ms is out of range")))?;
    let api = Arc::new(Api {
        world: Mutex::new(World::new(&options, start)),
        started: Instant::now(),
        start_ms: to_ms(&start),
        time_scale: options.time_scale,
        api_key: options.api_key.clone(),
    });
    let app = Router::new()
        .route("/api/workorders", get(work_orders))
        .with_state(api.clone());
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    info!(
        addr = %local,
        rate = options.rate,
        time_scale = options.time_scale,
        malformed_share = options.malformed_share,
        "12345 work-order API simulator listening."
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
        .map_err(|e| Error::Serve(e.to_string()))?;
    let stats = api.world().stats;
    info!(?stats, "12345 work-order API simulator stopped.");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::test_start as start;

    #[test]
    fn times_are_beijing_wall_clock() {
        assert_eq!(format_time(1_631_582_460_000), "20210914092100");
        let due = close_of_business(1_631_582_460_000);
        assert_eq!(format_time(due), "20210914180000");
    }

    #[test]
    fn versions_move_forward_by_whole_seconds() {
        let options = Hotline12345Options {
            malformed_share: 0.0,
            ..Hotline12345Options::default()
        };
        for ticket in generate(&options, start(), 300) {
            assert!(ticket.versions.len() >= 3, "{ticket:?}");
            let times: Vec<&str> = ticket
                .versions
                .iter()
                .map(|v| v.record["gxsj"].as_str().expect("gxsj"))
                .collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            let last = ticket.versions.last().expect("a version");
            assert_eq!(last.record["gdzt"], "08");
            assert!(ticket.versions.iter().all(|v| v.updated_ms % 1000 == 0));
        }
    }

    #[test]
    fn the_world_shows_each_ticket_once_in_update_order() {
        let options = Hotline12345Options {
            rate: 10.0,
            time_scale: 3600.0,
            limit: Some(50),
            ..Hotline12345Options::default()
        };
        let mut world = World::new(&options, start());
        let t0 = to_ms(&start());
        world.advance(t0 + 2 * HOUR);
        let early = world.page(None, 10_000);
        assert!(!early.is_empty());
        world.advance(t0 + 30 * DAY);
        let all = world.page(None, 10_000);
        assert_eq!(world.stats.tickets, 50);
        assert_eq!(all.len(), 50, "one current version per ticket");
        assert!(all.iter().all(|r| r["gdzt"] == "08"));
        let times: Vec<&str> = all.iter().filter_map(|r| r["gxsj"].as_str()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let since = times[25];
        let later = world.page(Some(since), 10_000);
        assert!(later.iter().all(|r| r["gxsj"].as_str() >= Some(since)));
        assert_eq!(
            later.len(),
            all.iter()
                .filter(|r| r["gxsj"].as_str() >= Some(since))
                .count()
        );
    }
}
