//! Why a JWT is refused without asking Stytch.

/// Why a JWT was rejected without asking Stytch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not three base64url segments of JSON, too long, or claims of the wrong shape.
    Malformed,
    /// `alg` is not RS256 (including `none` and HMAC).
    UnsupportedAlgorithm,
    /// No usable `kid`.
    MissingKid,
    /// The signature does not verify with the key named by `kid`.
    BadSignature,
    /// `kid` names no key of Stytch's JWKS, even after a refresh: a forgery, or a key
    /// retired (logged apart from bad signatures, for key rotations).
    UnknownKid,
    /// Signed with the project's keys, but its `iss` is none of the accepted issuers:
    /// minted through a custom domain the layer was not configured with (logged apart,
    /// as it refuses every session of such a project).
    ForeignIssuer,
    /// Signed, but for another audience, or without a subject, session or organization.
    InvalidClaims,
    /// A machine token (M2M, Connected App) past its `exp` or the machine-token age
    /// limit, or not yet valid: Stytch cannot renew it, so it is refused.
    Expired,
}
