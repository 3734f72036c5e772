//! The emulated project (records, policy and keys) and the logic of its
//! endpoints, one group a module: [`sessions`] (authenticate, revoke), [`jwks`]
//! (keys and signing), [`rbac`] (project and organization policies), [`m2m`]
//! (M2M clients and their token endpoint), [`connected_apps`] (Connected-App
//! access tokens and introspection), [`discovery`] (authorization-server
//! metadata). The organization and member operations of the test handle are here.

mod connected_apps;
mod discovery;
mod jwks;
mod m2m;
mod rbac;
mod sessions;

use std::collections::HashMap;
use std::time::SystemTime;

use super::keys::{KeySet, SigningKey};
use serde_json::{Map, Value};

use super::model::{
    AccessTokenRecord, ClientRecord, Config, ConnectedAppRecord, M2mClientRecord, MemberRecord,
    OrgRecord, SessionRecord, dedup, new_id,
};
use super::wire::merge_claims;
use crate::rbac::policy::Policy;

/// The mutable project state.
pub(crate) struct Project {
    config: Config,
    orgs: HashMap<String, OrgRecord>,
    members: HashMap<String, MemberRecord>,
    sessions: HashMap<String, SessionRecord>,
    /// Session token → session id.
    tokens: HashMap<String, String>,
    policy: Policy,
    keys: KeySet,
    m2m_clients: HashMap<String, M2mClientRecord>,
    connected_apps: HashMap<String, ConnectedAppRecord>,
    /// Connected-App access tokens by `jti`.
    access_tokens: HashMap<String, AccessTokenRecord>,
}

impl Project {
    /// A project without organizations, with the default policy and one key.
    pub(crate) fn new(config: Config, now: SystemTime) -> Self {
        let first = SigningKey::generate(new_id("jwk", config.env), now);
        Self {
            config,
            orgs: HashMap::new(),
            members: HashMap::new(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            policy: rbac::with_default_policy(Policy::default()),
            keys: KeySet::new(first),
            m2m_clients: HashMap::new(),
            connected_apps: HashMap::new(),
            access_tokens: HashMap::new(),
        }
    }

    pub(crate) fn create_organization(&mut self, slug: &str, now: SystemTime) -> String {
        let id = new_id("organization", self.config.env);
        self.orgs.insert(
            id.clone(),
            OrgRecord {
                id: id.clone(),
                slug: slug.to_owned(),
                created_at: now,
                custom_roles: Vec::new(),
            },
        );
        id
    }

    pub(crate) fn create_member(
        &mut self,
        org_id: &str,
        email: &str,
        roles: &[&str],
        now: SystemTime,
    ) -> String {
        assert!(
            self.orgs.contains_key(org_id),
            "StytchEmulator::create_member: unknown organization_id {org_id:?}"
        );
        let id = new_id("member", self.config.env);
        self.members.insert(
            id.clone(),
            MemberRecord {
                id: id.clone(),
                org_id: org_id.to_owned(),
                email: email.to_owned(),
                roles: dedup(roles.iter().map(|r| (*r).to_owned())),
                created_at: now,
                updated_at: now,
            },
        );
        id
    }

    pub(crate) fn set_member_roles(&mut self, member_id: &str, roles: &[&str], now: SystemTime) {
        let member = self.members.get_mut(member_id).unwrap_or_else(|| {
            panic!("StytchEmulator::set_member_roles: unknown member_id {member_id:?}")
        });
        member.roles = dedup(roles.iter().map(|r| (*r).to_owned()));
        member.updated_at = now;
    }

    /// A new `<kind>-…` client whose tokens carry `custom_claims` (reserved names
    /// and Stytch's claims left out).
    fn new_client(&self, kind: &str, custom_claims: Map<String, Value>) -> ClientRecord {
        let mut claims = Map::new();
        merge_claims(&mut claims, custom_claims);
        ClientRecord::new(kind, self.config.env, claims)
    }

    /// `["stytch_member"]` followed by the member's explicit roles, deduplicated.
    fn session_roles(&self, member_id: &str) -> Vec<String> {
        let explicit = self
            .members
            .get(member_id)
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        dedup(std::iter::once("stytch_member".to_owned()).chain(explicit))
    }
}
