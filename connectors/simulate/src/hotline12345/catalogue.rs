//! What callers ring the 12345 hotline about (topics, with the wording of appeals and replies), and the units
//! of a county that tickets are assigned to.

use std::collections::BTreeMap;

use unsilo_schemas::validate::{Region, RegionLevel, RegionTable};

use crate::fake::Faker;

/// The units tickets are dispatched to, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Dept {
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
pub(super) struct Topic {
    /// Relative frequency.
    pub(super) weight: u32,
    /// 诉求分类代码.
    pub(super) code: &'static str,
    /// 诉求分类名称.
    pub(super) category: &'static str,
    /// The 诉求类型 codes it comes as (`1` 咨询 … `6` 表扬), one picked uniformly.
    pub(super) kinds: &'static [&'static str],
    /// The lead unit.
    pub(super) lead: Dept,
    /// Whether the town or street government assists (协办).
    pub(super) town_assists: bool,
    /// Whether the grid platform may get it as a grid event (something on the ground).
    pub(super) on_site: bool,
    /// Chance the agent answers it directly (直接答复), without dispatch.
    pub(super) direct: f64,
    /// Chance it is urgent.
    pub(super) urgent: f64,
    pub(super) titles: &'static [&'static str],
    pub(super) contents: &'static [&'static str],
    /// Completion replies: (解决情况 code, text).
    pub(super) replies: &'static [(&'static str, &'static str)],
}

pub(super) const TOPICS: &[Topic] = &[
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
pub(super) const EXTENSION_REASONS: &[&str] = &[
    "需协调多个部门现场会商，申请延期办理。",
    "涉及资金审批流程，需延长办理时限。",
    "需等待第三方检测结果，申请延期。",
    "当事人外出务工联系不上，需延期核实。",
];

/// Callback comments by satisfaction code.
pub(super) const COMMENTS: &[(&str, &[&str])] = &[
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
pub(super) const CHANNELS: &[(&str, u32)] =
    &[("1", 70), ("2", 5), ("3", 8), ("4", 10), ("6", 2), ("7", 5)];

/// A unit tickets are dispatched to.
#[derive(Clone, Debug)]
pub(super) struct Unit {
    pub(super) name: String,
    pub(super) uscc: String,
}

/// The handling units of one county, made once per county.
#[derive(Debug)]
pub(super) struct CountyUnits {
    /// e.g. 汉阴县.
    pub(super) name: String,
    /// The landline area code, for callers ringing from a fixed line.
    pub(super) area_code: &'static str,
    depts: Vec<(Dept, Unit)>,
    /// Town and street governments by 12-digit town code.
    towns: BTreeMap<String, Unit>,
}

impl CountyUnits {
    pub(super) fn new(faker: &mut Faker, county: &str) -> Self {
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

    pub(super) fn unit(&self, dept: Dept, town: &str) -> Option<Unit> {
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
