//! `GET /stats/workspaces?top=N`: the busiest workspaces' figures.
//!
//! Hits, misses, bypasses and stores come from the per-workspace sketch
//! ([`crate::workspaces`]); bytes and entries held from the memory store's
//! per-workspace accounting, which it keeps when `per_workspace_max` is set
//! (they are `null` without it, or without a memory tier).

use serde_json::{json, Value};

use crate::cache::TagCache;
use crate::metrics::CacheStatus;

/// Workspaces listed when the query does not say.
pub const DEFAULT_TOP: usize = 20;

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopError {
    /// `top` is not a number between 1 and [`crate::workspaces::SLOTS`].
    #[error("top must be a number between 1 and {max}")]
    BadTop {
        /// The largest value accepted.
        max: usize,
    },
    /// A query parameter other than `top`.
    #[error("unknown query parameter {0:?}; only \"top\" is accepted")]
    Unknown(String),
}

/// Reads `top` from the query string.
///
/// # Errors
/// See [`TopError`].
pub fn parse_top(query: Option<&str>) -> Result<usize, TopError> {
    let mut top = DEFAULT_TOP;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "top" {
            return Err(TopError::Unknown(name.to_string()));
        }
        let max = crate::workspaces::SLOTS;
        top = value
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or(TopError::BadTop { max })?;
    }
    Ok(top)
}

/// The answer of `GET /stats/workspaces`.
pub fn figures(cache: &TagCache, top: usize) -> Value {
    let stats = cache.workspaces();
    let memory = cache.memory();
    let list: Vec<Value> = stats
        .top(top)
        .into_iter()
        .map(|w| {
            let usage = memory.and_then(|m| m.workspace_usage(&w.workspace));
            json!({
                "workspace": &*w.workspace,
                "requests": w.requests(),
                "hits": w.get(CacheStatus::Hit),
                "misses": w.get(CacheStatus::Miss),
                "bypasses": w.get(CacheStatus::Bypass),
                "stale": w.get(CacheStatus::Stale),
                "expired": w.get(CacheStatus::Expired),
                "revalidated": w.get(CacheStatus::Revalidated),
                "stores": w.stores,
                "hit_rate": w.hit_rate(),
                "bytes": usage.map(|(bytes, _)| bytes),
                "entries": usage.map(|(_, entries)| entries),
                "overcount": w.error,
            })
        })
        .collect();
    json!({ "workspaces": list, "tracked": stats.tracked(), "capacity": crate::workspaces::SLOTS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_is_bounded() {
        assert_eq!(parse_top(None), Ok(DEFAULT_TOP));
        assert_eq!(parse_top(Some("top=5")), Ok(5));
        assert_eq!(parse_top(Some("")), Ok(DEFAULT_TOP));
        for bad in ["top=0", "top=-1", "top=x", "top=", "top=1025"] {
            assert!(
                matches!(parse_top(Some(bad)), Err(TopError::BadTop { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse_top(Some("limit=3")),
            Err(TopError::Unknown("limit".into()))
        );
    }
}
