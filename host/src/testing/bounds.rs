//! How many series the filter can make of each metric under a configuration, whatever the
//! traffic: what the cardinality tests hold the host's and Envoy's expositions to.
//!
//! `R` = configured routes + `unmatched`; `M` = the standard methods + `other`; `S` =
//! statuses 100..=999 + `0`; `P` = providers + `other` + `unknown`; `K` =
//! `models.max_per_provider` + `other` + `unknown` per provider and per VM; `H` = bucket
//! bounds + `+Inf` + `_count` (+ `_sum` where there is one); `T` = unique-violation
//! tables. Requests R·M·S, request seconds R·M·H, probe attempts and failures P·K each,
//! ensure-version seconds P·H, rate limits R, unique violations T, the rest 1.

use prompter_filter::catalog::Metric;
use prompter_filter::config::Config;
use prompter_filter::labels::{METHODS, STATUS_CODES};

/// Every three-digit status, and `0` for none (or one that is not three digits).
const STATUSES: usize = *STATUS_CODES.end() as usize - *STATUS_CODES.start() as usize + 2;

/// Where the series are counted.
#[derive(Debug, Clone, Copy)]
pub struct Exposition {
    /// Histograms have a `_sum` (the host) or not (Envoy).
    pub with_sum: bool,
    /// VMs keeping their own model budget (Envoy: one per worker).
    pub vms: usize,
}

impl Exposition {
    pub const HOST: Exposition = Exposition {
        with_sum: true,
        vms: 1,
    };

    pub fn envoy(workers: usize) -> Exposition {
        Exposition {
            with_sum: false,
            vms: workers,
        }
    }
}

/// The most series `metric` can reach under `config` in `exposition`.
pub fn series_bound(config: &Config, metric: Metric, exposition: Exposition) -> usize {
    let routes = config.routes.len() + 1;
    let methods = METHODS.len() + 1;
    let providers = config.providers.len() + 2;
    let models = (config.models.max_per_provider + 2) * exposition.vms;
    let histogram = |bounds: usize| bounds + 1 + 1 + usize::from(exposition.with_sum);
    match metric {
        Metric::RequestsTotal => routes * methods * STATUSES,
        Metric::RequestSeconds => routes * methods * histogram(config.request_buckets.bounds.len()),
        Metric::ProbeAttempts | Metric::ProbeFailures => providers * models,
        Metric::EnsureVersionSeconds => {
            providers * histogram(config.ensure_version_buckets.bounds.len())
        }
        Metric::RateLimitHits => routes,
        Metric::UniqueViolations => config.unique_violations.len(),
        _ => 1,
    }
}
