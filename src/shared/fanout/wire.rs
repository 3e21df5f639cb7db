//! The wire format: purge log entries, pub/sub messages and their fields.

use redis::Value;

use crate::shared::text;

/// A log entry or pub/sub message, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Purge {
    pub(super) generation: u64,
    pub(super) id: String,
    pub(super) soft: bool,
    pub(super) sync: bool,
    pub(super) tags: Vec<u64>,
    /// A purge of everything: its generation is a floor.
    pub(super) all: bool,
}

pub(super) fn parse_tags(s: &str) -> Option<Vec<u64>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|t| u64::from_str_radix(t, 16).ok())
        .collect()
}

pub(super) fn tags_arg(tags: &[u64]) -> String {
    let mut out = String::with_capacity(tags.len() * 17);
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{t:016x}"));
    }
    out
}

/// Whether an error means the connection broke (and redis-rs reconnects),
/// rather than Redis refusing or failing the command.
pub(super) fn broken_connection(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal()
}

/// A stream id `ms-seq` as a comparable pair.
pub(super) fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A message on the channel.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Message {
    Purge(Purge),
    Ack,
    /// A floor; `all` when a purge of everything set it, rather than a loss
    /// of state.
    Floor {
        floor: u64,
        id: String,
        all: bool,
    },
}

pub(super) fn parse_message(payload: &[u8]) -> Option<Message> {
    let s = std::str::from_utf8(payload).ok()?;
    let mut parts = s.splitn(7, '|');
    match parts.next()? {
        "p" => {
            let generation = parts.next()?.parse().ok()?;
            let id = parts.next()?.to_string();
            let soft = parts.next()? == "1";
            let sync = parts.next()? == "1";
            let _origin = parts.next()?;
            let tags = parse_tags(parts.next()?)?;
            Some(Message::Purge(Purge {
                generation,
                id,
                soft,
                sync,
                tags,
                all: false,
            }))
        }
        "a" => Some(Message::Ack),
        "f" => {
            let floor = parts.next()?.parse().ok()?;
            let id = parts.next()?.to_string();
            let all = parts.next() == Some("a");
            Some(Message::Floor { floor, id, all })
        }
        _ => None,
    }
}

/// Reads one entry of an `XRANGE` reply: `[id, [field, value, ...]]`.
pub(super) fn parse_log_entry(v: &Value) -> Option<Purge> {
    let Value::Array(parts) = v else { return None };
    let id = text(parts.first()?)?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let mut purge = Purge {
        generation: 0,
        id,
        soft: false,
        sync: false,
        tags: Vec::new(),
        all: false,
    };
    for pair in fields.chunks_exact(2) {
        let name = text(&pair[0])?;
        let value = text(&pair[1])?;
        match name.as_str() {
            "g" => purge.generation = value.parse().ok()?,
            "s" => purge.soft = value == "1",
            "y" => purge.sync = value == "1",
            "t" => purge.tags = parse_tags(&value)?,
            "a" => purge.all = value == "1",
            _ => {}
        }
    }
    (purge.generation > 0).then_some(purge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        fn check(payload: &str, expected: Option<Message>) {
            assert_eq!(parse_message(payload.as_bytes()), expected, "{payload}");
        }
        let tags = [1u64, 0xdead_beef_0000_0001];
        let p = format!("p|7|1700000000000-3|1|0|inst|{}", tags_arg(&tags));
        check(
            &p,
            Some(Message::Purge(Purge {
                generation: 7,
                id: "1700000000000-3".into(),
                soft: true,
                sync: false,
                tags: tags.to_vec(),
                all: false,
            })),
        );
        check(
            "p|8|1-0|0|1|i|",
            Some(Message::Purge(Purge {
                generation: 8,
                id: "1-0".into(),
                soft: false,
                sync: true,
                tags: vec![],
                all: false,
            })),
        );
        check("a|9|inst", Some(Message::Ack));
        check(
            "f|12|abc",
            Some(Message::Floor {
                floor: 12,
                id: "abc".into(),
                all: false,
            }),
        );
        check(
            "f|13|abc|a",
            Some(Message::Floor {
                floor: 13,
                id: "abc".into(),
                all: true,
            }),
        );
        check("p|x|1-0|0|0|i|", None);
        check("p|1|1-0|0|0|i|zz", None);
        check("q|1", None);
        assert!(stream_id("5-1") > stream_id("4-9"));
        assert!(stream_id("10-0") > stream_id("9-99"));
    }

    #[test]
    fn a_logged_purge_of_everything_replays_as_a_floor() {
        let entry = |fields: &[&str]| {
            Value::Array(vec![
                Value::BulkString(b"5-0".to_vec()),
                Value::Array(
                    fields
                        .iter()
                        .map(|f| Value::BulkString(f.as_bytes().to_vec()))
                        .collect(),
                ),
            ])
        };
        let all = parse_log_entry(&entry(&[
            "g", "9", "s", "0", "y", "1", "o", "i", "t", "", "a", "1",
        ]));
        assert_eq!(
            all,
            Some(Purge {
                generation: 9,
                id: "5-0".into(),
                soft: false,
                sync: true,
                tags: vec![],
                all: true,
            })
        );
        let tags = parse_log_entry(&entry(&["g", "3", "s", "1", "y", "0", "o", "i", "t", "1"]));
        assert_eq!(tags.map(|p| (p.all, p.tags)), Some((false, vec![1])));
    }
}
