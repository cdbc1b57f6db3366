//! What the simulated grid platform remembers between records: its counties, grids, members, households,
//! residents and open events, and what it is to emit next.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Map, Value};
use unsilo_schemas::validate::Region;

use super::reference::step_time;
use crate::fake::Person;

#[derive(Clone, Debug)]
pub(super) struct Member {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) phone: String,
}

impl Member {
    pub(super) fn to_json(&self) -> Value {
        json!({ "wgybh": self.id, "xm": self.name, "lxdh": self.phone })
    }
}

#[derive(Debug)]
pub(super) struct County {
    pub(super) code: String,
    pub(super) name: String,
    pub(super) provider: String,
    /// `陕西省安康市汉阴县`.
    pub(super) prefix: String,
}

#[derive(Debug)]
pub(super) struct Grid {
    pub(super) county: usize,
    pub(super) code: String,
    pub(super) name: String,
    /// `1` base, `2` dedicated.
    pub(super) kind: &'static str,
    pub(super) village: &'static Region,
    pub(super) village_name: String,
    pub(super) town_code: String,
    pub(super) town_name: String,
    pub(super) leader: Option<Member>,
    pub(super) member: Member,
    pub(super) centre: (f64, f64),
    pub(super) half: f64,
    pub(super) household_count: u32,
    pub(super) population: u32,
    pub(super) established: NaiveDate,
    pub(super) households: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct Resident {
    pub(super) id: String,
    pub(super) person: Person,
    /// 证件类型 (`111` resident ID card, else a permit).
    pub(super) cert_type: &'static str,
    pub(super) cert_no: String,
    pub(super) relation: &'static str,
    pub(super) marital: &'static str,
    pub(super) population_type: &'static str,
    pub(super) registered_address: String,
    pub(super) special: Vec<&'static str>,
    pub(super) status: &'static str,
}

#[derive(Debug)]
pub(super) struct Household {
    pub(super) grid: usize,
    pub(super) id: String,
    pub(super) group: u32,
    pub(super) address: String,
    pub(super) care: &'static str,
    pub(super) residence: &'static str,
    pub(super) tags: Vec<&'static str>,
    pub(super) phone: String,
    pub(super) location: (f64, f64),
    pub(super) residents: Vec<Resident>,
}

/// One planned workflow step.
#[derive(Clone, Debug)]
pub(super) struct Step {
    pub(super) stage: &'static str,
    pub(super) level: &'static str,
    pub(super) at: NaiveDateTime,
    pub(super) org: String,
    pub(super) org_code: String,
    pub(super) operator: String,
    pub(super) opinion: String,
    pub(super) due: Option<NaiveDateTime>,
}

impl Step {
    pub(super) fn to_json(&self) -> Value {
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
pub(super) struct OpenEvent {
    pub(super) base: Map<String, Value>,
    pub(super) steps: Vec<Step>,
    pub(super) sent: usize,
}

/// Paths through the workflow (环节 codes), with their relative frequency.
pub(super) const PATHS: &[(&[&str], u32)] = &[
    (&["10", "20", "90"], 25),
    (&["10", "20", "40", "90"], 30),
    (&["10", "20", "30", "40", "90"], 25),
    (&["10", "20", "30", "40", "50", "90"], 10),
    (&["10", "20", "30", "60", "40", "90"], 10),
];

/// What to emit next.
#[derive(Debug)]
pub(super) enum Pending {
    Grid(usize),
    Household(usize),
    Resident(usize, usize),
}
