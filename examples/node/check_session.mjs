// Stytch's Node SDK against the axum-stytch emulator.
//
//   cargo run --example emulator -- --port 4000   # in one shell; paste its `export` lines
//   npm install && node check_session.mjs         # here, in another
//
// Reads the variables the emulator prints, authenticates the viewer's session remotely
// and its JWT locally (with an RBAC check against the emulator's policy), and gets and
// verifies an M2M token. Prints one JSON line; exits non-zero on any failure.
import stytch from "stytch";

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set: paste the export lines of \`cargo run --example emulator\``);
    process.exit(2);
  }
  return value;
}

const client = new stytch.B2BClient({
  project_id: env("STYTCH_PROJECT_ID"),
  secret: env("STYTCH_SECRET"),
  // The emulator speaks plain http:// on 127.0.0.1. `custom_base_url` must be
  // https:// (the constructor throws otherwise), so the URL goes in `env`, which takes
  // any base URL (the SDK warns that it is not envs.test or envs.live).
  env: env("STYTCH_BASE_URL"),
});
const organization_id = env("STYTCH_ORGANIZATION_ID");

// 1. Remote: POST /v1/b2b/sessions/authenticate with the session token.
const remote = await client.sessions.authenticate({
  session_token: env("STYTCH_VIEWER_SESSION_TOKEN"),
});

// 2. Local: the JWT checked against the emulator's JWKS on the system clock, and the
// RBAC policy fetched from the emulator: the viewer may read documents...
const local = await client.sessions.authenticateJwtLocal({
  session_jwt: env("STYTCH_VIEWER_SESSION_JWT"),
  authorization_check: { organization_id, resource_id: "document", action: "read" },
});
// ...but not create them.
let create = "allowed";
try {
  await client.sessions.authenticateJwtLocal({
    session_jwt: env("STYTCH_VIEWER_SESSION_JWT"),
    authorization_check: { organization_id, resource_id: "document", action: "create" },
  });
} catch (error) {
  create = error.code ?? String(error);
}

// 3. M2M: a client-credentials token, verified locally.
const { access_token } = await client.m2m.token({
  client_id: env("STYTCH_M2M_CLIENT_ID"),
  client_secret: env("STYTCH_M2M_CLIENT_SECRET"),
});
const m2m = await client.m2m.authenticateToken({
  access_token,
  required_scopes: ["read:documents"],
});

console.log(
  JSON.stringify({
    remote_member_id: remote.member.member_id,
    remote_roles: remote.member_session.roles,
    local_member_id: local.member_id,
    local_roles: local.roles,
    create,
    m2m_client_id: m2m.client_id,
    m2m_scopes: m2m.scopes,
  }),
);
