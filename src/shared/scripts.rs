//! The Lua scripts tagcache runs in Redis. Each touches keys of one hash slot
//! only (see [`super::keys`]), so every one of them works unchanged on Redis
//! Cluster, and each is atomic, which is what the epoch argument relies on.

use once_cell::sync::Lazy;
use redis::Script;

/// Redis' clock in milliseconds, for the scripts that need one. Only Redis'
/// own clock is used: instances never compare their clocks with each other.
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')\n\
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// A purge. `KEYS`: epoch, log. `ARGV`: retention ms, soft (0/1), sync
/// (0/1), purging instance, tags (comma-separated hex), channel, the epoch
/// identity the purger knows.
///
/// Refuses (`{-1}`) when the purger's identity is not the store's: the store
/// lost its state since the purger last synchronized, and handing out a
/// generation now could reuse one already given. Otherwise takes the next
/// generation, appends the purge to the log (trimmed to the retention by
/// Redis' clock), and announces it. Returns `{generation, log id}`.
pub(crate) static PURGE: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "if redis.call('HGET', KEYS[1], 'id') ~= ARGV[7] then return {-1, ''} end\n",
        "local g = redis.call('HINCRBY', KEYS[1], 'e', 1)\n",
        now_ms!(),
        "local minid = now - tonumber(ARGV[1])\n",
        "if minid < 0 then minid = 0 end\n",
        "local id = redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', minid), '*',\n",
        "  'g', g, 's', ARGV[2], 'y', ARGV[3], 'o', ARGV[4], 't', ARGV[5])\n",
        "redis.call('PEXPIRE', KEYS[2], ARGV[1])\n",
        "redis.call('PUBLISH', ARGV[6], 'p|' .. string.format('%d', g) .. '|' .. id .. '|' .. ARGV[2]\n",
        "  .. '|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5])\n",
        "return {g, id}\n",
    ))
});

/// A purge of everything. `KEYS`: epoch, log. `ARGV`: retention ms, sync
/// (0/1), purging instance, channel, the epoch identity the purger knows.
///
/// Refuses (`{-1}`) on an outdated identity, as [`PURGE`] does. Otherwise
/// takes the next generation `g` and makes it the global floor (field `f`,
/// which [`SYNC`] hands to every instance that synchronizes later), logs it
/// (`a` = 1, no tags) and announces the floor (`f|g|id|a`: instances that
/// predate purge-all read it as a plain floor), then the purge itself with no
/// tags, which sync purges are acknowledged by. Returns `{g, log id}`.
pub(crate) static PURGE_ALL: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "if redis.call('HGET', KEYS[1], 'id') ~= ARGV[5] then return {-1, ''} end\n",
        "local g = redis.call('HINCRBY', KEYS[1], 'e', 1)\n",
        "redis.call('HSET', KEYS[1], 'f', string.format('%d', g))\n",
        now_ms!(),
        "local minid = now - tonumber(ARGV[1])\n",
        "if minid < 0 then minid = 0 end\n",
        "local id = redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%d', minid), '*',\n",
        "  'g', g, 's', '0', 'y', ARGV[2], 'o', ARGV[3], 't', '', 'a', '1')\n",
        "redis.call('PEXPIRE', KEYS[2], ARGV[1])\n",
        "redis.call('PUBLISH', ARGV[4], 'f|' .. string.format('%d', g) .. '|' .. ARGV[5] .. '|a')\n",
        "redis.call('PUBLISH', ARGV[4], 'p|' .. string.format('%d', g) .. '|' .. id .. '|0|'\n",
        "  .. ARGV[2] .. '|' .. ARGV[3] .. '|')\n",
        "return {g, id}\n",
    ))
});

/// Synchronization with the shared epoch. `KEYS`: epoch. `ARGV`: a fresh
/// identity, the caller's epoch mirror, the identity it knows (`''` for none),
/// channel.
///
/// Detects lost state: an identity other than the one the caller knew (Redis
/// restarted empty), or an epoch behind the caller's mirror (Redis went back
/// to an older snapshot, which also takes a new identity so that every other
/// instance notices too). On loss it raises the epoch past everything the
/// caller has seen and sets the global floor there: every entry born before
/// it, anywhere, is treated as purged. Returns `{identity, epoch, floor, lost}`.
pub(crate) static SYNC: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        now_ms!(),
        "if redis.call('HSETNX', KEYS[1], 'id', ARGV[1]) == 1 then\n",
        "  redis.call('HSET', KEYS[1], 'c', string.format('%d', now))\n",
        "end\n",
        "local id = redis.call('HGET', KEYS[1], 'id')\n",
        "local e = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')\n",
        "local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')\n",
        "local m = tonumber(ARGV[2])\n",
        "local lost = 0\n",
        "if e < m then id = ARGV[1] lost = 1 redis.call('HSET', KEYS[1], 'c', string.format('%d', now))\n",
        "elseif ARGV[3] ~= '' and ARGV[3] ~= id then lost = 1 end\n",
        "if lost == 1 then\n",
        "  e = math.max(e, m) + 1\n",
        "  f = e\n",
        "  redis.call('HSET', KEYS[1], 'e', string.format('%d', e), 'f', string.format('%d', f), 'id', id)\n",
        "  redis.call('PUBLISH', ARGV[4], 'f|' .. string.format('%d', f) .. '|' .. id)\n",
        "end\n",
        "return {id, e, f, lost}\n",
    ))
});

/// Records that an instance applied every purge up to a sync purge, and wakes
/// the purger. `KEYS`: acks. `ARGV`: instance, generation, ttl ms, channel.
pub(crate) static ACK: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])\n",
        "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n",
        "redis.call('PUBLISH', ARGV[4], 'a|' .. ARGV[2] .. '|' .. ARGV[1])\n",
        "return 1\n",
    ))
});

/// An instance's heartbeat. `KEYS`: instances. `ARGV`: instance, ttl ms.
/// Drops members whose deadline passed; the set itself expires with its last
/// member. Returns 1 when the instance's registration was unbroken, 0 when
/// it joins (first beat, or its deadline passed, or Redis lost the set).
pub(crate) static HEARTBEAT: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        now_ms!(),
        "local old = redis.call('ZSCORE', KEYS[1], ARGV[1])\n",
        "local was_live = (old and tonumber(old) > now) and 1 or 0\n",
        "redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])\n",
        "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))\n",
        "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n",
        "return was_live\n",
    ))
});

/// Which live instances have not acknowledged a sync purge yet. `KEYS`:
/// instances, acks, epoch. `ARGV`: generation, the purging instance (not
/// waited for), the longest lease in ms (3 × heartbeat). Returns `{live
/// count, {missing instances}, settling}`: `settling` is 1 while the epoch's
/// identity is younger than a lease. Redis then lost its state (the live set
/// with it) so recently that an instance registered with the old state may
/// still trust its lease without having noticed: the purge cannot be
/// complete before that lease has run out.
pub(crate) static MISSING: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        now_ms!(),
        "local c = tonumber(redis.call('HGET', KEYS[3], 'c') or '0')\n",
        "local settling = (now < c + tonumber(ARGV[3])) and 1 or 0\n",
        "local live = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%d', now), '+inf')\n",
        "local missing = {}\n",
        "for _, m in ipairs(live) do\n",
        "  if m ~= ARGV[2] then\n",
        "    local s = redis.call('ZSCORE', KEYS[2], m)\n",
        "    if not s or tonumber(s) < tonumber(ARGV[1]) then missing[#missing + 1] = m end\n",
        "  end\n",
        "end\n",
        "return {#live, missing, settling}\n",
    ))
});

/// Takes the coalescing lock of a cold entry, unless the entry is there.
/// `KEYS`: entry, lock. `ARGV`: token, lease ms, skip the entry check (0/1).
/// Returns `{1, value}` (the entry), `{0}` (locked by us), `{2}` (held by
/// another instance) or `{3}` (the last holder's answer was not stored: fetch
/// without waiting). A `stored` marker (`=born`) counts as no lock: the
/// caller only asks again because the entry there did not do for it.
pub(crate) static LOCK: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "if ARGV[3] == '0' then\n",
        "  local v = redis.call('GET', KEYS[1])\n",
        "  if v then return {1, v} end\n",
        "end\n",
        "local l = redis.call('GET', KEYS[2])\n",
        "if not l or string.sub(l, 1, 1) == '=' then\n",
        "  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])\n",
        "  return {0}\n",
        "end\n",
        "if l == '!' then return {3} end\n",
        "return {2}\n",
    ))
});

/// A waiter's poll: the lock's state first, so that an old entry still in
/// Redis (purged, or older than the fill) never reads as the holder's.
/// `KEYS`: entry, lock. Returns `{2}` (still held), `{3}` (the holder's
/// answer was not stored), `{4, born, value or nil}` (the holder stored a
/// fill born at `born`; the entry now there), or `{0, value or nil}` (no
/// lock: the holder is gone or finished long ago; the entry, if any).
pub(crate) static POLL: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "local l = redis.call('GET', KEYS[2])\n",
        "if l == '!' then return {3} end\n",
        "if l and string.sub(l, 1, 1) == '=' then\n",
        "  return {4, string.sub(l, 2), redis.call('GET', KEYS[1])}\n",
        "end\n",
        "if l then return {2} end\n",
        "return {0, redis.call('GET', KEYS[1])}\n",
    ))
});

/// Extends a coalescing lock's lease if it is still ours. `KEYS`: lock.
/// `ARGV`: token, lease ms. Returns 1 when renewed, 0 when the lock is gone
/// or someone else's.
pub(crate) static RENEW: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then\n",
        "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n",
        "  return 1\n",
        "end\n",
        "return 0\n",
    ))
});

/// Releases a coalescing lock if it is still ours, leaving the holder's
/// result marker for the waiters. `KEYS`: lock. `ARGV`: token, marker (`=born`
/// stored, `!` not stored), marker ms. Returns 1 when released, 0 when the
/// lock was no longer ours (then it is left alone).
pub(crate) static UNLOCK: Lazy<Script> = Lazy::new(|| {
    Script::new(concat!(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then\n",
        "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n",
        "  return 1\n",
        "end\n",
        "return 0\n",
    ))
});
