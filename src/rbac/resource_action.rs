//! The resource and the action a guard or an extractor asks about.

use std::fmt;
use std::sync::Arc;

/// A name from the RBAC policy: a constant (typed permissions, no allocation per
/// request) or shared by a guard's clones.
#[derive(Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Static(name) => name,
            Name::Shared(name) => name,
        }
    }
}

/// `action` on `resource`, as named in the policy. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ResourceAction {
    resource: Name,
    action: Name,
}

impl ResourceAction {
    /// Names known at compile time ([`RequiredPermission`](crate::RequiredPermission)).
    pub(crate) const fn from_static(resource: &'static str, action: &'static str) -> Self {
        Self {
            resource: Name::Static(resource),
            action: Name::Static(action),
        }
    }

    /// Names given at run time, allocated once.
    pub(crate) fn new(resource: &str, action: &str) -> Self {
        Self {
            resource: Name::Shared(Arc::from(resource)),
            action: Name::Shared(Arc::from(action)),
        }
    }

    pub(crate) fn resource(&self) -> &str {
        self.resource.as_str()
    }

    pub(crate) fn action(&self) -> &str {
        self.action.as_str()
    }
}

impl PartialEq for ResourceAction {
    fn eq(&self, other: &Self) -> bool {
        self.resource() == other.resource() && self.action() == other.action()
    }
}

impl Eq for ResourceAction {}

impl fmt::Debug for ResourceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceAction")
            .field("resource", &self.resource())
            .field("action", &self.action())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_shared_names_compare_by_value() {
        const READ: ResourceAction = ResourceAction::from_static("document", "read");
        let shared = ResourceAction::new("document", "read");
        assert_eq!(READ, shared);
        assert_eq!((shared.resource(), shared.action()), ("document", "read"));
        assert_ne!(READ, ResourceAction::new("document", "write"));
        assert_ne!(READ, ResourceAction::new("documents", "read"));
    }
}
