//! Mechanisms with no knowledge of Stytch: coalescing calls, leases on calls in flight,
//! bounded sets and caches, rate-limited warnings, and refreshing a cached value.

pub(crate) mod bounded_cache;
pub(crate) mod permits;
pub(crate) mod recent_set;
pub(crate) mod refresh;
pub(crate) mod single_flight;
pub(crate) mod striped;
pub(crate) mod warn_limiter;
