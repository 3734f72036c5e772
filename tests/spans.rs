//! The tracing spans README's "Tracing" section promises: `stytch.session` (one per
//! request: `path`, `outcome`) and `stytch.authenticate` (one per call to
//! `sessions/authenticate`: `path`, `check`, `result`), with those fields and values,
//! and never a credential or an id.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use axum_stytch::testing::{Endpoint, Fault};
use common::*;
use http::StatusCode;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer, Registry};

/// A span's name and fields, as recorded (at creation and later).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

/// Records every span's fields, in the order the spans were created; `take` reads
/// those created since it last did.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Log>>);

/// Every span so far, and how many `take` has read.
type Log = (Vec<(Id, Recorded)>, usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name();
        self.0
            .lock()
            .unwrap()
            .0
            .push((id.clone(), Recorded { name, fields }));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.0.lock().unwrap();
        if let Some((_, span)) = spans.0.iter_mut().rev().find(|(i, _)| i == id) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}

impl Spans {
    /// The fields of the spans named `name` created since the last call.
    fn take(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        let mut spans = self.0.lock().unwrap();
        let (all, taken) = &mut *spans;
        let new = all[*taken..]
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(_, s)| s.fields.clone())
            .collect();
        *taken = all.len();
        new
    }

    /// Every span recorded, as text.
    fn everything(&self) -> String {
        format!("{:?}", self.0.lock().unwrap().0)
    }
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn the_session_and_authenticate_spans_carry_the_documented_fields() {
    let spans = Spans::default();
    let _recording = tracing::subscriber::set_default(Registry::default().with(spans.clone()));

    let f = fixture().await;
    let app = app(&f.auth);
    f.auth.warm_up().await.expect("the keys");
    spans.take("");
    let session = "stytch.session";
    let authenticate = "stytch.authenticate";

    // A JWT: verified locally, then from the cache (both `local`), no call.
    let jwt = jwt_cookie(&f.session.session_jwt);
    for _ in 0..2 {
        assert_eq!(get_with(&app, "/me", &jwt).await.status, StatusCode::OK);
    }
    let ok = fields(&[("path", "local"), ("outcome", "ok")]);
    assert_eq!(spans.take(session), [ok.clone(), ok]);

    // No credentials: decided locally, with the reason.
    send(&app, "GET", "/me", None).await;
    assert_eq!(
        spans.take(session),
        [fields(&[
            ("path", "local"),
            ("outcome", "missing_credentials")
        ])]
    );

    // A session token: Stytch decides, in a call of its own.
    let token = cookies(None, Some(&f.session.session_token));
    assert_eq!(get_with(&app, "/me", &token).await.status, StatusCode::OK);
    let all = spans.everything();
    assert_eq!(
        spans.take(session),
        [fields(&[("path", "remote"), ("outcome", "deferred")])],
        "{all}"
    );

    // The call's own span.
    let token = cookies(None, Some(&f.emu.create_session(&f.member).session_token));
    get_with(&app, "/me", &token).await;
    let calls = spans.take(authenticate);
    assert_eq!(
        calls,
        [fields(&[
            ("path", "remote"),
            ("check", "false"),
            ("result", "ok")
        ])]
    );

    // With the permission check in the call (the organization from the path).
    let other = f.emu.create_session(&f.member);
    let path = format!("/orgs/{}/documents", f.org);
    let denied = get_with(&app, &path, &cookies(None, Some(&other.session_token))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        spans.take(authenticate),
        [fields(&[
            ("path", "remote"),
            ("check", "true"),
            ("result", "denied")
        ])]
    );

    // Stytch does not know the session; then Stytch fails.
    let made_up = "made-up-session-token-0000000000000000000000";
    get_with(&app, "/me", &cookies(None, Some(made_up))).await;
    f.emu.inject_fault(
        Endpoint::Authenticate,
        Fault::Status {
            status: 503,
            times: 1,
        },
    );
    let failing = f.emu.create_session(&f.member);
    get_with(&app, "/me", &cookies(None, Some(&failing.session_token))).await;
    let all = spans.everything();
    let results: Vec<_> = spans
        .take(authenticate)
        .into_iter()
        .map(|mut fields| fields.remove("result").unwrap_or_default())
        .collect();
    assert_eq!(results, ["session_not_found", "server_error"], "{all}");

    // No field anywhere carries a credential, an id or a URL.
    get_with(&app, "/me", &jwt).await;
    let all = spans.everything();
    for secret in [
        f.session.session_jwt.as_str(),
        f.session.session_token.as_str(),
        f.session.member_session_id.as_str(),
        other.session_token.as_str(),
        failing.session_token.as_str(),
        f.member.as_str(),
        f.org.as_str(),
        made_up,
        &f.emu.base_url(),
    ] {
        assert!(!all.contains(secret), "{all}");
    }
}
