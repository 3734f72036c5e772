//! `POST /v1/b2b/sessions/authenticate` and `POST /v1/b2b/sessions/revoke`, and the
//! session operations of the test handle: create, mint, revoke, inspect.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::Project;
use crate::testing::keys::JwtRejection;
use crate::testing::model::{SessionRecord, new_id, random_token};
use crate::testing::options::{SessionInfo, SessionOptions, SessionTokens};
use crate::testing::wire::{self, ApiError, merge_claims, opt_string};

/// Error type answered for a session JWT that is malformed, not signed by a
/// served key, or issued for another project/issuer.
const INVALID_JWT_ERROR_TYPE: &str = "jwt_invalid";

/// Smallest and largest accepted `session_duration_minutes`.
const DURATION_MINUTES: std::ops::RangeInclusive<i64> = 5..=527_040;

impl Project {
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
