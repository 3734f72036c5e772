//! Local verification of Stytch session JWTs.

pub(crate) mod claims;
pub(crate) mod jwks;
pub(crate) mod keys;
pub(crate) mod known_headers;
#[cfg(test)]
pub(crate) mod test_keys;
pub(crate) mod verify;
