//! Reading the session credentials from a request's headers.
//!
//! One pass over the `Cookie` header(s), no allocation: values are borrowed from the
//! headers. Cookies other than ours are skipped without being decoded, so a malformed
//! unrelated cookie never affects authentication. The ~1.5 KB JWT is size-checked here
//! but its characters only when it is not in the verified-token cache ([`RawJwt`]).

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

/// Where credentials are looked for.
#[derive(Debug, Clone)]
pub struct CredentialSettings {
    pub(crate) jwt_cookie: String,
    pub(crate) token_cookie: String,
    pub(crate) bearer: bool,
    pub(crate) max_cookie_size: usize,
}

/// Where the credentials came from (renewed credentials are only written back as
/// cookies when they came from cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cookie,
    Bearer,
}

/// A session JWT as sent: within the size cap and unquoted, its characters not yet
/// checked. [`RawJwt::validate`] checks them; a cache lookup may use the bytes as they
/// are, since every cached token was validated before it was inserted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawJwt<'a>(&'a [u8]);

impl std::fmt::Debug for RawJwt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawJwt(<redacted, {} bytes>)", self.0.len())
    }
}

impl<'a> RawJwt<'a> {
    pub(crate) fn as_bytes(self) -> &'a [u8] {
        self.0
    }

    /// The JWT, if it is a valid credential value (non-empty visible ASCII without
    /// separators).
    pub(crate) fn validate(self) -> Result<&'a str, CredentialError> {
        validate(self.0)
    }
}

/// The credentials of one request, borrowed from its headers. `Debug` shows which
/// are present, not their values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials<'a> {
    pub(crate) jwt: Option<RawJwt<'a>>,
    pub(crate) token: Option<&'a str>,
    pub(crate) source: Source,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("jwt", &self.jwt)
            .field("token", &self.token.map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

/// Why the credentials could not be read. Each one is answered 401 `invalid_credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CredentialError {
    /// A session cookie (or bearer token) over the size cap.
    Oversized,
    /// The same session cookie more than once.
    Duplicate,
    /// A session cookie value that is empty or not visible ASCII.
    Malformed,
}

/// Extracts the session credentials.
///
/// With bearer tokens enabled, an `Authorization: Bearer` header wins over cookies;
/// a value with two dots is treated as a session JWT, anything else as a session token.
pub(crate) fn extract<'a>(
    headers: &'a HeaderMap,
    settings: &CredentialSettings,
) -> Result<Credentials<'a>, CredentialError> {
    if settings.bearer
        && let Some(bearer) = bearer(headers, settings)?
    {
        let is_jwt = memchr::memchr_iter(b'.', bearer).count() == 2;
        return Ok(Credentials {
            jwt: is_jwt.then_some(RawJwt(bearer)),
            token: if is_jwt {
                None
            } else {
                Some(validate(bearer)?)
            },
            source: Source::Bearer,
        });
    }
    let mut creds = Credentials {
        jwt: None,
        token: None,
        source: Source::Cookie,
    };
    let jwt_name = settings.jwt_cookie.as_bytes();
    let token_name = settings.token_cookie.as_bytes();
    for header in headers.get_all(COOKIE) {
        for pair in split_pairs(header.as_bytes()) {
            let pair = pair.trim_ascii_start();
            // Cookie names are tokens (no `=`, no spaces; checked by the builder), so a
            // prefix match decides without scanning other cookies for their `=`.
            if let Some(value) = value_of(pair, jwt_name) {
                if creds.jwt.is_some() {
                    return Err(CredentialError::Duplicate);
                }
                creds.jwt = Some(RawJwt(unquote(value, settings.max_cookie_size)?));
            } else if let Some(value) = value_of(pair, token_name) {
                if creds.token.is_some() {
                    return Err(CredentialError::Duplicate);
                }
                creds.token = Some(validate(unquote(value, settings.max_cookie_size)?)?);
            }
        }
    }
    Ok(creds)
}

/// The value of `pair` (`name = value`, leading spaces trimmed) if its name is `name`.
fn value_of<'a>(pair: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = pair
        .strip_prefix(name)?
        .trim_ascii_start()
        .strip_prefix(b"=")?;
    Some(value.trim_ascii())
}

/// The `;`-separated pairs of a `Cookie` header (memchr: a JWT is ~1.5 KB).
fn split_pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b';', header)
        .chain(std::iter::once(header.len()))
        .map(move |end| {
            let pair = &header[start..end];
            start = end + 1;
            pair
        })
}

fn bearer<'a>(
    headers: &'a HeaderMap,
    settings: &CredentialSettings,
) -> Result<Option<&'a [u8]>, CredentialError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CredentialError::Duplicate);
    }
    let bytes = value.as_bytes();
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        // Another scheme (Basic, ...): not ours, fall back to cookies.
        return Ok(None);
    }
    unquote(bytes[7..].trim_ascii(), settings.max_cookie_size).map(Some)
}

/// A credential value within the cap, with one pair of enclosing double quotes
/// (RFC 6265 `cookie-value`) removed.
fn unquote(value: &[u8], max: usize) -> Result<&[u8], CredentialError> {
    if value.len() > max {
        return Err(CredentialError::Oversized);
    }
    Ok(match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    })
}

/// A valid credential value: non-empty, visible ASCII without `"`, `,`, `;` or `\`.
/// Also what the crate accepts from Stytch before writing a value into `Set-Cookie`.
pub(crate) fn validate(value: &[u8]) -> Result<&str, CredentialError> {
    // One branch-free pass (vectorized): any byte outside visible ASCII, or a
    // separator, makes the value malformed.
    let bad = value.iter().fold(false, |bad, &b| {
        bad | !(0x21..=0x7e).contains(&b) | (b == b'"') | (b == b',') | (b == b';') | (b == b'\\')
    });
    if value.is_empty() || bad {
        return Err(CredentialError::Malformed);
    }
    // Visible ASCII is valid UTF-8.
    std::str::from_utf8(value).map_err(|_| CredentialError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn settings(bearer: bool) -> CredentialSettings {
        CredentialSettings {
            jwt_cookie: "stytch_session_jwt".into(),
            token_cookie: "stytch_session".into(),
            bearer,
            max_cookie_size: 64,
        }
    }

    type Validated<'a> = Result<(Option<&'a str>, Option<&'a str>), CredentialError>;

    /// What the layer ends up with on a cache miss: both values validated.
    fn validated<'a>(h: &'a HeaderMap, s: &CredentialSettings) -> Validated<'a> {
        let c = extract(h, s)?;
        Ok((c.jwt.map(RawJwt::validate).transpose()?, c.token))
    }

    fn headers(cookies: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_bytes(c).unwrap());
        }
        h
    }

    #[test]
    fn finds_both_cookies_among_others() {
        let h = headers(&[
            b"a=1; stytch_session_jwt=h.p.s;b=2",
            b"stytch_session=tok ; c",
        ]);
        let c = validated(&h, &settings(false)).unwrap();
        assert_eq!(c.0, Some("h.p.s"));
        assert_eq!(c.1, Some("tok"));
    }

    #[test]
    fn table_of_cookie_headers() {
        type Expect = Result<(Option<&'static str>, Option<&'static str>), CredentialError>;
        let cases: &[(&[u8], Expect)] = &[
            (b"", Ok((None, None))),
            (b"other=x", Ok((None, None))),
            (b"stytch_session_jwt=", Err(CredentialError::Malformed)),
            (b"stytch_session_jwt=a b", Err(CredentialError::Malformed)),
            (b"stytch_session_jwt=\"q.u.o\"", Ok((Some("q.u.o"), None))),
            (
                b"stytch_session_jwt=\"unterminated",
                Err(CredentialError::Malformed),
            ),
            (b"stytch_session_jwt=x\\y", Err(CredentialError::Malformed)),
            (
                b"stytch_session_jwt=a; stytch_session_jwt=a",
                Err(CredentialError::Duplicate),
            ),
            (
                b"stytch_session=a;stytch_session=b",
                Err(CredentialError::Duplicate),
            ),
            (
                b"stytch_session_jwtx=1; xstytch_session=2",
                Ok((None, None)),
            ),
            (b"STYTCH_SESSION=1", Ok((None, None))),
            (b"stytch_session=\xff\xfe", Err(CredentialError::Malformed)),
            (b"junk=\xff; stytch_session=ok", Ok((None, Some("ok")))),
            (b";;;=;==;stytch_session=ok=", Ok((None, Some("ok=")))),
        ];
        for (header, expected) in cases {
            let h = headers(&[header]);
            let got = validated(&h, &settings(false));
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(header));
        }
    }

    #[test]
    fn oversized_cookie_is_rejected_before_validation() {
        let big = format!("stytch_session_jwt={}", "a".repeat(65));
        let h = headers(&[big.as_bytes()]);
        assert_eq!(
            extract(&h, &settings(false)),
            Err(CredentialError::Oversized)
        );
        let ok = format!("stytch_session_jwt={}", "a".repeat(64));
        let h = headers(&[ok.as_bytes()]);
        assert!(extract(&h, &settings(false)).is_ok());
    }

    #[test]
    fn duplicate_across_headers_is_rejected() {
        let h = headers(&[b"stytch_session=a", b"stytch_session=b"]);
        assert_eq!(
            extract(&h, &settings(false)),
            Err(CredentialError::Duplicate)
        );
    }

    #[test]
    fn debug_output_names_the_credentials_without_their_values() {
        let h = headers(&[b"stytch_session=secret-token; stytch_session_jwt=h.p.s"]);
        let creds = extract(&h, &settings(false)).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("secret-token"), "{debug}");
        assert!(!debug.contains("h.p.s"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn bearer_only_when_enabled() {
        let mut h = headers(&[b"stytch_session=cookie-token"]);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer h.p.s"));
        assert_eq!(
            validated(&h, &settings(false)),
            Ok((None, Some("cookie-token")))
        );
        assert_eq!(validated(&h, &settings(true)), Ok((Some("h.p.s"), None)));
        assert_eq!(extract(&h, &settings(true)).unwrap().source, Source::Bearer);

        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("bearer opaque-token"),
        );
        assert_eq!(
            validated(&h, &settings(true)),
            Ok((None, Some("opaque-token")))
        );

        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        let c = extract(&h, &settings(true)).unwrap();
        assert_eq!(c.source, Source::Cookie);

        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(
            extract(&h, &settings(true)),
            Err(CredentialError::Malformed)
        );
    }
}
