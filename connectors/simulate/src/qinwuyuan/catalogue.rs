//! The 秦务员 platform's catalogue: departments, service items (政务服务事项) with their licences, the words
//! ratings and appeals are written with, and appeal topics.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dept {
    CivilAffairs,
    MarketRegulation,
    HumanResources,
    Police,
    NaturalResources,
    Housing,
    MedicalInsurance,
    Transport,
    Water,
    CityManagement,
    ServiceCentre,
}

impl Dept {
    pub(super) fn name(self, county: &str, city: &str) -> String {
        let short = county.trim_end_matches(['县', '区']);
        let district = county.ends_with('区');
        match self {
            Dept::CivilAffairs => format!("{county}民政局"),
            Dept::MarketRegulation => format!("{county}市场监督管理局"),
            Dept::HumanResources => format!("{county}人力资源和社会保障局"),
            Dept::Police if district => format!("{city}公安局{short}分局"),
            Dept::Police => format!("{county}公安局"),
            Dept::NaturalResources if district => format!("{city}自然资源和规划局{short}分局"),
            Dept::NaturalResources => format!("{county}自然资源局"),
            Dept::Housing => format!("{county}住房和城乡建设局"),
            Dept::MedicalInsurance => format!("{county}医疗保障局"),
            Dept::Transport => format!("{county}交通运输局"),
            Dept::Water if district => format!("{county}水务局"),
            Dept::Water => format!("{county}水利局"),
            Dept::CityManagement => format!("{county}城市管理和综合执法局"),
            Dept::ServiceCentre => format!("{county}政务服务中心"),
        }
    }
}

pub(super) const DEPTS: [Dept; 11] = [
    Dept::CivilAffairs,
    Dept::MarketRegulation,
    Dept::HumanResources,
    Dept::Police,
    Dept::NaturalResources,
    Dept::Housing,
    Dept::MedicalInsurance,
    Dept::Transport,
    Dept::Water,
    Dept::CityManagement,
    Dept::ServiceCentre,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ApplicantKind {
    Person,
    Enterprise,
    Organisation,
}

/// How a case's certificate number is written, if the item issues one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Licence {
    None,
    /// 食品经营许可证: JY + 1 + county + 7 digits.
    Food,
    /// 营业执照: a new unified social credit code.
    Business,
    /// 不动产权证书: 陕(year)<county>不动产权第NNNNNNN号.
    RealEstate,
    /// 建筑工程施工许可证: county + date + serial.
    Construction,
    /// 道路运输经营许可证: 陕交运管许可<county short>字 + digits.
    RoadTransport,
    /// 取水许可证: 取水(陕)字[year]第NNNN号.
    WaterDrawing,
}

/// A service item (政务服务事项) citizens apply for.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) weight: u32,
    /// The 13-digit part of the implementation code after the department's credit code.
    pub(super) basic_code: &'static str,
    pub(super) name: &'static str,
    /// National item type code: 01 行政许可, 05 行政给付, 07 行政确认, 20 公共服务 …
    pub(super) task_type: &'static str,
    pub(super) dept: Dept,
    pub(super) applicant: ApplicantKind,
    pub(super) promise_days: i64,
    pub(super) licence: Licence,
    /// Enterprise names' industry word, e.g. 餐饮.
    pub(super) industry: &'static str,
    /// Chance of 不予受理 / 不予许可.
    pub(super) deny: f64,
}

pub(super) const ITEMS: &[Item] = &[
    Item {
        weight: 10,
        basic_code: "4000105003000",
        name: "城乡居民最低生活保障对象认定",
        task_type: "05",
        dept: Dept::CivilAffairs,
        applicant: ApplicantKind::Person,
        promise_days: 20,
        licence: Licence::None,
        industry: "",
        deny: 0.15,
    },
    Item {
        weight: 6,
        basic_code: "4000105011000",
        name: "临时救助对象认定",
        task_type: "05",
        dept: Dept::CivilAffairs,
        applicant: ApplicantKind::Person,
        promise_days: 10,
        licence: Licence::None,
        industry: "",
        deny: 0.1,
    },
    Item {
        weight: 6,
        basic_code: "4000105022000",
        name: "困难残疾人生活补贴和重度残疾人护理补贴申请",
        task_type: "05",
        dept: Dept::CivilAffairs,
        applicant: ApplicantKind::Person,
        promise_days: 20,
        licence: Licence::None,
        industry: "",
        deny: 0.05,
    },
    Item {
        weight: 8,
        basic_code: "4000117004000",
        name: "食品经营许可（新办）",
        task_type: "01",
        dept: Dept::MarketRegulation,
        applicant: ApplicantKind::Enterprise,
        promise_days: 10,
        licence: Licence::Food,
        industry: "餐饮",
        deny: 0.05,
    },
    Item {
        weight: 10,
        basic_code: "4000117001000",
        name: "个体工商户设立登记",
        task_type: "01",
        dept: Dept::MarketRegulation,
        applicant: ApplicantKind::Person,
        promise_days: 3,
        licence: Licence::Business,
        industry: "",
        deny: 0.02,
    },
    Item {
        weight: 10,
        basic_code: "4000213001000",
        name: "城乡居民基本养老保险参保登记",
        task_type: "20",
        dept: Dept::HumanResources,
        applicant: ApplicantKind::Person,
        promise_days: 5,
        licence: Licence::None,
        industry: "",
        deny: 0.01,
    },
    Item {
        weight: 8,
        basic_code: "4000707002000",
        name: "户口迁移（省内）",
        task_type: "07",
        dept: Dept::Police,
        applicant: ApplicantKind::Person,
        promise_days: 5,
        licence: Licence::None,
        industry: "",
        deny: 0.03,
    },
    Item {
        weight: 7,
        basic_code: "4000707016000",
        name: "不动产转移登记",
        task_type: "07",
        dept: Dept::NaturalResources,
        applicant: ApplicantKind::Person,
        promise_days: 5,
        licence: Licence::RealEstate,
        industry: "",
        deny: 0.02,
    },
    Item {
        weight: 4,
        basic_code: "4000101009000",
        name: "建筑工程施工许可证核发",
        task_type: "01",
        dept: Dept::Housing,
        applicant: ApplicantKind::Enterprise,
        promise_days: 7,
        licence: Licence::Construction,
        industry: "建筑工程",
        deny: 0.05,
    },
    Item {
        weight: 8,
        basic_code: "4002020003000",
        name: "城乡居民医保门诊慢特病待遇认定",
        task_type: "20",
        dept: Dept::MedicalInsurance,
        applicant: ApplicantKind::Person,
        promise_days: 15,
        licence: Licence::None,
        industry: "",
        deny: 0.08,
    },
    Item {
        weight: 3,
        basic_code: "4000101031000",
        name: "道路货物运输经营许可",
        task_type: "01",
        dept: Dept::Transport,
        applicant: ApplicantKind::Enterprise,
        promise_days: 20,
        licence: Licence::RoadTransport,
        industry: "物流",
        deny: 0.05,
    },
    Item {
        weight: 2,
        basic_code: "4000101045000",
        name: "取水许可",
        task_type: "01",
        dept: Dept::Water,
        applicant: ApplicantKind::Organisation,
        promise_days: 20,
        licence: Licence::WaterDrawing,
        industry: "",
        deny: 0.05,
    },
];

/// Words enterprises are named with.
pub(super) const TRADE_NAMES: &[&str] = &[
    "秦味轩",
    "汉江源",
    "鑫盛",
    "华泰",
    "佳禾",
    "恒通",
    "凤鸣",
    "丰达",
    "瑞祥",
    "安和",
    "聚福",
    "宏远",
];

/// Public institutions that apply for water-drawing permits.
pub(super) const INSTITUTIONS: &[&str] = &[
    "第二中学",
    "人民医院",
    "中医医院",
    "职业技术教育中心",
    "自来水公司",
];

/// Reason tags by score class.
pub(super) const GOOD_TAGS: &[&str] = &[
    "办事效率高",
    "一次办好",
    "服务态度好",
    "材料精简",
    "全程网办",
    "指引清晰",
];
pub(super) const FAIR_TAGS: &[&str] = &["等待时间较长", "流程较复杂"];
pub(super) const BAD_TAGS: &[&str] = &[
    "多次跑动",
    "材料要求不一致",
    "超时办理",
    "态度冷淡",
    "系统卡顿",
];

pub(super) const GOOD_COMMENTS: &[&str] = &[
    "材料一次性告知，很快就办好了，点赞！",
    "在手机上就办完了，不用跑腿，方便。",
    "工作人员很耐心，讲得很清楚。",
    "",
];
pub(super) const FAIR_COMMENTS: &[&str] = &["办是办好了，就是等的时间有点长。", ""];
pub(super) const BAD_COMMENTS: &[&str] = &[
    "网上提交后又让去窗口补交纸质材料，跑了两趟。",
    "超过承诺时间好几天才办结，也没人通知。",
    "窗口工作人员态度不好，问几句就不耐烦。",
];
pub(super) const RECTIFICATIONS: &[&str] = &[
    "已核实，窗口人员未按一次性告知要求执行，已批评教育并更新材料清单，实现全程网办。",
    "已约谈相关科室负责人，优化审批流程，压缩办理时限，并向评价人当面致歉。",
    "经核查系系统接口故障导致进度未及时推送，已修复并建立办结短信提醒。",
];

/// What appeals are about.
#[derive(Debug)]
pub(super) struct AppealTopic {
    pub(super) weight: u32,
    /// 诉求类型 code.
    pub(super) kind: &'static str,
    pub(super) dept: Dept,
    /// Whether it is about one of the appellant's cases (then `relatedProjectNo` is set, when there is one).
    pub(super) about_case: bool,
    pub(super) titles: &'static [&'static str],
    pub(super) contents: &'static [&'static str],
    pub(super) replies: &'static [&'static str],
}

pub(super) const APPEAL_TOPICS: &[AppealTopic] = &[
    AppealTopic {
        weight: 8,
        kind: "1",
        dept: Dept::MedicalInsurance,
        about_case: false,
        titles: &["咨询灵活就业人员医保缴费办理方式", "咨询异地就医备案如何办理"],
        contents: &[
            "本人为灵活就业人员，户籍在{county}，想咨询城镇职工医保个人缴费能否在秦务员APP上办理，缴费基数如何确定。",
            "家中老人长期随子女在外省居住，想咨询异地就医备案在秦务员上怎么办理，需要哪些材料。",
        ],
        replies: &[
            "您好，灵活就业人员可通过秦务员APP“社保缴费”模块办理，缴费基数可在当年全省平均工资60%至300%之间自主选择。",
            "您好，异地长期居住人员可在秦务员APP“医保服务”中办理异地就医备案，填写居住地信息即可，无需提交纸质材料。",
        ],
    },
    AppealTopic {
        weight: 6,
        kind: "3",
        dept: Dept::CivilAffairs,
        about_case: true,
        titles: &["反映低保申请审核时间过长", "反映临时救助申请迟迟没有结果"],
        contents: &[
            "我在秦务员上提交的低保申请已经一个多月了，一直显示审核中，打电话问镇上也说不清楚，希望尽快给个结果。",
            "家里突发变故申请了临时救助，超过承诺时间还没有消息，希望相关部门加快办理。",
        ],
        replies: &[
            "您好，经核实您的申请已完成入户调查，因需补充共同生活家庭成员收入证明导致延误，工作人员已电话告知补充方式，预计5个工作日内办结。",
            "您好，您的申请已审核通过，救助金将于本月底前发放至您的社保卡账户，给您带来不便深表歉意。",
        ],
    },
    AppealTopic {
        weight: 5,
        kind: "3",
        dept: Dept::ServiceCentre,
        about_case: true,
        titles: &["投诉窗口工作人员服务态度差", "反映网上已提交材料窗口仍要求重复提交"],
        contents: &[
            "今天到政务服务中心窗口办理业务，工作人员一直玩手机，问问题也不耐烦，希望加强管理。",
            "材料已在秦务员上传并审核通过，到窗口又被要求提交纸质复印件，来回跑了两趟，希望真正做到一网通办。",
        ],
        replies: &[
            "您好，中心已调取监控核实情况，对相关工作人员进行了批评教育并扣减当月考核分，感谢您的监督。",
            "您好，经核实系窗口人员未及时查看网上材料，中心已重申“网上已收不再收”要求，并向您致歉。",
        ],
    },
    AppealTopic {
        weight: 4,
        kind: "3",
        dept: Dept::Housing,
        about_case: false,
        titles: &["反映小区附近工地夜间施工噪音扰民"],
        contents: &["{place}附近工地每天晚上十点以后还在施工，搅拌机声音很大，孩子无法休息，希望相关部门管一管。"],
        replies: &["您好，经现场核查，已责令该工地停止夜间高噪声作业，并将持续开展夜间巡查。"],
    },
    AppealTopic {
        weight: 4,
        kind: "2",
        dept: Dept::HumanResources,
        about_case: false,
        titles: &["求助追讨被拖欠的工资"],
        contents: &["我在{county}一处工地干了{months}个月，包工头拖欠工资{amount}万元一直不给，电话也不接，请求帮助。"],
        replies: &["您好，劳动保障监察大队已立案调查，已责令施工总承包单位限期支付，请保持电话畅通配合调查。"],
    },
    AppealTopic {
        weight: 3,
        kind: "3",
        dept: Dept::CityManagement,
        about_case: false,
        titles: &["反映{place}路灯长期不亮"],
        contents: &["{place}一带路灯坏了快一个月了，晚上出门黑乎乎的，希望尽快修好。"],
        replies: &["您好，维修人员已更换损坏灯具和线路，该路段路灯已恢复照明。"],
    },
    AppealTopic {
        weight: 3,
        kind: "5",
        dept: Dept::ServiceCentre,
        about_case: false,
        titles: &["建议秦务员APP增加办件进度短信提醒"],
        contents: &["建议秦务员APP在办件每个环节完成后都发短信提醒，现在只能自己反复登录查看，很不方便。"],
        replies: &["感谢您的建议。办件进度短信提醒功能已列入平台优化计划，预计下季度上线。"],
    },
    AppealTopic {
        weight: 2,
        kind: "6",
        dept: Dept::ServiceCentre,
        about_case: true,
        titles: &["表扬政务服务中心窗口工作人员"],
        contents: &["为老人办理业务时，窗口工作人员主动延时服务，耐心帮忙填表，特此表扬。"],
        replies: &["感谢您的表扬，我们已将您的表扬转达相关窗口工作人员，并将继续提升服务质量。"],
    },
];
