//! Local verification of Stytch JWTs, in two parts: what every Stytch JWT shares (the
//! header, the `kid`, the RS256 signature: [`verify`]; the registered claims and their
//! rules: [`registered`]; the keys: [`keys`], [`jwks`]) and what each kind adds (a
//! member session: [`session`]; M2M and Connected-App tokens: [`machine`]), told apart
//! in the pass that decodes them ([`claims`]). Each kind is a
//! [`registered::TokenKind`].

pub(crate) mod claims;
pub(crate) mod jwks;
pub(crate) mod keys;
pub(crate) mod known_headers;
pub(crate) mod machine;
pub(crate) mod registered;
pub(crate) mod rejected;
pub(crate) mod session;
#[cfg(test)]
pub(crate) mod test_keys;
pub(crate) mod verify;
