//! [`ConfigError`]: a setting that cannot work.

/// A setting that cannot work, reported by [`StytchAuthBuilder::build`](crate::StytchAuthBuilder::build) or
/// [`StytchAuth::from_env`](crate::StytchAuth::from_env).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The project id is empty.
    #[error(
        "the Stytch project id is empty (set STYTCH_PROJECT_ID or pass it to StytchAuth::builder)"
    )]
    MissingProjectId,
    /// The secret is empty.
    #[error("the Stytch secret is empty (set STYTCH_SECRET or pass it to StytchAuth::builder)")]
    MissingSecret,
    /// An environment variable `from_env` needs is not set or not UTF-8.
    #[error("environment variable {0} is not set (or not valid UTF-8)")]
    MissingEnv(&'static str),
    /// The custom base URL cannot be used.
    #[error("invalid Stytch base URL {url:?}: {reason}")]
    #[non_exhaustive]
    InvalidBaseUrl {
        /// The URL given, with any `user:password@` part redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another setting is out of range.
    #[error("invalid setting {setting}: {reason}")]
    #[non_exhaustive]
    InvalidSetting {
        /// The builder method.
        setting: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The HTTP client could not be created.
    #[error("could not create the HTTP client: {detail}")]
    #[non_exhaustive]
    HttpClient {
        /// What failed.
        detail: String,
    },
}

impl From<crate::client::BuildError> for ConfigError {
    fn from(error: crate::client::BuildError) -> Self {
        match error {
            crate::client::BuildError::InvalidBaseUrl { url, reason } => {
                ConfigError::InvalidBaseUrl { url, reason }
            }
            crate::client::BuildError::HttpClient(error) => ConfigError::HttpClient {
                detail: error.to_string(),
            },
        }
    }
}
