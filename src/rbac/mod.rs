//! Role-based access control against Stytch's RBAC policy.

pub(crate) mod cache;
pub(crate) mod decision;
pub(crate) mod policy;
pub(crate) mod resource_action;
mod slot;
mod verdict;

pub(crate) use cache::{PolicyCache, Subject};
pub(crate) use policy::{Policy, Role};
pub use verdict::Verdict;
