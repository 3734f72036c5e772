//! Reading the session credentials from a request's headers.
//!
//! One pass over the `Cookie` header(s), no allocation: values are borrowed from the
//! headers. Cookies other than ours are skipped without being decoded, so a malformed
//! unrelated cookie never affects authentication. Our two values are size-checked here
//! and their characters only when they are used ([`RawValue`]): the ~1.5 KB JWT when it
//! is not in the verified-token cache, the session token when there is no JWT.

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use memchr::memmem;

use crate::caller::CallerKind;

/// Where credentials are looked for.
#[derive(Debug, Clone)]
pub struct CredentialSettings {
    jwt_cookie: String,
    token_cookie: String,
    /// Whether `Authorization: Bearer` is read (for any kind of token).
    bearer: bool,
    /// Which callers each place may carry.
    accepts: Accepts,
    max_cookie_size: usize,
    /// The names' common prefix, searched for in `Cookie` headers (`None` when the
    /// names differ in their first byte).
    prefix: Option<memmem::Finder<'static>>,
}

impl CredentialSettings {
    /// Settings for cookie names validated by the builder (non-empty tokens).
    pub(crate) fn new(
        jwt_cookie: String,
        token_cookie: String,
        bearer: bool,
        max_cookie_size: usize,
    ) -> Self {
        let common = jwt_cookie
            .bytes()
            .zip(token_cookie.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let prefix = (common > 0)
            .then(|| memmem::Finder::new(&jwt_cookie.as_bytes()[..common]).into_owned());
        Self {
            jwt_cookie,
            token_cookie,
            bearer,
            accepts: Accepts {
                bearer_sessions: bearer,
                m2m: false,
                connected_apps: false,
            },
            max_cookie_size,
            prefix,
        }
    }

    /// Also takes M2M and Connected-App tokens (as `Authorization: Bearer`), as enabled.
    pub(crate) fn with_machine_tokens(mut self, m2m: bool, connected_apps: bool) -> Self {
        self.accepts.m2m = m2m;
        self.accepts.connected_apps = connected_apps;
        self.bearer = self.accepts.bearer_sessions || m2m || connected_apps;
        self
    }

    /// Whether `Authorization: Bearer` is read.
    pub(crate) fn bearer(&self) -> bool {
        self.bearer
    }

    /// Whether a caller of `kind` may come from `source`: cookies carry member sessions
    /// only; a bearer token, the kinds enabled for it.
    #[inline]
    pub(crate) fn accepts(&self, kind: CallerKind, source: Source) -> bool {
        match (source, kind) {
            (Source::Cookie, CallerKind::Member) => true,
            (Source::Cookie, _) => false,
            (Source::Bearer, CallerKind::Member) => self.accepts.bearer_sessions,
            (Source::Bearer, CallerKind::M2m) => self.accepts.m2m,
            (Source::Bearer, CallerKind::ConnectedApp) => self.accepts.connected_apps,
        }
    }
}

/// Which callers a bearer token may be.
#[derive(Debug, Clone, Copy)]
struct Accepts {
    bearer_sessions: bool,
    m2m: bool,
    connected_apps: bool,
}

/// Where the credentials came from (renewed credentials are only written back as
/// cookies when they came from cookies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Cookie,
    Bearer,
}

/// A session JWT or session token as sent: within the size cap and unquoted, its
/// characters not yet checked. [`RawValue::validate`] checks them before the value is
/// used; a cache lookup may use the JWT's bytes as they are, since every cached token
/// was validated before it was inserted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawValue<'a>(&'a [u8]);

impl std::fmt::Debug for RawValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawValue(<redacted, {} bytes>)", self.0.len())
    }
}

impl<'a> RawValue<'a> {
    pub(crate) fn as_bytes(self) -> &'a [u8] {
        self.0
    }

    /// The value, if it is a valid credential value (non-empty visible ASCII without
    /// separators).
    pub(crate) fn validate(self) -> Result<&'a str, CredentialError> {
        validate(self.0)
    }
}

/// The credentials of one request, borrowed from its headers. `Debug` shows which
/// are present and their lengths, not their values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials<'a> {
    pub(crate) jwt: Option<RawValue<'a>>,
    /// Used only when there is no JWT: a JWT is never exchanged for the token.
    pub(crate) token: Option<RawValue<'a>>,
    pub(crate) source: Source,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("jwt", &self.jwt)
            .field("token", &self.token)
            .field("source", &self.source)
            .finish()
    }
}

/// Why the credentials could not be read (or, for [`CredentialError::Malformed`], used).
/// Each one is answered 401 `invalid_credentials`.
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
        let value = Some(RawValue(bearer));
        return Ok(Credentials {
            jwt: if is_jwt { value } else { None },
            token: if is_jwt { None } else { value },
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
        let pairs = Pairs {
            header: header.as_bytes(),
            at: 0,
            prefix: settings.prefix.as_ref(),
        };
        for pair in pairs {
            // Cookie names are tokens (no `=`, no spaces; checked by the builder), so a
            // prefix match decides without scanning other cookies for their `=`.
            if let Some(value) = value_of(pair, jwt_name) {
                if creds.jwt.is_some() {
                    return Err(CredentialError::Duplicate);
                }
                creds.jwt = Some(RawValue(unquote(value, settings.max_cookie_size)?));
            } else if let Some(value) = value_of(pair, token_name) {
                if creds.token.is_some() {
                    return Err(CredentialError::Duplicate);
                }
                creds.token = Some(RawValue(unquote(value, settings.max_cookie_size)?));
            }
        }
    }
    Ok(creds)
}

/// The value of `pair` (`name = value`, leading spaces trimmed) if its name is `name`
/// (not empty: checked by the builder).
fn value_of<'a>(pair: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    // Most cookies differ in their first byte: decided without calling `memcmp`.
    if pair.first() != name.first() {
        return None;
    }
    let value = pair
        .strip_prefix(name)?
        .trim_ascii_start()
        .strip_prefix(b"=")?;
    Some(value.trim_ascii())
}

/// The `;`-separated pairs of a `Cookie` header that may be ours, leading whitespace
/// trimmed: every pair, or with a `prefix` only the pairs whose name starts with it.
///
/// The prefix search (`memmem`, vectorized) steps over other cookies without stopping
/// at each of them; only a pair it finds is cut at its `;` (`memchr`: a JWT is ~1.5 KB).
/// Either way the header is read once, and the pairs are the ones a split at every `;`
/// gives (`tests::prefix_search_finds_what_splitting_finds`).
struct Pairs<'h, 's> {
    header: &'h [u8],
    /// Where the next pair may start: `header.len() + 1` once done.
    at: usize,
    prefix: Option<&'s memmem::Finder<'static>>,
}

impl<'h> Iterator for Pairs<'h, '_> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        let header = self.header;
        let rest = header.get(self.at..)?;
        let start = match self.prefix {
            None => self.at + (rest.len() - rest.trim_ascii_start().len()),
            Some(prefix) => {
                let mut from = self.at;
                loop {
                    let hit = from + prefix.find(header.get(from..)?)?;
                    // A pair starts there only after a `;` (or the header's start) and
                    // whitespace; elsewhere the prefix is inside another cookie.
                    let before = header[..hit].trim_ascii_end();
                    if before.is_empty() || before.ends_with(b";") {
                        break hit;
                    }
                    // The next pair starts after this one's `;`: at most one search
                    // per pair, even for a prefix that can overlap itself (`aa`).
                    from = memchr::memchr(b';', &header[hit..])
                        .map_or(header.len() + 1, |i| hit + i + 1);
                }
            }
        };
        let end = memchr::memchr(b';', &header[start..]).map_or(header.len(), |i| start + i);
        self.at = end + 1;
        Some(&header[start..end])
    }
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

/// Test helper: one `Cookie` header per element (the crate's unit tests).
#[cfg(test)]
pub(crate) fn cookie_headers(cookies: &[&[u8]]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in cookies {
        h.append(
            COOKIE,
            http::HeaderValue::from_bytes(c).expect("a header value"),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn settings(bearer: bool) -> CredentialSettings {
        CredentialSettings::new(
            "stytch_session_jwt".into(),
            "stytch_session".into(),
            bearer,
            64,
        )
    }

    type Validated<'a> = Result<(Option<&'a str>, Option<&'a str>), CredentialError>;

    /// Both values validated, as the layer does when it uses them.
    fn validated<'a>(h: &'a HeaderMap, s: &CredentialSettings) -> Validated<'a> {
        let c = extract(h, s)?;
        Ok((
            c.jwt.map(RawValue::validate).transpose()?,
            c.token.map(RawValue::validate).transpose()?,
        ))
    }

    #[test]
    fn finds_both_cookies_among_others() {
        let h = cookie_headers(&[
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
            (
                b"stytch_session_jwt=h.p.s; stytch_session=a b",
                Err(CredentialError::Malformed),
            ),
            (b";;;=;==;stytch_session=ok=", Ok((None, Some("ok=")))),
        ];
        for (header, expected) in cases {
            let h = cookie_headers(&[header]);
            let got = validated(&h, &settings(false));
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(header));
        }
    }

    #[test]
    fn the_token_beside_a_jwt_is_not_checked_until_used() {
        let h = cookie_headers(&[b"stytch_session_jwt=h.p.s; stytch_session=a b"]);
        let c = extract(&h, &settings(false)).unwrap();
        assert_eq!(c.jwt.map(RawValue::validate), Some(Ok("h.p.s")));
        assert_eq!(
            c.token.map(RawValue::validate),
            Some(Err(CredentialError::Malformed))
        );
    }

    /// What `extract` finds, by the obvious reading of a `Cookie` header: split at every
    /// `;`, trim, compare the names.
    fn reference<'a>(headers: &'a HeaderMap, s: &CredentialSettings) -> Validated<'a> {
        let (mut jwt, mut token) = (None, None);
        for header in headers.get_all(COOKIE) {
            for pair in header.as_bytes().split(|b| *b == b';') {
                let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                    continue;
                };
                let (name, value) = (&pair[..eq], &pair[eq + 1..]);
                let slot = match name.trim_ascii() {
                    n if n == s.jwt_cookie.as_bytes() => &mut jwt,
                    n if n == s.token_cookie.as_bytes() => &mut token,
                    _ => continue,
                };
                if slot.is_some() {
                    return Err(CredentialError::Duplicate);
                }
                *slot = Some(RawValue(unquote(value.trim_ascii(), s.max_cookie_size)?));
            }
        }
        Ok((
            jwt.map(RawValue::validate).transpose()?,
            token.map(RawValue::validate).transpose()?,
        ))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, failure_persistence: None, ..Default::default() })]

        #[test]
        fn prefix_search_finds_what_splitting_finds(
            // Default names, and names whose common prefix overlaps itself, is a whole
            // name, or ends in `-`. Header values cannot hold `\r`, `\n` or `\x0C`.
            names in proptest::sample::select(&[
                ("stytch_session_jwt", "stytch_session"),
                ("aab", "aac"),
                ("ab", "a"),
                ("__Host-a", "__Host-b"),
            ][..]),
            headers in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(&[
                        "stytch_session", "stytch_session_jwt", "stytch_", "_jwt", "x",
                        "=", ";", "; ", " ", "\t", "\"", "h.p.s", "tok", "\u{e9}",
                        "a", "aa", "aab", "aac", "b", "__Host-", "__Host-a",
                    ][..]),
                    0..24,
                ),
                1..3,
            )
        ) {
            let mut h = HeaderMap::new();
            for parts in &headers {
                h.append(COOKIE, HeaderValue::from_str(&parts.concat()).unwrap());
            }
            let with_prefix = CredentialSettings::new(names.0.into(), names.1.into(), false, 64);
            proptest::prop_assert!(with_prefix.prefix.is_some());
            let mut without = with_prefix.clone();
            without.prefix = None;
            let expected = reference(&h, &with_prefix);
            proptest::prop_assert_eq!(validated(&h, &with_prefix), expected);
            proptest::prop_assert_eq!(validated(&h, &without), expected);
        }
    }

    #[test]
    fn names_without_a_common_prefix_are_found_pair_by_pair() {
        let s = CredentialSettings::new("jwt".into(), "token".into(), false, 64);
        assert!(s.prefix.is_none());
        let h = cookie_headers(&[b"a=1; token=t; jwt=h.p.s;x", b" jwt2=1"]);
        assert_eq!(validated(&h, &s), Ok((Some("h.p.s"), Some("t"))));
        assert_eq!(reference(&h, &s), Ok((Some("h.p.s"), Some("t"))));
    }

    #[test]
    fn oversized_cookie_is_rejected_before_validation() {
        let big = format!("stytch_session_jwt={}", "a".repeat(65));
        let h = cookie_headers(&[big.as_bytes()]);
        assert_eq!(
            extract(&h, &settings(false)),
            Err(CredentialError::Oversized)
        );
        let ok = format!("stytch_session_jwt={}", "a".repeat(64));
        let h = cookie_headers(&[ok.as_bytes()]);
        assert!(extract(&h, &settings(false)).is_ok());
    }

    #[test]
    fn duplicate_across_headers_is_rejected() {
        let h = cookie_headers(&[b"stytch_session=a", b"stytch_session=b"]);
        assert_eq!(
            extract(&h, &settings(false)),
            Err(CredentialError::Duplicate)
        );
    }

    #[test]
    fn debug_output_names_the_credentials_without_their_values() {
        let h = cookie_headers(&[b"stytch_session=secret-token; stytch_session_jwt=h.p.s"]);
        let creds = extract(&h, &settings(false)).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("secret-token"), "{debug}");
        assert!(!debug.contains("h.p.s"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn bearer_only_when_enabled() {
        let mut h = cookie_headers(&[b"stytch_session=cookie-token"]);
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
            validated(&h, &settings(true)),
            Err(CredentialError::Malformed)
        );
    }
}
