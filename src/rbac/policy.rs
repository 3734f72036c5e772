//! Stytch's RBAC policy document (`GET /v1/b2b/rbac/policy`). The layer parses it;
//! users name these types only to give the emulator a policy, so they are public as
//! `axum_stytch::testing::{Policy, Role, ..}` (feature `test-util`) and their builders
//! exist only there.

use serde::{Deserialize, Serialize};

/// A project's RBAC policy: the roles and what each one may do, for
/// [`StytchEmulator::set_policy`](crate::testing::StytchEmulator::set_policy).
///
/// Only `roles` matters for member-session decisions; `resources` and
/// `scopes` are kept so the emulator can serve a complete document.
///
/// # Examples
///
/// ```
/// use axum_stytch::testing::{Policy, Role};
///
/// let policy = Policy::new()
///     .role(Role::new("viewer").allow("document", ["read"]))
///     .role(Role::new("admin").allow("document", ["*"]));
/// assert_eq!(policy.roles.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Policy {
    /// Roles and their permissions.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Resources and the actions defined on them.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Scopes (used by M2M and connected-app tokens, not member sessions).
    #[serde(default)]
    pub scopes: Vec<Scope>,
}

#[cfg(any(test, feature = "test-util"))]
impl Policy {
    /// An empty policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a role (builder style).
    pub fn role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }

    /// Adds a resource definition (builder style).
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resources.push(resource);
        self
    }

    /// Adds a scope, what Connected-App tokens are granted (builder style).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scopes.push(scope);
        self
    }
}

/// A role and the permissions it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Role {
    /// The role's id, as it appears in a session's `roles` claim.
    pub role_id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// What the role may do.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

#[cfg(any(test, feature = "test-util"))]
impl Role {
    /// A role with no permissions.
    pub fn new(role_id: impl Into<String>) -> Self {
        Self {
            role_id: role_id.into(),
            description: String::new(),
            permissions: Vec::new(),
        }
    }

    /// Grants `actions` on `resource_id` (builder style). `"*"` means every action.
    pub fn allow<I, A>(mut self, resource_id: impl Into<String>, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.permissions.push(Permission::new(resource_id, actions));
        self
    }
}

/// Actions allowed on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Permission {
    /// The resource, matched by exact string equality.
    pub resource_id: String,
    /// Allowed actions; `"*"` allows every action.
    pub actions: Vec<String>,
}

#[cfg(any(test, feature = "test-util"))]
impl Permission {
    /// A permission for `actions` on `resource_id`.
    pub fn new<I, A>(resource_id: impl Into<String>, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        Self {
            resource_id: resource_id.into(),
            actions: actions.into_iter().map(Into::into).collect(),
        }
    }
}

/// A resource and the actions defined on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resource {
    /// The resource's id.
    pub resource_id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Actions defined for it.
    #[serde(default)]
    pub actions: Vec<String>,
}

#[cfg(any(test, feature = "test-util"))]
impl Resource {
    /// A resource with the given actions.
    pub fn new<I, A>(resource_id: impl Into<String>, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        Self {
            resource_id: resource_id.into(),
            description: String::new(),
            actions: actions.into_iter().map(Into::into).collect(),
        }
    }
}

/// A scope: a named collection of permissions a member can grant a Connected App.
/// [`RequireAuthz`](crate::RequireAuthz) allows a Connected-App token when one of its
/// scopes grants the permission (member sessions use roles instead).
///
/// # Examples
///
/// ```
/// use axum_stytch::testing::{Policy, Scope};
///
/// let policy = Policy::new().scope(Scope::new("read:documents").allow("document", ["read"]));
/// assert_eq!(policy.scopes[0].scope, "read:documents");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Scope {
    /// The scope string, e.g. `read:docs`.
    pub scope: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// What the scope grants.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

#[cfg(any(test, feature = "test-util"))]
impl Scope {
    /// A scope with no permissions.
    pub fn new(scope: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            description: String::new(),
            permissions: Vec::new(),
        }
    }

    /// Grants `actions` on `resource_id` (builder style). `"*"` means every action.
    pub fn allow<I, A>(mut self, resource_id: impl Into<String>, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        self.permissions.push(Permission::new(resource_id, actions));
        self
    }
}
