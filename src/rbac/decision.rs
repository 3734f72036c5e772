//! The local authorization decision, as Stytch defines it (wire spec §6.3).

use std::collections::HashMap;

use super::policy::Role;

/// Role → permissions, indexed once per policy fetch.
#[derive(Debug, Default)]
pub(crate) struct CompiledRoles {
    roles: HashMap<String, Vec<(String, Vec<String>)>>,
}

impl CompiledRoles {
    pub(crate) fn new(roles: &[Role]) -> Self {
        let mut map: HashMap<String, Vec<(String, Vec<String>)>> = HashMap::new();
        for role in roles {
            map.entry(role.role_id.clone()).or_default().extend(
                role.permissions
                    .iter()
                    .map(|p| (p.resource_id.clone(), p.actions.clone())),
            );
        }
        Self { roles: map }
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

/// Decides whether a session with `session_roles` in `member_org` may perform
/// `action` on `resource` in `checked_org`, against the project's roles and the
/// member organization's custom roles. Returns every granting role.
///
/// Exact resource match, action or `*`, unknown roles ignored, no roles → denied.
pub(crate) fn decide(
    project: &CompiledRoles,
    organization: Option<&CompiledRoles>,
    member_org: &str,
    checked_org: &str,
    session_roles: &[String],
    resource: &str,
    action: &str,
) -> Result<Vec<String>, Denial> {
    if member_org != checked_org {
        return Err(Denial::TenancyMismatch);
    }
    let granting: Vec<String> = session_roles
        .iter()
        .filter(|role| {
            project.grants(role, resource, action)
                || organization.is_some_and(|org| org.grants(role, resource, action))
        })
        .cloned()
        .collect();
    if granting.is_empty() {
        Err(Denial::PermissionDenied)
    } else {
        Ok(granting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> CompiledRoles {
        CompiledRoles::new(&[
            Role::new("viewer").allow("document", ["read"]),
            Role::new("editor")
                .allow("document", ["read", "write"])
                .allow("comment", ["create"]),
            Role::new("admin").allow("document", ["*"]),
            Role::new("stytch_member").allow("stytch.self", ["*"]),
        ])
    }

    fn org_a() -> CompiledRoles {
        CompiledRoles::new(&[Role::new("auditor").allow("report", ["read"])])
    }

    #[test]
    fn decision_table() {
        let p = project();
        let a = org_a();
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (
            &'a str,
            Option<&'a CompiledRoles>,
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
            let expected = expected.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(got, expected, "{name}");
        }
    }
}
