//! The emulated project: organizations, members, sessions, policy, keys,
//! faults and request counters, plus the endpoint logic that works on them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::keys::{JwtRejection, KeySet, SigningKey};
use super::wire;
use super::{Endpoint, Fault, SessionInfo, SessionOptions, SessionTokens};
use crate::clock::{Clock, MockClock};
use crate::rbac::policy::{Permission, Policy, Resource, Role};

/// Error type answered for a session JWT that is malformed, not signed by a
/// served key, or issued for another project/issuer.
pub(crate) const INVALID_JWT_ERROR_TYPE: &str = "jwt_invalid";

/// Smallest and largest accepted `session_duration_minutes`.
const DURATION_MINUTES: std::ops::RangeInclusive<i64> = 5..=527_040;

/// Immutable project settings.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `"test"` or `"live"`, used in generated ids.
    pub(crate) env: &'static str,
    pub(crate) project_id: String,
    pub(crate) secret: String,
    pub(crate) issuer: String,
}

/// Everything the HTTP server and the test handle share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: MockClock,
    pub(crate) refusing: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(config: Config, clock: MockClock) -> Self {
        let now = clock.now();
        let state = State::new(config.clone(), now);
        Self {
            config,
            clock,
            refusing: AtomicBool::new(false),
            state: Mutex::new(state),
        }
    }

    /// Locks the state, recovering from a poisoned lock (a panicking test).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

/// An emulated organization.
#[derive(Debug, Clone)]
pub(crate) struct OrgRecord {
    pub(crate) id: String,
    pub(crate) slug: String,
    pub(crate) created_at: SystemTime,
    pub(crate) custom_roles: Vec<Role>,
}

/// An emulated member.
#[derive(Debug, Clone)]
pub(crate) struct MemberRecord {
    pub(crate) id: String,
    pub(crate) org_id: String,
    pub(crate) email: String,
    /// Explicitly assigned role ids (without the implicit `stytch_member`).
    pub(crate) roles: Vec<String>,
    pub(crate) created_at: SystemTime,
    pub(crate) updated_at: SystemTime,
}

/// An emulated member session.
#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    pub(crate) id: String,
    pub(crate) member_id: String,
    pub(crate) org_id: String,
    pub(crate) token: String,
    pub(crate) started_at: SystemTime,
    pub(crate) last_accessed_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) revoked: bool,
    pub(crate) roles: Vec<String>,
    pub(crate) custom_claims: Map<String, Value>,
    pub(crate) factors: Vec<Value>,
}

impl SessionRecord {
    fn is_live(&self, now: SystemTime) -> bool {
        !self.revoked && self.expires_at > now
    }
}

/// An API error answered with the five-field Stytch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) error_type: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    fn session_not_found() -> Self {
        Self::new(404, "session_not_found", "Session could not be found.")
    }
}

/// Faults armed for one endpoint.
#[derive(Debug, Default)]
struct FaultQueue {
    /// While armed, calls wait until it is dropped ([`Fault::Hold`]).
    hold: Option<tokio::sync::watch::Sender<()>>,
    delay: Option<Duration>,
    queued: VecDeque<Fault>,
}

/// What a call meets when it arrives: in this order, a hold, a delay, and the one-shot
/// fault (if any) that answers it.
#[derive(Debug, Default)]
pub(crate) struct Arrival {
    pub(crate) hold: Option<Hold>,
    pub(crate) delay: Option<Duration>,
    pub(crate) fault: Option<Fault>,
}

/// A call held by [`Fault::Hold`].
#[derive(Debug)]
pub(crate) struct Hold(tokio::sync::watch::Receiver<()>);

impl Hold {
    /// Waits until the hold is released (its sender dropped by `release` or
    /// `clear_faults`).
    pub(crate) async fn released(mut self) {
        // Nothing is ever sent: `changed` fails once the sender is gone.
        while self.0.changed().await.is_ok() {}
    }
}

impl FaultQueue {
    fn push(&mut self, fault: Fault) {
        match fault {
            Fault::Hold => {
                self.hold
                    .get_or_insert_with(|| tokio::sync::watch::channel(()).0);
            }
            Fault::Delay(d) => self.delay = Some(d),
            other => self.queued.push_back(other),
        }
    }

    /// What this call meets.
    fn take(&mut self) -> Arrival {
        Arrival {
            hold: self.hold.as_ref().map(|hold| Hold(hold.subscribe())),
            delay: self.delay,
            fault: self.take_once(),
        }
    }

    /// The one-shot fault (if any) that answers this call.
    fn take_once(&mut self) -> Option<Fault> {
        loop {
            let front = self.queued.front_mut()?;
            let Some(times) = remaining(front) else {
                self.queued.pop_front();
                continue;
            };
            if *times == 0 {
                self.queued.pop_front();
                continue;
            }
            *times -= 1;
            let exhausted = *times == 0;
            let once = front.clone();
            if exhausted {
                self.queued.pop_front();
            }
            return Some(once);
        }
    }
}

/// The remaining-uses counter of a one-shot fault.
fn remaining(fault: &mut Fault) -> Option<&mut u32> {
    match fault {
        Fault::Status { times, .. }
        | Fault::RateLimited { times, .. }
        | Fault::Garbage { times }
        | Fault::Body { times, .. } => Some(times),
        Fault::Hold | Fault::Delay(_) => None,
    }
}

/// The mutable project state.
pub(crate) struct State {
    config: Config,
    orgs: HashMap<String, OrgRecord>,
    members: HashMap<String, MemberRecord>,
    sessions: HashMap<String, SessionRecord>,
    tokens: HashMap<String, String>,
    policy: Policy,
    keys: KeySet,
    faults: HashMap<Endpoint, FaultQueue>,
    counts: HashMap<Endpoint, u64>,
}

impl State {
    fn new(config: Config, now: SystemTime) -> Self {
        let first = SigningKey::generate(new_id("jwk", config.env), now);
        Self {
            config,
            orgs: HashMap::new(),
            members: HashMap::new(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            policy: with_default_policy(Policy::default()),
            keys: KeySet::new(first),
            faults: HashMap::new(),
            counts: HashMap::new(),
        }
    }

    // ----- test-side operations -------------------------------------------------

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

    pub(crate) fn set_organization_roles(&mut self, org_id: &str, roles: Vec<Role>) {
        let org = self.orgs.get_mut(org_id).unwrap_or_else(|| {
            panic!("StytchEmulator::set_organization_roles: unknown organization_id {org_id:?}")
        });
        org.custom_roles = roles;
    }

    pub(crate) fn set_policy(&mut self, policy: Policy) {
        self.policy = with_default_policy(policy);
    }

    pub(crate) fn create_session(
        &mut self,
        member_id: &str,
        options: SessionOptions,
        now: SystemTime,
    ) -> SessionTokens {
        let member = self.members.get(member_id).unwrap_or_else(|| {
            panic!("StytchEmulator::create_session: unknown member_id {member_id:?}")
        });
        let org_id = member.org_id.clone();
        let roles = self.session_roles(member_id);
        let mut custom_claims = Map::new();
        if let Some(claims) = options.custom_claims {
            merge_claims(&mut custom_claims, claims);
        }
        let factors = options
            .factors
            .into_iter()
            .map(|mut f| {
                if let Value::Object(obj) = &mut f {
                    obj.entry("last_authenticated_at")
                        .or_insert_with(|| Value::String(wire::rfc3339(now)));
                }
                f
            })
            .collect();
        let session = SessionRecord {
            id: new_id("member-session", self.config.env),
            member_id: member_id.to_owned(),
            org_id,
            token: random_token(),
            started_at: now,
            last_accessed_at: now,
            expires_at: crate::timestamp::saturating_add(now, options.duration),
            revoked: false,
            roles,
            custom_claims,
            factors,
        };
        let tokens = SessionTokens {
            member_session_id: session.id.clone(),
            session_token: session.token.clone(),
            session_jwt: self.mint_for(&session, now),
        };
        self.tokens
            .insert(session.token.clone(), session.id.clone());
        self.sessions.insert(session.id.clone(), session);
        tokens
    }

    pub(crate) fn mint_jwt(&mut self, session_id: &str, now: SystemTime) -> String {
        let member_id = match self.sessions.get(session_id) {
            Some(s) => s.member_id.clone(),
            None => panic!("StytchEmulator::mint_jwt: unknown member_session_id {session_id:?}"),
        };
        let roles = self.session_roles(&member_id);
        let session = self
            .sessions
            .get_mut(session_id)
            .expect("session looked up above");
        session.roles = roles;
        let session = session.clone();
        self.mint_for(&session, now)
    }

    pub(crate) fn revoke_session(&mut self, session_id: &str) {
        match self.sessions.get_mut(session_id) {
            Some(s) => s.revoked = true,
            None => {
                panic!("StytchEmulator::revoke_session: unknown member_session_id {session_id:?}")
            }
        }
    }

    pub(crate) fn session_info(&self, session_id: &str) -> Option<SessionInfo> {
        self.sessions.get(session_id).map(|s| SessionInfo {
            member_id: s.member_id.clone(),
            organization_id: s.org_id.clone(),
            started_at: s.started_at,
            last_accessed_at: s.last_accessed_at,
            expires_at: s.expires_at,
            revoked: s.revoked,
            roles: s.roles.clone(),
            custom_claims: s.custom_claims.clone(),
        })
    }

    pub(crate) fn rotate_keys(&mut self, now: SystemTime) -> String {
        let key = SigningKey::generate(new_id("jwk", self.config.env), now);
        let kid = key.kid.clone();
        self.keys.push(key);
        kid
    }

    pub(crate) fn retire_key(&mut self, kid: &str, now: SystemTime) {
        if self.keys.signing().kid == kid {
            self.rotate_keys(now);
        }
        if self.keys.len() > 1 {
            self.keys.remove(kid);
        }
    }

    pub(crate) fn signing_kid(&self) -> String {
        self.keys.signing().kid.clone()
    }

    pub(crate) fn signing_key_pkcs8_der(&self) -> Vec<u8> {
        self.keys.signing().pkcs8_der()
    }

    pub(crate) fn inject_fault(&mut self, endpoint: Endpoint, fault: Fault) {
        self.faults.entry(endpoint).or_default().push(fault);
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn release(&mut self, endpoint: Endpoint) {
        if let Some(queue) = self.faults.get_mut(&endpoint) {
            queue.hold = None;
        }
    }

    pub(crate) fn requests(&self, endpoint: Endpoint) -> u64 {
        self.counts.get(&endpoint).copied().unwrap_or(0)
    }

    pub(crate) fn reset_request_counts(&mut self) {
        self.counts.clear();
    }

    /// Counts a request and returns the faults that apply to it.
    pub(crate) fn arrive(&mut self, endpoint: Endpoint) -> Arrival {
        *self.counts.entry(endpoint).or_insert(0) += 1;
        self.faults
            .get_mut(&endpoint)
            .map(FaultQueue::take)
            .unwrap_or_default()
    }

    // ----- endpoint logic ---------------------------------------------------------

    /// `POST /v1/b2b/sessions/authenticate`.
    pub(crate) fn authenticate(
        &mut self,
        body: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let token = opt_string(body, "session_token")?;
        let jwt = opt_string(body, "session_jwt")?;
        let duration = match body.get("session_duration_minutes") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(m) if DURATION_MINUTES.contains(&m) => Some(m),
                _ => {
                    return Err(ApiError::bad_request(
                        "session_duration_minutes must be an integer between 5 and 527040.",
                    ));
                }
            },
        };
        let claims_update = match body.get("session_custom_claims") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "session_custom_claims must be an object.",
                ));
            }
        };
        let check = AuthorizationCheck::parse(body)?;

        let session_id = match (token, jwt) {
            (Some(_), Some(_)) => {
                return Err(ApiError::new(
                    400,
                    "too_many_session_arguments",
                    "Only one of session_token or session_jwt may be provided.",
                ));
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "One of session_token or session_jwt is required.",
                ));
            }
            (Some(t), None) => self
                .tokens
                .get(&t)
                .cloned()
                .ok_or_else(ApiError::session_not_found)?,
            (None, Some(j)) => self.session_id_from_jwt(&j)?,
        };
        let (member_id, org_id) = match self.sessions.get(&session_id) {
            Some(s) if s.is_live(now) => (s.member_id.clone(), s.org_id.clone()),
            _ => return Err(ApiError::session_not_found()),
        };
        if !self.members.contains_key(&member_id) || !self.orgs.contains_key(&org_id) {
            return Err(ApiError::session_not_found());
        }
        let roles = self.session_roles(&member_id);

        let verdict = match check {
            None => None,
            Some(check) => {
                if check.organization_id != org_id {
                    return Err(ApiError::new(
                        403,
                        "session_authorization_tenancy_error",
                        "OrganizationID in AuthorizationCheck request does not match session's Organization ID",
                    ));
                }
                let granting =
                    self.granting_roles(&roles, &org_id, &check.resource_id, &check.action);
                if granting.is_empty() {
                    return Err(ApiError::new(
                        403,
                        "session_authorization_error",
                        "The Member is not authorized to perform the requested action on that resource.",
                    ));
                }
                Some(json!({"authorized": true, "granting_roles": granting}))
            }
        };

        let session = self
            .sessions
            .get_mut(&session_id)
            .expect("session looked up above");
        session.roles = roles;
        session.last_accessed_at = now;
        if let Some(minutes) = duration {
            let minutes = u64::try_from(minutes).expect("range-checked above");
            session.expires_at = now + Duration::from_secs(minutes * 60);
        }
        if let Some(update) = claims_update {
            merge_claims(&mut session.custom_claims, update);
        }
        let session = session.clone();
        let org = &self.orgs[&org_id];
        let member = &self.members[&member_id];

        let mut fields = Map::new();
        fields.insert("member_session".into(), wire::member_session(&session, org));
        fields.insert("session_token".into(), json!(session.token));
        fields.insert("session_jwt".into(), json!(self.mint_for(&session, now)));
        fields.insert("member".into(), wire::member(member));
        fields.insert("organization".into(), wire::organization(org));
        if let Some(verdict) = verdict {
            fields.insert("verdict".into(), verdict);
        }
        Ok(wire::success(self.config.env, fields))
    }

    /// `POST /v1/b2b/sessions/revoke`.
    pub(crate) fn revoke(
        &mut self,
        body: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let session_id = opt_string(body, "member_session_id")?;
        let token = opt_string(body, "session_token")?;
        let jwt = opt_string(body, "session_jwt")?;
        let member_id = opt_string(body, "member_id")?;
        let given = [&session_id, &token, &jwt, &member_id]
            .iter()
            .filter(|f| f.is_some())
            .count();
        if given != 1 {
            return Err(ApiError::bad_request(
                "Exactly one of member_session_id, session_token, session_jwt or member_id is required.",
            ));
        }
        if let Some(member_id) = member_id {
            if !self.members.contains_key(&member_id) {
                return Err(ApiError::new(
                    404,
                    "member_not_found",
                    "Member could not be found.",
                ));
            }
            for s in self.sessions.values_mut() {
                if s.member_id == member_id {
                    s.revoked = true;
                }
            }
            return Ok(wire::success(self.config.env, Map::new()));
        }
        let session_id = match (session_id, token, jwt) {
            (Some(id), _, _) => id,
            (_, Some(t), _) => self
                .tokens
                .get(&t)
                .cloned()
                .ok_or_else(ApiError::session_not_found)?,
            (_, _, Some(j)) => self.session_id_from_jwt(&j)?,
            (None, None, None) => return Err(ApiError::session_not_found()),
        };
        match self.sessions.get_mut(&session_id) {
            Some(s) if s.is_live(now) => {
                s.revoked = true;
                Ok(wire::success(self.config.env, Map::new()))
            }
            _ => Err(ApiError::session_not_found()),
        }
    }

    /// `GET /v1/b2b/sessions/jwks/{project_id}`.
    pub(crate) fn jwks(&self, project_id: &str) -> Result<Value, ApiError> {
        if project_id != self.config.project_id {
            return Err(ApiError::new(
                404,
                "project_not_found",
                "Project could not be found.",
            ));
        }
        let mut fields = Map::new();
        fields.insert("keys".into(), Value::Array(self.keys.jwks()));
        Ok(wire::success(self.config.env, fields))
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

    // ----- helpers ----------------------------------------------------------------

    /// `["stytch_member"]` followed by the member's explicit roles, deduplicated.
    fn session_roles(&self, member_id: &str) -> Vec<String> {
        let explicit = self
            .members
            .get(member_id)
            .map(|m| m.roles.clone())
            .unwrap_or_default();
        dedup(std::iter::once("stytch_member".to_owned()).chain(explicit))
    }

    /// Every session role granting `action` on `resource_id`, in session order.
    fn granting_roles(
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

    fn session_id_from_jwt(&self, jwt: &str) -> Result<String, ApiError> {
        let claims = self
            .keys
            .verify(jwt, &self.config.issuer, &self.config.project_id)
            .map_err(|why| {
                let message = match why {
                    JwtRejection::Malformed => "The session JWT is malformed.",
                    JwtRejection::UnknownKey => "The session JWT was signed by an unknown key.",
                    JwtRejection::BadSignature => "The session JWT signature is invalid.",
                    JwtRejection::WrongAudienceOrIssuer => {
                        "The session JWT was not issued for this project."
                    }
                };
                ApiError::new(401, INVALID_JWT_ERROR_TYPE, message)
            })?;
        claims
            .get("https://stytch.com/session")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(ApiError::session_not_found)
    }

    fn mint_for(&self, session: &SessionRecord, now: SystemTime) -> String {
        let org = self
            .orgs
            .get(&session.org_id)
            .expect("sessions always belong to a known organization");
        let claims = wire::jwt_claims(
            session,
            org,
            &self.config.issuer,
            &self.config.project_id,
            now,
        );
        self.keys.mint(&claims)
    }
}

/// A parsed `authorization_check`.
struct AuthorizationCheck {
    organization_id: String,
    resource_id: String,
    action: String,
}

impl AuthorizationCheck {
    fn parse(body: &Map<String, Value>) -> Result<Option<Self>, ApiError> {
        let obj = match body.get("authorization_check") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(obj)) => obj,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "authorization_check must be an object.",
                ));
            }
        };
        let field = |name: &str| {
            obj.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("authorization_check.{name} is required."))
                })
        };
        Ok(Some(Self {
            organization_id: field("organization_id")?,
            resource_id: field("resource_id")?,
            action: field("action")?,
        }))
    }
}

/// A string field where `null`, absence and `""` all mean "not given".
fn opt_string(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a string."))),
    }
}

/// Merges custom claims: `null` deletes, reserved and Stytch claims are ignored.
fn merge_claims(target: &mut Map<String, Value>, update: Map<String, Value>) {
    for (key, value) in update {
        if wire::RESERVED_CLAIMS.contains(&key.as_str())
            || key.starts_with(wire::STYTCH_CLAIM_PREFIX)
        {
            continue;
        }
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("RBAC types always serialise to JSON")
}

/// `<kind>-<env>-<uuid>`.
pub(crate) fn new_id(kind: &str, env: &str) -> String {
    format!("{kind}-{env}-{}", uuid::Uuid::new_v4())
}

/// A random 44-character URL-safe token.
pub(crate) fn random_token() -> String {
    random_string(33)
}

/// URL-safe base64 of `bytes` random bytes.
pub(crate) fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}

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
fn with_default_policy(policy: Policy) -> Policy {
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
    use super::*;

    fn config() -> Config {
        Config {
            env: "test",
            project_id: "project-test-x".into(),
            secret: "secret".into(),
            issuer: "stytch.com/project-test-x".into(),
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
    fn faults_are_consumed_in_order_and_delay_persists() {
        let mut q = FaultQueue::default();
        q.push(Fault::Delay(Duration::from_millis(5)));
        q.push(Fault::Status {
            status: 503,
            times: 2,
        });
        q.push(Fault::Garbage { times: 0 });
        q.push(Fault::Garbage { times: 1 });
        let statuses: Vec<_> = (0..4)
            .map(|_| {
                let arrival = q.take();
                assert!(arrival.hold.is_none());
                match (arrival.delay, arrival.fault) {
                    (Some(_), Some(Fault::Status { status, .. })) => status,
                    (Some(_), Some(Fault::Garbage { .. })) => 200,
                    (Some(_), None) => 0,
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect();
        assert_eq!(statuses, [503, 503, 200, 0]);
    }

    /// Held calls wait for the release, whether by `release` or `clear_faults`; the
    /// one-shot fault a held call drew stays its answer, and calls after a release
    /// are not held.
    #[test]
    fn held_calls_wait_for_their_release() {
        use std::future::Future as _;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        let mut s = State::new(config(), SystemTime::now());
        s.inject_fault(Endpoint::Jwks, Fault::Hold);
        s.inject_fault(Endpoint::Jwks, Fault::Hold);
        s.inject_fault(Endpoint::Jwks, Fault::Garbage { times: 1 });
        let first = s.arrive(Endpoint::Jwks);
        let second = s.arrive(Endpoint::Jwks);
        assert!(matches!(first.fault, Some(Fault::Garbage { .. })));
        assert!(second.fault.is_none());
        let mut first = std::pin::pin!(first.hold.unwrap().released());
        let mut second = std::pin::pin!(second.hold.unwrap().released());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        // Another endpoint's release lets nothing go.
        s.release(Endpoint::Authenticate);
        assert!(first.as_mut().poll(&mut cx).is_pending());
        s.release(Endpoint::Jwks);
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(
            s.arrive(Endpoint::Jwks).hold.is_none(),
            "released: not held"
        );

        s.inject_fault(Endpoint::Jwks, Fault::Hold);
        let mut held = std::pin::pin!(s.arrive(Endpoint::Jwks).hold.unwrap().released());
        assert!(held.as_mut().poll(&mut cx).is_pending());
        s.clear_faults();
        assert_eq!(held.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn granting_roles_merge_project_and_org_roles() {
        let now = SystemTime::now();
        let mut s = State::new(config(), now);
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

    #[test]
    fn custom_claims_merge_rules() {
        let mut target = Map::new();
        target.insert("keep".into(), json!(1));
        target.insert("drop".into(), json!(2));
        let update = json!({"drop": null, "iss": "evil", "sub": "x",
            "https://stytch.com/session": {}, "tier": "gold"});
        merge_claims(&mut target, update.as_object().unwrap().clone());
        assert_eq!(Value::Object(target), json!({"keep": 1, "tier": "gold"}));
    }

    #[test]
    fn tokens_are_44_url_safe_chars() {
        let t = random_token();
        assert_eq!(t.len(), 44);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
