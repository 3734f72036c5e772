//! Writing the session cookies back to the browser.

use std::time::SystemTime;

use axum::response::{IntoResponseParts, ResponseParts};
use axum_extra::extract::cookie::{Cookie, SameSite as CookieSameSite};
use http::HeaderValue;
use http::header::SET_COOKIE;

/// The largest cookie (name and value) browsers keep: Chrome and Firefox drop a
/// `Set-Cookie` over it (RFC 6265 §6.1 asks them to keep at least this much). Also the
/// default cap on a session cookie value read.
pub(crate) const BROWSER_COOKIE_LIMIT: usize = 4096;

/// The `SameSite` attribute of the cookies this crate sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level cross-site navigations (the default).
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

/// Attributes of the cookies set on renewal, login and logout.
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    pub(crate) jwt_name: String,
    pub(crate) token_name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    /// Whether the layer writes renewed and cleared cookies on its own (not when
    /// Stytch's browser SDK owns them); the helpers a handler calls always write.
    pub(crate) layer_writes: bool,
}

/// How long a browser keeps a cookie.
#[derive(Debug, Clone, Copy)]
enum Lifetime {
    /// Until the session ends, by Stytch's clock (`Expires=`).
    Until(SystemTime),
    /// Deleted at once (`Max-Age=0`).
    Removed,
}

impl CookieSettings {
    fn build(&self, name: &str, value: &str, lifetime: Lifetime) -> HeaderValue {
        let cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(match self.same_site {
                SameSite::Strict => CookieSameSite::Strict,
                SameSite::Lax => CookieSameSite::Lax,
                SameSite::None => CookieSameSite::None,
            });
        let mut cookie = match lifetime {
            Lifetime::Until(end) => cookie.expires(http_date(end)),
            Lifetime::Removed => cookie.max_age(time::Duration::ZERO),
        };
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        // Names, path and domain are validated at build time and values by `set` (or
        // empty); a value that still cannot be a header is dropped rather than
        // panicking. Marked sensitive: it carries a credential.
        let mut value = HeaderValue::try_from(cookie.build().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// `Set-Cookie` values that store a session, expiring with it: `Expires=` the
    /// session's end as Stytch stated it (as Stytch's browser SDK writes it), so that
    /// this server's clock, ahead or behind, does not shorten or end a session Stytch
    /// just confirmed (a `Max-Age` counted from our clock would).
    pub(crate) fn set(
        &self,
        session_jwt: &str,
        session_token: &str,
        expires_at: SystemTime,
    ) -> Vec<HeaderValue> {
        let mut values = Vec::with_capacity(2);
        for (name, value) in [
            (&self.jwt_name, session_jwt),
            (&self.token_name, session_token),
        ] {
            if value.is_empty() {
                continue;
            }
            // A value with a `;` (or anything a cookie value cannot hold) would add
            // attributes of its own (`Domain=`, ...): it is never written.
            if crate::credentials::validate(value.as_bytes()).is_err() {
                tracing::warn!(cookie = %name, "not a valid cookie value; cookie not set");
                continue;
            }
            // Still sent (other clients may keep it), but a browser keeps its old
            // cookie: with a JWT, every request then needs Stytch until it expires.
            let bytes = name.len() + value.len();
            if bytes > BROWSER_COOKIE_LIMIT {
                tracing::warn!(
                    cookie = %name,
                    bytes,
                    limit = BROWSER_COOKIE_LIMIT,
                    "session cookie larger than browsers keep (custom session claims make the JWT grow)"
                );
            }
            values.push(self.build(name, value, Lifetime::Until(expires_at)));
        }
        values.retain(|v| !v.is_empty());
        values
    }

    /// `Set-Cookie` values that delete both session cookies.
    pub(crate) fn clear(&self) -> Vec<HeaderValue> {
        vec![
            self.build(&self.jwt_name, "", Lifetime::Removed),
            self.build(&self.token_name, "", Lifetime::Removed),
        ]
    }

    /// Whether a `Set-Cookie` value is for one of our two cookies.
    pub(crate) fn is_ours(&self, set_cookie: &HeaderValue) -> bool {
        let bytes = set_cookie.as_bytes();
        let name = bytes
            .iter()
            .position(|b| *b == b'=')
            .map_or(bytes, |i| &bytes[..i])
            .trim_ascii();
        name == self.jwt_name.as_bytes() || name == self.token_name.as_bytes()
    }
}

/// `t` as a cookie date: whole seconds, from the Unix epoch (earlier times) to the end
/// of year 9999 (later ones).
fn http_date(t: SystemTime) -> time::OffsetDateTime {
    let secs = crate::clock::unix_seconds(t).min(crate::timestamp::MAX_UNIX_SECS);
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// `Set-Cookie` headers for the session cookies, as response parts.
///
/// Returned by [`StytchAuth::session_cookies`](crate::StytchAuth::session_cookies)
/// (after a login) and [`StytchAuth::logout`](crate::StytchAuth::logout) (clearing
/// them). Use it in a handler's return tuple.
///
/// # Examples
///
/// ```
/// use axum::response::IntoResponse;
/// use axum_stytch::{SessionCookies, StytchAuth};
///
/// fn logged_in(auth: &StytchAuth, jwt: &str, token: &str, expires_at: std::time::SystemTime) -> impl IntoResponse {
///     let cookies: SessionCookies = auth.session_cookies(jwt, token, expires_at);
///     (cookies, "welcome")
/// }
/// ```
#[derive(Clone)]
#[must_use = "session cookies do nothing unless they are part of a response"]
pub struct SessionCookies {
    values: Vec<HeaderValue>,
}

impl SessionCookies {
    pub(crate) fn new(values: Vec<HeaderValue>) -> Self {
        Self { values }
    }

    /// The `Set-Cookie` header values (they contain credentials: do not log them).
    pub fn header_values(&self) -> &[HeaderValue] {
        &self.values
    }
}

impl std::fmt::Debug for SessionCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCookies")
            .field("count", &self.values.len())
            .finish_non_exhaustive()
    }
}

/// On its own: an empty `200 OK` that sets (or clears) the cookies.
impl axum::response::IntoResponse for SessionCookies {
    fn into_response(self) -> axum::response::Response {
        (self, ()).into_response()
    }
}

impl IntoResponseParts for SessionCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for value in self.values {
            res.headers_mut().append(SET_COOKIE, value);
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CookieSettings {
        CookieSettings {
            jwt_name: "stytch_session_jwt".into(),
            token_name: "stytch_session".into(),
            path: "/".into(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            layer_writes: true,
        }
    }

    use std::time::Duration;

    #[test]
    fn set_carries_documented_attributes_and_the_session_end() {
        let end = SystemTime::UNIX_EPOCH + Duration::from_secs(4_600);
        let values = settings().set("h.p.s", "tok", end);
        let texts: Vec<_> = values
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(texts.len(), 2);
        for (text, prefix) in texts
            .iter()
            .zip(["stytch_session_jwt=h.p.s", "stytch_session=tok"])
        {
            assert!(text.starts_with(prefix), "{text}");
            for attr in [
                "HttpOnly",
                "SameSite=Lax",
                "Secure",
                "Path=/",
                "Expires=Thu, 01 Jan 1970 01:16:40 GMT",
            ] {
                assert!(text.contains(attr), "{text} lacks {attr}");
            }
            assert!(!text.contains("Max-Age"), "{text}");
        }
    }

    /// The end as a cookie date whatever its range: before the epoch, and after year
    /// 9999 (a session that does not end), are clamped rather than dropped.
    #[test]
    fn session_ends_out_of_range_are_clamped() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10);
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 1_000);
        for (end, shown) in [
            (before, "Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            (far, "Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            let values = settings().set("h.p.s", "tok", end);
            assert_eq!(values.len(), 2);
            let text = values[0].to_str().unwrap();
            assert!(text.contains(shown), "{text}");
        }
    }

    #[test]
    fn a_cookie_larger_than_browsers_keep_is_set_with_a_warning() {
        let now = SystemTime::now();
        let later = now + Duration::from_secs(60);
        // 18 + 4078 = 4096 bytes is kept by browsers; one more is not.
        let (fits, over) = ("a".repeat(4078), "b".repeat(4079));
        let (values, text) = crate::test_logs::capture(|logged| {
            let fits = settings().set(&fits, "tok", later);
            assert!(logged().is_empty(), "no warning at the limit");
            let values = [fits, settings().set(&over, "tok", later)];
            (values, logged())
        });
        assert!(
            values.iter().all(|v| v.len() == 2),
            "both cookies are still set"
        );
        assert!(text.contains("WARN"), "{text}");
        assert!(
            text.contains("cookie=stytch_session_jwt bytes=4097 limit=4096"),
            "{text}"
        );
        assert!(!text.contains("bbbb"), "the value is never logged: {text}");
    }

    #[test]
    fn clear_expires_both_and_keeps_path_and_domain() {
        let mut s = settings();
        s.domain = Some("example.com".into());
        s.same_site = SameSite::Strict;
        let values = s.clear();
        assert_eq!(values.len(), 2);
        for v in &values {
            let t = v.to_str().unwrap();
            assert!(
                t.contains("Max-Age=0")
                    && t.contains("Domain=example.com")
                    && t.contains("SameSite=Strict"),
                "{t}"
            );
            assert!(s.is_ours(v));
        }
        assert!(!s.is_ours(&HeaderValue::from_static("other=1; Path=/")));
    }

    #[test]
    fn values_that_are_not_cookie_values_are_never_written() {
        let s = settings();
        let now = SystemTime::now();
        let later = now + Duration::from_secs(60);
        for bad in [
            "x; Domain=evil.example",
            "a b",
            "q\"uote",
            "back\\slash",
            "é",
        ] {
            let values = s.set(bad, "tok", later);
            assert_eq!(values.len(), 1, "{bad:?}: only the valid cookie is written");
            assert!(
                values[0]
                    .to_str()
                    .unwrap()
                    .starts_with("stytch_session=tok;")
            );
            assert!(s.set("h.p.s", bad, later).len() == 1, "{bad:?}");
        }
        assert!(
            s.set("h.p.s", "tok", later)
                .iter()
                .all(HeaderValue::is_sensitive)
        );
    }

    /// An ended session's cookies expire in the past: the browser drops them.
    #[test]
    fn an_ended_session_gets_an_expiry_in_the_past() {
        let ended = SystemTime::UNIX_EPOCH + Duration::from_secs(995);
        let values = settings().set("j", "t", ended);
        assert!(
            values[0]
                .to_str()
                .unwrap()
                .contains("Expires=Thu, 01 Jan 1970 00:16:35 GMT")
        );
    }
}
