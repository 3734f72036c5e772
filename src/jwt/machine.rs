//! The claims of Stytch's machine tokens (tokens wire spec §1.2, §2.2): M2M
//! client-credentials tokens, and Connected-App access tokens acting for a member.
//! Decoded with the other kinds in one pass ([`super::claims`]).
//!
//! Neither can be confirmed or renewed by Stytch (there is no remote check for M2M
//! tokens; Connected-App introspection is not on the request path): a token past its
//! `exp` or the machine-token age limit is refused.

use serde_json::{Map, Value};

use super::registered::{ClaimRules, Registered, TokenKind};
use super::rejected::Rejected;
use super::session::OrganizationClaim;
use crate::caller::{ConnectedAppCaller, ConnectedAppData, M2mCaller, M2mData};
use crate::timestamp::from_unix;

/// The decoded payload of an M2M access token.
#[derive(Debug, Clone)]
pub(crate) struct M2mClaims {
    pub(crate) registered: Registered,
    /// The space-separated `scope` claim.
    pub(crate) scope: String,
    /// Every other top-level claim.
    pub(crate) custom: Map<String, Value>,
}

/// The decoded payload of a Connected-App access token (B2B: with the organization).
#[derive(Debug, Clone)]
pub(crate) struct ConnectedAppClaims {
    pub(crate) registered: Registered,
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) organization: OrganizationClaim,
    pub(crate) custom: Map<String, Value>,
}

impl TokenKind for M2mClaims {
    fn registered(&self) -> &Registered {
        &self.registered
    }

    fn max_age_secs(&self, rules: &ClaimRules) -> u64 {
        rules.machine_max_age_secs
    }
}

impl TokenKind for ConnectedAppClaims {
    fn registered(&self) -> &Registered {
        &self.registered
    }

    /// A Connected-App token names its app and its member's organization.
    fn check_kind(&self) -> Result<(), Rejected> {
        if self.client_id.is_empty() || self.organization.organization_id.is_empty() {
            return Err(Rejected::InvalidClaims);
        }
        Ok(())
    }

    fn max_age_secs(&self, rules: &ClaimRules) -> u64 {
        rules.machine_max_age_secs
    }
}

impl M2mClaims {
    /// The caller these verified claims describe.
    pub(crate) fn into_caller(self) -> M2mCaller {
        M2mCaller::new(M2mData {
            scopes: crate::scope::parse(&self.scope),
            issued_at: from_unix(self.registered.iat),
            expires_at: from_unix(self.registered.exp),
            client_id: self.registered.sub,
            custom_claims: self.custom,
        })
    }
}

impl ConnectedAppClaims {
    /// The caller these verified claims describe.
    pub(crate) fn into_caller(self) -> ConnectedAppCaller {
        ConnectedAppCaller::new(ConnectedAppData {
            scopes: crate::scope::parse(&self.scope),
            issued_at: from_unix(self.registered.iat),
            expires_at: from_unix(self.registered.exp),
            member_id: self.registered.sub,
            organization_id: self.organization.organization_id,
            organization_slug: self.organization.slug,
            client_id: self.client_id,
            custom_claims: self.custom,
        })
    }
}
