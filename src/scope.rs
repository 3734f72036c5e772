//! OAuth scopes as Stytch's SDKs read them (tokens wire spec §1.5, §2.5): parsing the
//! `scope` claim, and the two ways a required scope is matched.
//!
//! * **M2M tokens** ([`m2m_grants`]): a scope `action:resource` is split at its
//!   *first* colon (as the Go and Rust SDKs do; Node, Ruby and Java drop everything
//!   after a second colon, so that `read:users:x` would grant `read:users`, which we
//!   refuse); one without a colon is the action with resource `-`. A required scope
//!   is granted when a granted scope has the same action and the same resource or the
//!   resource `*`. `*` is a wildcard only in the resource position: `*:users` grants
//!   nothing but `*:users`. Exact and case-sensitive otherwise.
//! * **Connected-App tokens** ([`exact_grants`]): the scopes are names from the
//!   project's RBAC policy, and `read:*` is just a name: a required scope is granted
//!   only by the same string.
//!
//! Scope strings are separated by single spaces on the wire; empty strings (two
//! spaces, a leading or trailing space) are not scopes and are dropped, both from
//! tokens and from requirements.

use std::sync::Arc;

/// Required scopes, all of them needed, as a guard keeps them.
#[derive(Debug, Clone)]
pub(crate) struct Scopes {
    list: Arc<[String]>,
    /// Space-separated, for rejections.
    joined: Arc<str>,
}

impl Scopes {
    /// The scopes of a space-separated list.
    pub(crate) fn required(scopes: &str) -> Self {
        let list: Arc<[String]> = parse(scopes).into();
        let joined = list.join(" ").into();
        Self { list, joined }
    }

    /// Adds the scopes of `more`.
    pub(crate) fn and(&self, more: &str) -> Self {
        Self::required(&format!("{} {more}", self.joined))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(String::as_str)
    }

    /// The scopes, space-separated.
    pub(crate) fn joined(&self) -> Arc<str> {
        Arc::clone(&self.joined)
    }
}

/// The scopes of a `scope` claim, empty strings dropped.
pub(crate) fn parse(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `(action, resource)` of a scope: split at the first `:`, or `(scope, "-")`.
fn action_resource(scope: &str) -> (&str, &str) {
    scope.split_once(':').unwrap_or((scope, "-"))
}

/// Whether the M2M scopes `granted` grant `required` (§1.5, first-colon split).
pub(crate) fn m2m_grants(granted: &[String], required: &str) -> bool {
    let (action, resource) = action_resource(required);
    granted.iter().any(|scope| {
        let (granted_action, granted_resource) = action_resource(scope);
        granted_action == action && (granted_resource == "*" || granted_resource == resource)
    })
}

/// Whether the Connected-App scopes `granted` include `required` exactly.
pub(crate) fn exact_grants(granted: &[String], required: &str) -> bool {
    granted.iter().any(|scope| scope == required)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &str) -> Vec<String> {
        parse(s)
    }

    /// The table of the wire spec §1.5, and the cases it derives.
    #[test]
    fn m2m_scope_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("read:users write:users", "read:users", true),
            ("read:*", "read:users", true),
            ("*:users", "read:users", false),
            ("write:*", "delete:books", false),
            ("read", "read:users", false),
            ("read:users", "read", false),
            ("read:*", "read", true),
            ("*", "*", true),
            ("*", "read", false),
            ("*", "read:users", false),
            ("read_users", "read_users", true),
            ("Read:users", "read:users", false),
            ("read:Users", "read:users", false),
            ("", "read:users", false),
            // Several colons: split at the first (Go, Rust), so the tail is part of
            // the resource and never dropped (Node, Ruby, Java would grant these).
            ("read:users:x", "read:users", false),
            ("read:users", "read:users:x", false),
            ("read:users:x", "read:users:x", true),
            ("read:*", "read:users:x", true),
            ("a:b:c", "a:b", false),
            // A leading colon: action "", resource "users".
            (":users", ":users", true),
            (":users", "read:users", false),
        ];
        for (granted, required, expected) in cases {
            assert_eq!(
                m2m_grants(&scopes(granted), required),
                *expected,
                "granted {granted:?}, required {required:?}"
            );
        }
    }

    #[test]
    fn connected_app_scopes_match_exactly() {
        let granted = scopes("openid read:* read:documents");
        assert!(exact_grants(&granted, "read:documents"));
        assert!(exact_grants(&granted, "read:*"));
        assert!(!exact_grants(&granted, "read:users"), "no wildcard");
        assert!(!exact_grants(&granted, "read"));
        assert!(!exact_grants(&granted, "OPENID"));
    }

    #[test]
    fn empty_strings_are_not_scopes() {
        assert_eq!(scopes("  a  b "), ["a", "b"]);
        assert!(scopes("").is_empty());
        assert!(scopes("   ").is_empty());
        // Only spaces separate, as on the wire: a tab is part of a scope.
        assert_eq!(scopes("a\tb"), ["a\tb"]);
    }
}
