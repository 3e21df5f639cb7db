//! The Redis tier, against real `redis-server` processes: L2 round trips and
//! promotion, purge fan-out across instances (async and sync), cross-instance
//! coalescing, fail-open with Redis killed, frozen or restarted empty, and a
//! 3-master Redis Cluster.

mod cluster;
mod coalescing;
mod failopen;
mod fanout;
mod front;
mod hit_policy;
mod link;
mod lock_faults;
mod partition;
mod purge_all;
mod tier;
mod tls;
pub mod util;
