//! Requests to the OAuth 2.0 endpoints (token, introspection): a form or JSON body,
//! and the client's credentials, taken from the body or from HTTP Basic.
//!
//! Every SDK encoding of the token request is accepted: a body whose first
//! non-blank byte is `{` is read as JSON whatever its `Content-Type` (Java's SDK
//! sends JSON labelled `application/x-www-form-urlencoded`); any other body is
//! read as a form.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::wire::ApiError;

/// A parsed request to an OAuth endpoint.
#[derive(Clone, Default)]
pub(crate) struct OAuthRequest {
    /// The body's parameters (form values are strings).
    params: Map<String, Value>,
    /// `Authorization: Basic` as a user and password (percent-decoded, as
    /// RFC 6749 §2.3.1 encodes client credentials).
    basic: Option<(String, String)>,
}

/// `invalid_client` (401), for a request whose client does not authenticate.
pub(crate) fn invalid_client() -> ApiError {
    ApiError::oauth(401, "invalid_client", "Client authentication failed.")
}

/// `invalid_request` (400).
pub(crate) fn invalid_request(description: impl Into<String>) -> ApiError {
    ApiError::oauth(400, "invalid_request", description)
}

impl OAuthRequest {
    /// Parses a body sent with these `Content-Type` and `Authorization` headers.
    pub(crate) fn parse(
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        let json = content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
        });
        let params = match first {
            None => Map::new(),
            Some(b'{') => match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                _ => return Err(invalid_request("The request body is not valid JSON.")),
            },
            Some(_) if json => return Err(invalid_request("The request body is not valid JSON.")),
            Some(_) => parse_form(body)?,
        };
        Ok(Self {
            params,
            basic: authorization.and_then(parse_basic),
        })
    }

    /// A string parameter; absent, `null` and `""` all mean "not given".
    pub(crate) fn param(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid_request(format!("{name} must be a string."))),
        }
    }

    /// The client's id and secret: from the body when it names the client (any
    /// `Authorization` header is then ignored, as the SDKs that send the project's
    /// Basic credentials need), else from HTTP Basic.
    pub(crate) fn client_credentials(&self) -> Result<(&str, &str), ApiError> {
        let id = self.param("client_id")?;
        let secret = self.param("client_secret")?;
        match (id, secret, &self.basic) {
            (Some(id), Some(secret), _) => Ok((id, secret)),
            (None, None, Some((user, password))) => Ok((user, password)),
            (Some(id), None, Some((user, password))) if user == id => Ok((id, password)),
            _ => Err(invalid_client()),
        }
    }
}

/// `application/x-www-form-urlencoded` pairs; a repeated name is an error
/// (RFC 6749 §3.1).
fn parse_form(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let malformed = || invalid_request("The request body is not a valid form.");
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let mut params = Map::new();
    for pair in text.trim().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name).ok_or_else(malformed)?;
        let value = percent_decode(value).ok_or_else(malformed)?;
        if params.insert(name.clone(), Value::String(value)).is_some() {
            return Err(invalid_request(format!("{name} must not be repeated.")));
        }
    }
    Ok(params)
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// `Basic base64(user:password)`, each side percent-decoded.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((percent_decode(user)?, percent_decode(password)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn forms_decode_and_refuse_repeats() {
        let r = OAuthRequest::parse(
            Some("application/x-www-form-urlencoded"),
            None,
            b"grant_type=client_credentials&scope=read%3Ausers+write%3Ausers&x&=v",
        )
        .unwrap();
        assert_eq!(r.param("grant_type").unwrap(), Some("client_credentials"));
        assert_eq!(r.param("scope").unwrap(), Some("read:users write:users"));
        assert_eq!(r.param("x").unwrap(), None);
        let repeated = OAuthRequest::parse(None, None, b"scope=a&scope=b")
            .err()
            .unwrap();
        assert_eq!(
            (repeated.status, repeated.error_type, repeated.oauth),
            (400, "invalid_request", true)
        );
        for bad in [&b"a=%zz"[..], b"a=%4", b"a=%ff", b"\xff=1"] {
            let err = OAuthRequest::parse(None, None, bad).err().unwrap();
            assert_eq!(err.error_type, "invalid_request", "{bad:?}");
        }
    }

    #[test]
    fn json_is_read_whatever_the_content_type() {
        for ct in [
            None,
            Some("application/json"),
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
        ] {
            let r = OAuthRequest::parse(ct, None, br#" {"scope":"a b","scopes":["a"]}"#).unwrap();
            assert_eq!(r.param("scope").unwrap(), Some("a b"));
            assert_eq!(
                r.param("scopes").err().unwrap().message,
                "scopes must be a string."
            );
        }
        for body in [&b"{"[..], b"{}x", b"scope=a"] {
            let err = OAuthRequest::parse(Some("application/json; charset=utf-8"), None, body)
                .err()
                .unwrap();
            assert_eq!(err.error_type, "invalid_request");
        }
        let empty = OAuthRequest::parse(Some("application/json"), None, b"  ").unwrap();
        assert!(empty.params.is_empty());
    }

    #[test]
    fn body_credentials_win_over_basic() {
        let project = basic("project-test-1", "secret-test-1");
        let both = OAuthRequest::parse(
            None,
            Some(&project),
            br#"{"client_id":"c","client_secret":"s"}"#,
        )
        .unwrap();
        assert_eq!(both.client_credentials().unwrap(), ("c", "s"));

        let only_basic = OAuthRequest::parse(None, Some(&basic("c%3A1", "s+%2B")), b"").unwrap();
        assert_eq!(only_basic.client_credentials().unwrap(), ("c:1", "s +"));

        let id_in_body = OAuthRequest::parse(None, Some(&basic("c", "s")), b"client_id=c").unwrap();
        assert_eq!(id_in_body.client_credentials().unwrap(), ("c", "s"));

        // A body naming another client than Basic, or Basic that is not Basic: no client.
        for (auth, body) in [
            (Some(project.as_str()), &b"client_id=c"[..]),
            (Some("Bearer abc"), b""),
            (Some("Basic !!!"), b""),
            (Some("Basic Y29sb24tbGVzcw=="), b""),
            (None, b"client_secret=s"),
        ] {
            let r = OAuthRequest::parse(None, auth, body).unwrap();
            let err = r.client_credentials().err().unwrap();
            assert_eq!((err.status, err.error_type), (401, "invalid_client"));
        }
    }
}
