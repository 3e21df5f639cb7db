//! `route.freshness`, `max_ttl` and `default_ttl`: where a route's
//! freshness comes from, and the bounds of `freshness: origin`.

use super::*;

/// The fields of a route that say where its freshness comes from.
pub(super) struct FreshnessFields<'a> {
    pub freshness: Option<raw::Freshness>,
    pub ttl: Option<&'a Spanned<String>>,
    pub max_ttl: Option<&'a Spanned<String>>,
    pub default_ttl: Option<&'a Spanned<String>>,
}

impl Cx<'_> {
    /// The route's `ttl` (with `freshness: origin`, its `max_ttl`) and
    /// where its freshness comes from. `ttl` belongs to config mode,
    /// `max_ttl` and `default_ttl` to origin mode; each is an error in the
    /// other.
    pub(super) fn freshness(
        &mut self,
        raw: &FreshnessFields<'_>,
        label: &str,
    ) -> (Duration, crate::config::Freshness) {
        if raw.freshness != Some(raw::Freshness::Origin) {
            for (field, name) in [(raw.max_ttl, "max_ttl"), (raw.default_ttl, "default_ttl")] {
                if let Some(field) = field {
                    self.error(
                        field.pos,
                        format!("{name} of {label} applies only with freshness: origin"),
                        Some("add `freshness: origin`, or use ttl".to_string()),
                    );
                }
            }
            let ttl = self.positive_duration(raw.ttl, defaults::ROUTE_TTL, "ttl");
            return (ttl, crate::config::Freshness::Config);
        }
        if let Some(ttl) = raw.ttl {
            self.error(
                ttl.pos,
                format!("ttl does not apply to {label}: its freshness comes from the origin"),
                Some(
                    "use max_ttl to cap the origin's freshness, default_ttl for responses that carry none"
                        .to_string(),
                ),
            );
        }
        let max_ttl = self.positive_duration(raw.max_ttl, defaults::ROUTE_MAX_TTL, "max_ttl");
        let default_ttl = raw
            .default_ttl
            .map(|d| self.positive_duration(Some(d), defaults::ROUTE_DEFAULT_TTL, "default_ttl"));
        (
            max_ttl,
            crate::config::Freshness::Origin {
                max_ttl,
                default_ttl,
            },
        )
    }
}
