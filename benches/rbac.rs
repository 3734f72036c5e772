//! The local RBAC decision (`internals::decide_locally`): a project policy of a dozen
//! roles over six resources, compiled once; a session with `stytch_member` and
//! `editor` (a typical member) or with five roles (a power user).
//!
//! * `rbac/allow_first_match`, `rbac/allow_five_roles`: permitted checks (the granting
//!   roles are collected, so every session role is looked at).
//! * `rbac/allow_wildcard`: granted through a `*` action.
//! * `rbac/deny`: no role grants the action.
//! * `rbac/tenancy_mismatch`: another organization (decided before any role lookup).
//!
//! `cargo bench --bench rbac`

mod common;

use std::hint::black_box;

use axum_stytch::internals::{Roles, decide_locally};
use criterion::{Criterion, criterion_group, criterion_main};

const ORG: &str = "organization-test-5e0b7a52-1c1b-4a8e-9f0e-2f7f3d9b6c11";
const OTHER_ORG: &str = "organization-test-0a4f7c8e-8d7e-4bb1-8c0b-7e1f2a3b4c5d";

/// (name, session roles, checked organization, resource, action, allowed)
type Case<'a> = (&'a str, &'a [String], &'a str, &'a str, &'a str, bool);

fn benches(c: &mut Criterion) {
    let roles = Roles::new(&common::project_roles());
    let member: Vec<String> = ["stytch_member", "editor"].map(String::from).to_vec();
    let power: Vec<String> = [
        "stytch_member",
        "viewer",
        "editor",
        "billing_admin",
        "project_admin",
    ]
    .map(String::from)
    .to_vec();

    let cases: [Case<'_>; 5] = [
        ("allow_first_match", &member, ORG, "document", "read", true),
        ("allow_five_roles", &power, ORG, "document", "read", true),
        (
            "allow_wildcard",
            &power,
            ORG,
            "subscription",
            "cancel",
            true,
        ),
        ("deny", &member, ORG, "invoice", "pay", false),
        (
            "tenancy_mismatch",
            &member,
            OTHER_ORG,
            "document",
            "read",
            false,
        ),
    ];
    let mut group = c.benchmark_group("rbac");
    for (name, session_roles, checked_org, resource, action, allowed) in cases {
        assert_eq!(
            decide_locally(&roles, ORG, checked_org, session_roles, resource, action).is_some(),
            allowed,
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                decide_locally(
                    &roles,
                    black_box(ORG),
                    black_box(checked_org),
                    black_box(session_roles),
                    black_box(resource),
                    black_box(action),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(rbac, benches);
criterion_main!(rbac);
