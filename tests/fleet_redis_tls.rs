//! The fleet's Redis over TLS (`rediss://`, rustls): `cargo test --features redis --test
//! fleet_redis_tls`. A test binary of its own: it points the process's trust store
//! (`SSL_CERT_FILE`, read by rustls-native-certs) at a certificate authority made for
//! the test.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, free_port};
use common::{app, cookies, fixture, get_with, send};
use http::StatusCode;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_travel_over_tls() {
    let dir = std::env::temp_dir().join(format!("axum-stytch-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let ca_key = KeyPair::generate().expect("a key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("the authority");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("a key");
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("parameters")
        .signed_by(&server_key, &issuer)
        .expect("the server's certificate");
    let (ca_pem, cert_pem, key_pem) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca_pem, ca.pem()).expect("written");
    std::fs::write(&cert_pem, server.pem()).expect("written");
    std::fs::write(&key_pem, server_key.serialize_pem()).expect("written");
    // SAFETY: set before any other thread of this test binary reads the environment
    // (the runtime's workers only run the tasks spawned below).
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_pem) };

    let tls_port = free_port();
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let redis = RedisServer::start_with_tls(vec![
        "--tls-port".into(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        path(&cert_pem),
        "--tls-key-file".into(),
        path(&key_pem),
        "--tls-ca-cert-file".into(),
        path(&ca_pem),
        "--tls-auth-clients".into(),
        "no".into(),
    ]);
    let url = format!("rediss://localhost:{tls_port}");
    let f = fixture().await;
    let build = || {
        f.emu
            .auth_builder()
            .revocations_in_redis(url.clone())
            .build()
            .expect("a valid configuration")
    };
    let (a, b) = (build(), build());
    a.warm_up().await.expect("the keys");
    b.warm_up().await.expect("the keys");
    let (a_app, b_app) = (app(&a), app(&b));
    let cookie = cookies(Some(&f.session.session_jwt), None);
    assert_eq!(
        get_with(&b_app, "/me", &cookie).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&a_app, "POST", "/logout", Some(&cookie)).await.status,
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while get_with(&b_app, "/me", &cookie).await.status == StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the revocation never arrived over TLS"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        a.metrics().revocation_feed_failures,
        0,
        "TLS connected at once"
    );
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
