mod common;
use axum_stytch::testing::Endpoint;
use common::*;
use http::StatusCode;

#[tokio::test]
async fn fresh_jwt_is_verified_locally() {
    let f = fixture().await;
    let app = app(&f.auth);
    let res = get_with(&app, "/me", &cookies(Some(&f.session.session_jwt), None)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body, f.member);
    assert_eq!(f.emu.requests(Endpoint::Authenticate), 0);
    assert_eq!(f.emu.requests(Endpoint::Jwks), 1);
}
