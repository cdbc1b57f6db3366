//! Reference data of the simulated grid platform: its event-type table, household tags, the village and
//! numeral helpers, and how it writes times and codes.

use chrono::{Datelike, NaiveDateTime, Timelike};
use unsilo_schemas::validate::uscc_check_char;

use crate::fake::Person;

/// One kind of event in the platform's event-type table.
pub(super) struct EventKind {
    /// 事件类型代码 `sjlx`.
    pub(super) code: &'static str,
    /// 事件类型名称 `sjlxmc`.
    pub(super) name: &'static str,
    /// 事件大类 `sjdl`.
    pub(super) category: &'static str,
    /// Relative frequency.
    pub(super) weight: u32,
    /// 紧急程度 usually given.
    pub(super) urgency: &'static str,
    /// Title patterns: `{v}` village, `{g}` group number, `{x}` a detail.
    pub(super) titles: &'static [&'static str],
    /// Details substituted for `{x}`.
    pub(super) details: &'static [&'static str],
    /// What the grid member adds in the description.
    pub(super) notes: &'static [&'static str],
    /// County department the event is dispatched to (after the county name).
    pub(super) department: &'static str,
    /// Parties: 0 none, 1 one (role `roles[0]`), 2 two (`roles[0]`, `roles[1]`).
    pub(super) parties: usize,
    /// Party roles (`js`).
    pub(super) roles: [&'static str; 2],
}

pub(super) const EVENT_KINDS: &[EventKind] = &[
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
pub(super) const RED_TAGS: &[&str] = &["监测户", "低保户", "五保户", "脱贫户"];
pub(super) const YELLOW_TAGS: &[&str] = &["脱贫户", "留守户", "残疾人户", "独居老人户"];
/// Dedicated grids (专属网格) of a town.
pub(super) const DEDICATED_PLACES: &[&str] =
    &["中心学校", "卫生院", "工业园区", "农贸市场", "敬老院"];
/// Chinese numerals for grid names (第一网格 …).
const NUMERALS: &[&str] = &[
    "零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二", "十三",
    "十四", "十五",
];
/// `msgType`s of other platform messages, not (yet) mapped: 巡查日志, 走访记录, 通知公告.
pub(super) const UNMAPPED_MSG_TYPES: &[&str] = &["PATROL", "VISIT", "NOTICE"];

/// The USCC of the county's grid centre (社会治理综合服务中心), the provider of the data.
pub(super) fn provider_uscc(county: &str) -> String {
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
pub(super) fn village_display(name: &str) -> String {
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

pub(super) fn numeral(n: usize) -> String {
    NUMERALS
        .get(n)
        .map_or_else(|| n.to_string(), |s| (*s).to_owned())
}

/// `2021/9/14 9:21`, as the app shows and sends it.
pub(super) fn app_time(t: NaiveDateTime) -> String {
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
pub(super) fn compact_time(t: NaiveDateTime) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

/// `2021-09-14 09:21:00`, as the workflow engine writes it.
pub(super) fn step_time(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The year of birth of a simulated person.
pub(super) fn birth_year(p: &Person) -> i32 {
    p.birth
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(1970)
}

pub(super) fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}
