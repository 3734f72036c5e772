//! The local authorization decision, as Stytch defines it (wire spec §6.3).

use std::collections::HashMap;
use std::sync::Arc;

use super::policy::{Permission, Role, Scope};

/// Named collections of permissions, indexed once per policy fetch: a policy's roles
/// (role id → permissions), or its scopes (scope → permissions).
#[derive(Debug, Default)]
pub(crate) struct Grants {
    /// foldhash: names come from Stytch's policy and from verified tokens, and a
    /// decision looks up every name the caller holds (SipHash cost more than the
    /// decision).
    roles: HashMap<String, Vec<(String, Vec<String>)>, foldhash::fast::RandomState>,
}

impl Grants {
    /// Role id → permissions.
    pub(crate) fn of_roles(roles: &[Role]) -> Self {
        Self::of(roles.iter().map(|r| (&r.role_id, &r.permissions)))
    }

    /// Scope → permissions (what a Connected-App token's scopes grant).
    pub(crate) fn of_scopes(scopes: &[Scope]) -> Self {
        Self::of(scopes.iter().map(|s| (&s.scope, &s.permissions)))
    }

    fn of<'a>(named: impl Iterator<Item = (&'a String, &'a Vec<Permission>)>) -> Self {
        let mut map: HashMap<String, Vec<(String, Vec<String>)>, _> = HashMap::default();
        for (name, permissions) in named {
            map.entry(name.clone()).or_default().extend(
                permissions
                    .iter()
                    .map(|p| (p.resource_id.clone(), p.actions.clone())),
            );
        }
        Self { roles: map }
    }

    /// Every name that grants `action` on `resource`, sorted (for a refusal that says
    /// which scopes would have been enough).
    pub(crate) fn granting(&self, resource: &str, action: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .roles
            .keys()
            .filter(|name| self.grants(name, resource, action))
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    fn grants(&self, role_id: &str, resource: &str, action: &str) -> bool {
        self.roles.get(role_id).is_some_and(|perms| {
            perms.iter().any(|(r, actions)| {
                r == resource && actions.iter().any(|a| a == action || a == "*")
            })
        })
    }
}

/// Why a decision was negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    TenancyMismatch,
    PermissionDenied,
}

/// The session roles that grant a permission, without copying role names on the hot
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Granting {
    /// Bit `i` set: the session's role `i` grants (sessions with up to 64 roles).
    Mask(u64),
    /// Role names (sessions with more roles, and Stytch's own verdicts).
    Names(Arc<[String]>),
}

impl Granting {
    /// The granting role names; `session_roles` are the roles the decision was made for.
    pub(crate) fn names<'a>(&'a self, session_roles: &'a [String]) -> Vec<&'a str> {
        match self {
            Granting::Mask(mask) => session_roles
                .iter()
                .take(64)
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, role)| role.as_str())
                .collect(),
            Granting::Names(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

/// Decides whether a session with `session_roles` in `member_org` may perform
/// `action` on `resource` in `checked_org`, against the project's roles and the
/// member organization's custom roles. Returns every granting role.
///
/// Exact resource match, action or `*`, unknown roles ignored, no roles → denied.
pub(crate) fn decide(
    project: &Grants,
    organization: Option<&Grants>,
    member_org: &str,
    checked_org: &str,
    session_roles: &[String],
    resource: &str,
    action: &str,
) -> Result<Granting, Denial> {
    if member_org != checked_org {
        return Err(Denial::TenancyMismatch);
    }
    let grants = |role: &String| {
        project.grants(role, resource, action)
            || organization.is_some_and(|org| org.grants(role, resource, action))
    };
    let granting = if session_roles.len() <= 64 {
        let mask = session_roles
            .iter()
            .enumerate()
            .filter(|(_, role)| grants(role))
            .fold(0u64, |mask, (i, _)| mask | (1 << i));
        (mask != 0).then_some(Granting::Mask(mask))
    } else {
        let names: Arc<[String]> = session_roles
            .iter()
            .filter(|r| grants(r))
            .cloned()
            .collect();
        (!names.is_empty()).then_some(Granting::Names(names))
    };
    granting.ok_or(Denial::PermissionDenied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Grants {
        Grants::of_roles(&[
            Role::new("viewer").allow("document", ["read"]),
            Role::new("editor")
                .allow("document", ["read", "write"])
                .allow("comment", ["create"]),
            Role::new("admin").allow("document", ["*"]),
            Role::new("stytch_member").allow("stytch.self", ["*"]),
        ])
    }

    fn org_a() -> Grants {
        Grants::of_roles(&[Role::new("auditor").allow("report", ["read"])])
    }

    #[test]
    fn decision_table() {
        let p = project();
        let a = org_a();
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (
            &'a str,
            Option<&'a Grants>,
            &'a str,
            &'a str,
            Vec<String>,
            &'a str,
            &'a str,
            Result<Vec<&'a str>, Denial>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "exact action",
                None,
                "org-a",
                "org-a",
                roles(&["viewer"]),
                "document",
                "read",
                Ok(vec!["viewer"]),
            ),
            (
                "action not granted",
                None,
                "org-a",
                "org-a",
                roles(&["viewer"]),
                "document",
                "delete",
                Err(Denial::PermissionDenied),
            ),
            (
                "wildcard action",
                None,
                "org-a",
                "org-a",
                roles(&["admin"]),
                "document",
                "delete",
                Ok(vec!["admin"]),
            ),
            (
                "wildcard is not a resource wildcard",
                None,
                "org-a",
                "org-a",
                roles(&["admin"]),
                "comment",
                "create",
                Err(Denial::PermissionDenied),
            ),
            (
                "no prefix match",
                None,
                "org-a",
                "org-a",
                roles(&["viewer"]),
                "doc",
                "read",
                Err(Denial::PermissionDenied),
            ),
            (
                "no prefix match (longer)",
                None,
                "org-a",
                "org-a",
                roles(&["viewer"]),
                "documents",
                "read",
                Err(Denial::PermissionDenied),
            ),
            (
                "case sensitive",
                None,
                "org-a",
                "org-a",
                roles(&["viewer"]),
                "Document",
                "read",
                Err(Denial::PermissionDenied),
            ),
            (
                "several roles, all granting listed",
                None,
                "org-a",
                "org-a",
                roles(&["viewer", "editor", "admin"]),
                "document",
                "read",
                Ok(vec!["viewer", "editor", "admin"]),
            ),
            (
                "several roles, one grants",
                None,
                "org-a",
                "org-a",
                roles(&["viewer", "editor"]),
                "document",
                "write",
                Ok(vec!["editor"]),
            ),
            (
                "unknown roles ignored",
                None,
                "org-a",
                "org-a",
                roles(&["ghost", "viewer"]),
                "document",
                "read",
                Ok(vec!["viewer"]),
            ),
            (
                "only unknown roles",
                None,
                "org-a",
                "org-a",
                roles(&["ghost"]),
                "document",
                "read",
                Err(Denial::PermissionDenied),
            ),
            (
                "empty roles",
                None,
                "org-a",
                "org-a",
                roles(&[]),
                "document",
                "read",
                Err(Denial::PermissionDenied),
            ),
            (
                "tenancy mismatch beats admin",
                None,
                "org-a",
                "org-b",
                roles(&["admin"]),
                "document",
                "read",
                Err(Denial::TenancyMismatch),
            ),
            (
                "org custom role in its org",
                Some(&a),
                "org-a",
                "org-a",
                roles(&["auditor"]),
                "report",
                "read",
                Ok(vec!["auditor"]),
            ),
            (
                "org custom role unknown elsewhere",
                None,
                "org-b",
                "org-b",
                roles(&["auditor"]),
                "report",
                "read",
                Err(Denial::PermissionDenied),
            ),
            (
                "project and org roles together",
                Some(&a),
                "org-a",
                "org-a",
                roles(&["auditor", "viewer"]),
                "document",
                "read",
                Ok(vec!["viewer"]),
            ),
            (
                "literal star action asked",
                None,
                "org-a",
                "org-a",
                roles(&["viewer"]),
                "document",
                "*",
                Err(Denial::PermissionDenied),
            ),
        ];
        for (name, org, member_org, checked_org, session_roles, resource, action, expected) in cases
        {
            let got = decide(
                &p,
                org,
                member_org,
                checked_org,
                &session_roles,
                resource,
                action,
            );
            let got = got
                .as_ref()
                .map(|g| g.names(&session_roles))
                .map_err(|d| *d);
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn scopes_grant_like_roles_and_say_which_would_have() {
        let scope = |name: &str, resource: &str, actions: &[&str]| Scope {
            scope: name.into(),
            description: String::new(),
            permissions: vec![Permission::new(resource, actions.iter().copied())],
        };
        let scopes = Grants::of_scopes(&[
            scope("read:documents", "document", &["read"]),
            scope("write:documents", "document", &["read", "write"]),
            scope("admin", "document", &["*"]),
            scope("read:*", "report", &["read"]),
        ]);
        let granted = ["openid".to_string(), "read:documents".to_string()];
        assert_eq!(
            decide(&scopes, None, "o", "o", &granted, "document", "read")
                .unwrap()
                .names(&granted),
            ["read:documents"]
        );
        assert_eq!(
            decide(&scopes, None, "o", "o", &granted, "document", "write"),
            Err(Denial::PermissionDenied)
        );
        assert_eq!(
            decide(&scopes, None, "o", "p", &granted, "document", "read"),
            Err(Denial::TenancyMismatch)
        );
        // `read:*` is a scope's name, not a wildcard.
        let star = ["read:*".to_string()];
        assert_eq!(
            decide(&scopes, None, "o", "o", &star, "document", "read"),
            Err(Denial::PermissionDenied)
        );
        assert_eq!(
            scopes.granting("document", "write"),
            ["admin", "write:documents"]
        );
        assert!(scopes.granting("invoice", "read").is_empty());
    }

    #[test]
    fn sessions_with_more_than_64_roles_list_every_granting_role() {
        let p = project();
        let mut roles: Vec<String> = (0..70).map(|i| format!("ghost-{i}")).collect();
        roles.insert(3, "viewer".into());
        roles.push("editor".into());
        let got = decide(&p, None, "o", "o", &roles, "document", "read").unwrap();
        assert!(matches!(got, Granting::Names(_)));
        assert_eq!(got.names(&roles), ["viewer", "editor"]);
        let few = ["ghost".to_string(), "editor".to_string()];
        let got = decide(&p, None, "o", "o", &few, "document", "read").unwrap();
        assert_eq!(got, Granting::Mask(0b10));
        assert_eq!(got.names(&few), ["editor"]);
    }
}
