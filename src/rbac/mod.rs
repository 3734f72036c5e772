//! Role-based access control against Stytch's RBAC policy.

pub(crate) mod cache;
pub(crate) mod decision;
pub(crate) mod guard;
mod policy;
pub(crate) mod resource_action;
pub(crate) mod typed;
mod verdict;

pub(crate) use cache::PolicyCache;
pub use policy::{Permission, Policy, Resource, Role, Scope};
pub use verdict::Verdict;
