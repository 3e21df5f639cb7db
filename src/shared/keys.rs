//! Names of everything tagcache keeps in Redis, in one place.
//!
//! ```text
//! {prefix}:{<32 hex>}          an entry (string, PX = fresh + longest stale window)
//! {prefix}:{<32 hex>}:lock     its coalescing lock (string, PX = the longest fill)
//! {{prefix}}:epoch             the purge epoch (hash: e, id, f) -- the only key without a TTL
//! {{prefix}}:log               the purge log (stream, trimmed to the retention, PX = retention)
//! {{prefix}}:instances         live instances (sorted set, score = heartbeat deadline, PX)
//! {{prefix}}:acks              highest sync purge each instance applied (sorted set, PX)
//! {prefix}:purge               the pub/sub channel (not a key)
//! ```
//!
//! The braces are Redis Cluster hash tags, chosen deliberately. An entry and
//! its lock share the tag of the entry's hash, so the lock scripts touch one
//! slot while entries spread over every shard. The purge keys share the tag of
//! the prefix, so a purge is one script on one shard: it never issues a
//! multi-key command across slots, whatever the number of tags.

/// Key names for one deployment prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// Lower-case hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of a 128-bit cache key.
fn hex16(key: &[u8; 16]) -> String {
    hex::encode(key)
}

impl Keys {
    /// Names under `prefix`, which config validation keeps free of braces.
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The deployment prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of an entry: `combined_bin()` of its cache key.
    pub fn entry(&self, key: &[u8; 16]) -> String {
        // By hand: `format!` and a hex string of its own cost an L2 hit
        // about 2,000 instructions, on every lookup.
        let mut name = String::with_capacity(self.prefix.len() + 35);
        name.push_str(&self.prefix);
        name.push_str(":{");
        for b in key {
            name.push(char::from(HEX[usize::from(b >> 4)]));
            name.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        name.push('}');
        name
    }

    /// The coalescing lock of an entry (same slot as the entry).
    pub fn lock(&self, key: &[u8; 16]) -> String {
        format!("{}:{{{}}}:lock", self.prefix, hex16(key))
    }

    /// The purge epoch hash.
    pub fn epoch(&self) -> String {
        format!("{{{}}}:epoch", self.prefix)
    }

    /// The purge log stream.
    pub fn log(&self) -> String {
        format!("{{{}}}:log", self.prefix)
    }

    /// The live instances sorted set.
    pub fn instances(&self) -> String {
        format!("{{{}}}:instances", self.prefix)
    }

    /// The sync purge acknowledgements sorted set.
    pub fn acks(&self) -> String {
        format!("{{{}}}:acks", self.prefix)
    }

    /// The pub/sub channel purges and acks are announced on.
    pub fn channel(&self) -> String {
        format!("{}:purge", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster hashes for a key: the text between the
    /// first `{` and the next `}`, when non-empty.
    fn hash_tag(key: &str) -> &str {
        if let Some(open) = key.find('{') {
            if let Some(len) = key[open + 1..].find('}') {
                if len > 0 {
                    return &key[open + 1..open + 1 + len];
                }
            }
        }
        key
    }

    #[test]
    fn entry_and_lock_share_a_slot_and_purge_keys_share_another() {
        let k = Keys::new("tc");
        let key = [0xabu8; 16];
        assert_eq!(k.entry(&key), format!("tc:{{{}}}", "ab".repeat(16)));
        assert_eq!(hash_tag(&k.entry(&key)), hash_tag(&k.lock(&key)));
        let other = [0x01u8; 16];
        assert_ne!(hash_tag(&k.entry(&key)), hash_tag(&k.entry(&other)));
        let purge = [k.epoch(), k.log(), k.instances(), k.acks()];
        assert!(purge.iter().all(|p| hash_tag(p) == "tc"));
    }
}
