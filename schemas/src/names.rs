//! The shared vocabulary of the bus: topic names, registry subjects, consumer groups and header names.
//!
//! Every layer that names a topic, a consumer group or a header takes the name from here, so a topic class is
//! spelt in one place. The classes:
//!
//! | topic | holds | written by |
//! |---|---|---|
//! | `std.<schema>` | normalised records of a shared schema | ingest |
//! | `raw.<connector>` | the source's original of each accepted record | ingest |
//! | `dlq.<connector>` | rejected originals with the reason | ingest |
//! | `sub.<agency>.<subscription>` | records released to one subscription, in its view schema | router |
//! | `dlq.sub.<agency>.<subscription>` | deliveries that failed for good, for replay | delivery |
//! | `_unsilo.*` | the hub's own state: schemas, config, offsets, audit | registry, control plane, ingest, audit |
//!
//! ```
//! use unsilo_schemas::names;
//! assert_eq!(names::std_topic("grid_event"), "std.grid_event");
//! assert_eq!(names::value_subject(&names::std_topic("grid_event")), "std.grid_event-value");
//! assert!(names::check_topic_name("sub.mca.dibao").is_ok());
//! assert!(names::check_topic_name("sub/../x").is_err());
//! ```

/// Prefix of the topics of normalised records.
pub const STD_PREFIX: &str = "std.";
/// Prefix of the topics of sources' originals.
pub const RAW_PREFIX: &str = "raw.";
/// Prefix of the dead-letter topics (connectors' and subscriptions').
pub const DLQ_PREFIX: &str = "dlq.";
/// Prefix of the topics of records released to subscriptions.
pub const SUB_PREFIX: &str = "sub.";

/// The compacted topic of the schema registry's state.
pub const SCHEMAS_TOPIC: &str = "_unsilo.schemas";
/// The compacted topic of the control plane (agencies, subscriptions).
pub const CONFIG_TOPIC: &str = "_unsilo.config";
/// The compacted topic holding every connector's checkpoint, keyed by connector name.
pub const OFFSETS_TOPIC: &str = "_unsilo.offsets";
/// The hash-chained evidence log.
pub const AUDIT_TOPIC: &str = "_unsilo.audit";
/// The links of edge nodes and member hubs: enrolments, pushed connector definitions, acknowledged positions
/// and the last status each node reported (compacted).
pub const LINKS_TOPIC: &str = "_unsilo.links";
/// The compacted topic marking each source dead letter already replayed (key `<connector>/<offset>`).
pub const DLQ_REPLAYED_TOPIC: &str = "_unsilo.dlq-replayed";
/// The compacted topic holding where each subscription stands against its schema's router, per partition of
/// `std.<schema>` (key `<subscription>/<partition>`): live, or behind at an offset (history being caught up, or
/// paused) — written in the same atomic write as the releases it accounts for.
pub const ROUTER_PROGRESS_TOPIC: &str = "_unsilo.router-progress";
/// Suffix of an audit topic's companion holding its signed checkpoints.
pub const CHECKPOINTS_SUFFIX: &str = ".checkpoints";

/// Header carrying the deterministic record id on `std.`, `raw.` and `sub.` records.
pub const HEADER_RECORD_ID: &str = "unsilo.record_id";
/// Header naming the connector that ingested the record.
pub const HEADER_CONNECTOR: &str = "unsilo.connector";
/// Header saying where the input came from (file and line, request and item, table and row).
pub const HEADER_ORIGIN: &str = "unsilo.origin";
/// Header on `dlq.` records: the reason as JSON (`stage`, `code`, `field`, `message`).
pub const HEADER_REASON: &str = "unsilo.reason";
/// Header naming the shared schema of a `std.` or `raw.` record.
pub const HEADER_SCHEMA: &str = "unsilo.schema";
/// Header naming the subscription (`<agency>.<name>`) a `sub.` record was released to.
pub const HEADER_SUBSCRIPTION: &str = "unsilo.subscription";
/// Header on `sub.` records: how many days the agency may keep the record (the grant's `retain_days`).
pub const HEADER_RETAIN_DAYS: &str = "unsilo.retain_days";
/// Header on `sub.` records released from history (a backfill or a resume's catch-up): `true`.
pub const HEADER_BACKFILL: &str = "unsilo.backfill";
/// Header on `sub.` records written over a bus without atomic multi-topic writes (Kafka): the id of the router
/// write that carried them, which a restarted router looks for to tell what of an interrupted write is out.
pub const HEADER_ROUTER_WRITE_ID: &str = "unsilo.write";
/// Header on the last (signed) audit entry of a router write over Kafka: the write's intent as JSON — what it
/// routes, where its releases go and where each destination stood before it — for recovery after a crash. Not
/// covered by the signature; only entries of the hub's own verified chain are trusted for it.
pub const HEADER_ROUTER_INTENT: &str = "unsilo.router.intent";
/// Header carrying an audit entry's chain hash.
pub const HEADER_AUDIT_HASH: &str = "unsilo.audit.hash";
/// Header carrying the hub's signature over an audit entry.
pub const HEADER_AUDIT_SIGNATURE: &str = "unsilo.audit.sig";
/// Header beside the signature: the first seq of the append the signature covers (decimal).
pub const HEADER_AUDIT_SIGNED_FROM: &str = "unsilo.audit.sig_from";
/// Header on an audit entry stored compressed: `deflate` (RFC 1951, raw) — the chain hash and signature cover
/// the stored (compressed) bytes; inflating them gives the entry's JSON text.
pub const HEADER_AUDIT_ENCODING: &str = "unsilo.audit.encoding";
/// Header on the hub's own `_unsilo.*` records: the writing hub's id.
pub const HEADER_SEAL_HUB: &str = "unsilo.seal.hub";
/// Header on the hub's own `_unsilo.*` records: their seal (HMAC-SHA256, hex) over topic, hub, key and value.
pub const HEADER_SEAL: &str = "unsilo.seal";

/// The topic of normalised records of a shared schema: `std.<schema>`.
pub fn std_topic(schema: &str) -> String {
    format!("{STD_PREFIX}{schema}")
}

/// The topic of a connector's originals: `raw.<connector>`.
pub fn raw_topic(connector: &str) -> String {
    format!("{RAW_PREFIX}{connector}")
}

/// The dead-letter topic of a connector: `dlq.<connector>`.
pub fn dlq_topic(connector: &str) -> String {
    format!("{DLQ_PREFIX}{connector}")
}

/// The topic of records released to a subscription: `sub.<agency>.<subscription>`.
pub fn subscription_topic(agency: &str, subscription: &str) -> String {
    format!("{SUB_PREFIX}{agency}.{subscription}")
}

/// The prefix of every topic released to an agency: `sub.<agency>.`.
pub fn agency_topic_prefix(agency: &str) -> String {
    format!("{SUB_PREFIX}{agency}.")
}

/// The dead-letter topic of a subscription's deliveries: `dlq.sub.<agency>.<subscription>`.
pub fn subscription_dlq_topic(agency: &str, subscription: &str) -> String {
    format!("{DLQ_PREFIX}{}", subscription_topic(agency, subscription))
}

/// The registry subject of a topic's values (Confluent TopicNameStrategy): `<topic>-value`.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The consumer group of the router of one schema: `<cluster>.router.<schema>`.
pub fn router_group(cluster: &str, schema: &str) -> String {
    format!("{cluster}.router.{schema}")
}

/// The consumer group delivering one subscription (`<agency>.<name>`) over a push channel.
pub fn delivery_group(subscription_id: &str) -> String {
    format!("unsilo.delivery.{subscription_id}")
}

/// The consumer group of one subscription's pull API.
pub fn pull_group(subscription_id: &str) -> String {
    format!("unsilo.pull.{subscription_id}")
}

/// The consumer group replaying one subscription's delivery dead letters.
pub fn dlq_replay_group(subscription_id: &str) -> String {
    format!("unsilo.dlq-replay.{subscription_id}")
}

/// A topic name that is not legal on both buses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic name `{0}`: 1 to 249 of ASCII letters, digits, `.`, `_` and `-`, and not `.` or `..`")]
pub struct InvalidTopicName(pub String);

/// Checks a topic name against Kafka's rules, which the embedded bus keeps as well: 1 to 249 ASCII letters,
/// digits, `.`, `_` and `-`, and not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), InvalidTopicName> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidTopicName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_classes_are_spelt_once() {
        assert_eq!(raw_topic("grid"), "raw.grid");
        assert_eq!(dlq_topic("grid"), "dlq.grid");
        assert_eq!(subscription_topic("mca", "dibao"), "sub.mca.dibao");
        assert_eq!(subscription_dlq_topic("mca", "dibao"), "dlq.sub.mca.dibao");
        assert!(subscription_topic("mca", "dibao").starts_with(&agency_topic_prefix("mca")));
        assert_eq!(
            router_group("unsilo", "grid_event"),
            "unsilo.router.grid_event"
        );
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in [
            "a",
            "std.grid_event",
            "_unsilo.audit",
            "x-y_z.0",
            &"a".repeat(249),
        ] {
            assert!(check_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "表", &"a".repeat(250)] {
            let err = check_topic_name(bad).unwrap_err();
            assert!(err.to_string().contains("invalid topic name"), "{err}");
        }
    }
}
