//! `GET /v1/b2b/rbac/policy` and `GET /v1/b2b/rbac/organizations/{organization_id}`,
//! the Stytch default policy, and which roles grant an action (for
//! `authorization_check`).

use serde_json::{Map, Value, json};

use super::Project;
use crate::rbac::policy::{Permission, Policy, Resource, Role};
use crate::testing::wire::{self, ApiError, to_json};

impl Project {
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        self.policy = with_default_policy(policy);
    }

    pub(crate) fn set_organization_roles(&mut self, org_id: &str, roles: Vec<Role>) {
        let org = self.orgs.get_mut(org_id).unwrap_or_else(|| {
            panic!("StytchEmulator::set_organization_roles: unknown organization_id {org_id:?}")
        });
        org.custom_roles = roles;
    }

    /// `GET /v1/b2b/rbac/policy`.
    pub(crate) fn policy(&self) -> Result<Value, ApiError> {
        let mut fields = Map::new();
        fields.insert("policy".into(), to_json(&self.policy));
        Ok(wire::success(self.config.env, fields))
    }

    /// `GET /v1/b2b/rbac/organizations/{organization_id}` (id or slug).
    pub(crate) fn organization_policy(&self, org: &str) -> Result<Value, ApiError> {
        let org = self
            .orgs
            .get(org)
            .or_else(|| self.orgs.values().find(|o| o.slug == org))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "organization_not_found",
                    "Organization could not be found.",
                )
            })?;
        let mut fields = Map::new();
        fields.insert(
            "org_policy".into(),
            json!({"roles": to_json(&org.custom_roles)}),
        );
        Ok(wire::success(self.config.env, fields))
    }

    /// Every session role granting `action` on `resource_id`, in session order.
    pub(super) fn granting_roles(
        &self,
        session_roles: &[String],
        org_id: &str,
        resource_id: &str,
        action: &str,
    ) -> Vec<String> {
        let org_roles = self
            .orgs
            .get(org_id)
            .map(|o| o.custom_roles.as_slice())
            .unwrap_or_default();
        let grants = |p: &Permission| {
            p.resource_id == resource_id && p.actions.iter().any(|a| a == action || a == "*")
        };
        session_roles
            .iter()
            .filter(|role_id| {
                self.policy
                    .roles
                    .iter()
                    .chain(org_roles)
                    .filter(|r| &&r.role_id == role_id)
                    .any(|r| r.permissions.iter().any(grants))
            })
            .cloned()
            .collect()
    }
}

/// Stytch's default `stytch.*` resources and their actions.
const STYTCH_RESOURCES: [(&str, &[&str]); 5] = [
    (
        "stytch.organization",
        &[
            "update.info.name",
            "update.info.slug",
            "update.info.logo_url",
            "update.settings.sso-jit-provisioning",
            "update.settings.email-jit-provisioning",
            "update.settings.allowed-auth-methods",
            "update.settings.mfa-policy",
            "update.settings.implicit-roles",
            "delete",
        ],
    ),
    (
        "stytch.member",
        &[
            "create",
            "reactivate",
            "delete",
            "search",
            "update.info.name",
            "update.info.email",
            "update.info.untrusted-metadata",
            "update.settings.is-breakglass",
            "update.settings.mfa-enrolled",
            "update.settings.roles",
        ],
    ),
    ("stytch.sso", &["create", "get", "update", "delete"]),
    (
        "stytch.scim",
        &["create", "get", "update", "delete", "rotate"],
    ),
    (
        "stytch.self",
        &[
            "update.info.name",
            "update.info.untrusted-metadata",
            "update.info.mfa-phone",
            "update.info.delete.password",
            "update.settings.mfa-enrolled",
            "update.settings.default-mfa-method",
            "revoke-sessions",
            "delete",
        ],
    ),
];

/// Stytch's default roles and `stytch.*` resources, overridable by `policy`.
pub(super) fn with_default_policy(policy: Policy) -> Policy {
    let mut admin = Role::new("stytch_admin");
    admin.description = "Granted to Members who create an Organization. Cannot be deleted.".into();
    for (resource, _) in STYTCH_RESOURCES {
        admin = admin.allow(resource, ["*"]);
    }
    let mut member = Role::new("stytch_member").allow("stytch.self", ["*"]);
    member.description = "Granted to all Members upon creation. Cannot be deleted.".into();

    let mut out = Policy::default();
    for role in [admin, member] {
        if !policy.roles.iter().any(|r| r.role_id == role.role_id) {
            out.roles.push(role);
        }
    }
    out.roles.extend(policy.roles);
    for (resource_id, actions) in STYTCH_RESOURCES {
        if !policy
            .resources
            .iter()
            .any(|r| r.resource_id == resource_id)
        {
            out.resources
                .push(Resource::new(resource_id, actions.iter().copied()));
        }
    }
    out.resources.extend(policy.resources);
    out.scopes = policy.scopes;
    out
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::testing::model::Config;

    fn config() -> Config {
        Config {
            env: "test",
            project_id: "project-test-x".into(),
            secret: "secret".into(),
            issuer: "stytch.com/project-test-x".into(),
            origin: "http://127.0.0.1:1".into(),
        }
    }

    #[test]
    fn default_policy_is_kept_unless_overridden() {
        let p = with_default_policy(Policy::new().role(Role::new("editor")));
        let ids: Vec<_> = p.roles.iter().map(|r| r.role_id.as_str()).collect();
        assert_eq!(ids, ["stytch_admin", "stytch_member", "editor"]);
        assert_eq!(p.resources.len(), 5);

        let p = with_default_policy(Policy::new().role(Role::new("stytch_member")));
        let member = p
            .roles
            .iter()
            .find(|r| r.role_id == "stytch_member")
            .unwrap();
        assert!(member.permissions.is_empty());
        assert_eq!(p.roles.len(), 2);
    }

    #[test]
    fn granting_roles_merge_project_and_org_roles() {
        let now = SystemTime::now();
        let mut s = Project::new(config(), now);
        s.set_policy(Policy::new().role(Role::new("reader").allow("doc", ["read"])));
        let org = s.create_organization("acme", now);
        s.set_organization_roles(&org, vec![Role::new("writer").allow("doc", ["*"])]);
        let roles: Vec<String> = ["stytch_member", "reader", "writer", "ghost"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            s.granting_roles(&roles, &org, "doc", "read"),
            ["reader", "writer"]
        );
        assert_eq!(s.granting_roles(&roles, &org, "doc", "write"), ["writer"]);
        assert!(s.granting_roles(&roles, &org, "docs", "read").is_empty());
        assert_eq!(
            s.granting_roles(&roles, &org, "stytch.self", "delete"),
            ["stytch_member"]
        );
    }
}
