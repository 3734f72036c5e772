//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for an API that AI agents and MCP
//! clients call with Stytch Connected-App tokens: the document that tells them which
//! authorization server (the Stytch project domain) issues tokens for it, served at
//! the well-known URLs MCP clients try, and named in every Bearer challenge.
//!
//! * Served at `/.well-known/oauth-protected-resource` with the resource's path
//!   inserted after it (`https://api.example.com/mcp` →
//!   `/.well-known/oauth-protected-resource/mcp`), which is what RFC 9728 §3.1 and
//!   strict clients use, and at the root `/.well-known/oauth-protected-resource`, which
//!   MCP clients fall back to. Both carry the same document, whose `resource` is the
//!   configured URL exactly (RFC 9728 §3.3 requires it to equal the URL the client
//!   built the well-known URL from; Stytch's demos send the bare origin instead, which
//!   strict clients reject).
//! * `GET` and `OPTIONS` answer with `Access-Control-Allow-Origin: *`, for clients in
//!   browsers; the document is public.
//! * 401 answers name the document's URL: `WWW-Authenticate: Bearer realm="stytch",
//!   resource_metadata="<url>"` (RFC 9728 §5.1), with `error="invalid_token"` when a
//!   token was sent (RFC 6750 §3.1); 403 `insufficient_scope` answers name it too, with
//!   the scopes needed. Not the `error="Unauthorized"` of Stytch's demos: that is no
//!   RFC 6750 error code.
//!
//! Audience: Stytch access tokens carry `aud = [project_id]`, so every token of the
//! project passes the audience check, whichever resource it was requested for (RFC
//! 8707 binding is not available from Stytch as far as its SDKs and docs show). Keep
//! resource servers of different trust in different Stytch projects, or check
//! [`ConnectedAppCaller::client_id`](crate::ConnectedAppCaller::client_id) against the
//! apps you expect.

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_TYPE,
};
use http::{HeaderValue, StatusCode};

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A protected resource, as described to OAuth clients (RFC 9728): give it to
/// [`StytchAuthBuilder::protected_resource`](crate::StytchAuthBuilder::protected_resource),
/// and serve [`StytchAuth::protected_resource_metadata`](crate::StytchAuth::protected_resource_metadata).
///
/// # Examples
///
/// ```
/// use axum_stytch::ProtectedResource;
///
/// let resource = ProtectedResource::new("https://api.example.com/mcp")
///     .scopes_supported(["openid", "read:documents"]);
/// ```
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    pub(crate) resource: String,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) scopes_supported: Vec<String>,
}

impl ProtectedResource {
    /// The resource at `url`: the exact URL clients call (an MCP server's endpoint,
    /// `https://api.example.com/mcp`). `https://`, or `http://` to a loopback address;
    /// no query or fragment.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            resource: url.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
        }
    }

    /// An authorization server that issues tokens for it: its issuer URL (Stytch's
    /// project domain, `https://<words>.customers.stytch.dev`, or your custom domain).
    /// Default: the builder's
    /// [`project_domain`](crate::StytchAuthBuilder::project_domain).
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes clients may ask for (`scopes_supported`). Default: none listed.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }
}

/// A validated [`ProtectedResource`], ready to serve.
#[derive(Debug, Clone)]
pub(crate) struct ResourceMetadata {
    /// The JSON document.
    document: Arc<str>,
    /// Where the document is served with the resource's path inserted (RFC 9728
    /// §3.1): the URL Bearer challenges name.
    pub(crate) url: Arc<str>,
    /// The paths it is served at: the path-inserted one and the root one.
    paths: Vec<String>,
}

impl ResourceMetadata {
    /// Validates `resource`; `default_server` (the project domain) is its authorization
    /// server when it names none. What is wrong otherwise.
    pub(crate) fn new(
        resource: &ProtectedResource,
        default_server: Option<&str>,
    ) -> Result<Self, String> {
        let url = crate::client::http_url(&resource.resource)?;
        if url.query().is_some() {
            return Err("the resource URL must not have a query".into());
        }
        let mut servers = resource.authorization_servers.clone();
        if servers.is_empty() {
            servers.extend(default_server.map(str::to_owned));
        }
        if servers.is_empty() {
            return Err(
                "no authorization server: set project_domain(...) on the builder, \
                        or ProtectedResource::authorization_server(...)"
                    .into(),
            );
        }
        for server in &servers {
            // RFC 8414 issuers: https URLs without query or fragment; compared as
            // strings by clients, so given exactly as the server's metadata says.
            let parsed = crate::client::http_url(server)
                .map_err(|e| format!("authorization server {server:?}: {e}"))?;
            if parsed.query().is_some() {
                return Err(format!("authorization server {server:?} has a query"));
            }
        }
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        let inserted = format!("{WELL_KNOWN}{path}");
        let mut document = serde_json::json!({
            "resource": resource.resource,
            "authorization_servers": servers,
            "bearer_methods_supported": ["header"],
        });
        if !resource.scopes_supported.is_empty() {
            document["scopes_supported"] = resource.scopes_supported.clone().into();
        }
        let mut paths = vec![inserted.clone()];
        if inserted != WELL_KNOWN {
            paths.push(WELL_KNOWN.to_owned());
        }
        Ok(Self {
            document: document.to_string().into(),
            url: format!("{origin}{inserted}").into(),
            paths,
        })
    }

    /// The routes that serve the document (`GET`, and `OPTIONS` for CORS preflights).
    pub(crate) fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let mut router = Router::new();
        for path in &self.paths {
            let document = Arc::clone(&self.document);
            router = router.route(
                path,
                get(move || std::future::ready(serve(&document))).options(preflight),
            );
        }
        router
    }
}

/// The document, public and cacheable, readable from any origin.
fn serve(document: &str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        document.to_owned(),
    )
        .into_response()
}

/// A CORS preflight: `GET` from any origin.
async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, OPTIONS"),
            ),
            (ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*")),
            (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400")),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS: &str = "https://acme-1234.customers.stytch.dev";

    fn metadata(resource: ProtectedResource) -> Result<ResourceMetadata, String> {
        ResourceMetadata::new(&resource, Some(AS))
    }

    #[test]
    fn the_path_is_inserted_after_the_host() {
        let cases = [
            (
                "https://api.example.com/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://api.example.com/mcp/",
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://api.example.com/a/b",
                "https://api.example.com/.well-known/oauth-protected-resource/a/b",
            ),
            (
                "https://api.example.com",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "http://127.0.0.1:8080/mcp",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://api.example.com:8443/mcp",
                "https://api.example.com:8443/.well-known/oauth-protected-resource/mcp",
            ),
        ];
        for (resource, url) in cases {
            let m = metadata(ProtectedResource::new(resource)).unwrap();
            assert_eq!(&*m.url, url, "{resource}");
        }
        let root = metadata(ProtectedResource::new("https://api.example.com")).unwrap();
        assert_eq!(root.paths, [WELL_KNOWN], "served once");
    }

    #[test]
    fn the_document_names_the_exact_resource_and_the_project_domain() {
        let m = metadata(
            ProtectedResource::new("https://api.example.com/mcp")
                .scopes_supported(["openid", "read:docs"]),
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&m.document).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "https://api.example.com/mcp",
                "authorization_servers": [AS],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["openid", "read:docs"],
            })
        );
        let own = ResourceMetadata::new(
            &ProtectedResource::new("https://api.example.com/mcp")
                .authorization_server("https://auth.example.com"),
            Some(AS),
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&own.document).unwrap();
        assert_eq!(
            doc["authorization_servers"],
            serde_json::json!(["https://auth.example.com"])
        );
        assert!(doc.get("scopes_supported").is_none());
    }

    #[test]
    fn bad_resources_and_servers_are_refused() {
        for bad in [
            "api.example.com/mcp",
            "http://api.example.com/mcp",
            "ftp://api.example.com/mcp",
            "https://api.example.com/mcp?x=1",
            "https://api.example.com/mcp#top",
            "https://user:pw@api.example.com/mcp",
        ] {
            assert!(metadata(ProtectedResource::new(bad)).is_err(), "{bad}");
        }
        let no_server =
            ResourceMetadata::new(&ProtectedResource::new("https://api.example.com/mcp"), None);
        assert!(no_server.unwrap_err().contains("project_domain"));
        let bad_server = ProtectedResource::new("https://api.example.com/mcp")
            .authorization_server("http://auth.example.com");
        assert!(metadata(bad_server).is_err());
    }
}
