//! Registries that want credentials: HTTPS with basic authentication (its CA from
//! registries.toml), and bearer tokens from a token server (anonymous and with credentials);
//! `cleat login` and `cleat logout`.

use std::fs;
use std::sync::Mutex;

use super::fixtures::{
    AUTH_FILE, TLS, TLS_PASSWORD, TLS_USER, TOKEN, TOKEN_PASSWORD, TOKEN_SERVER_UNIT, TOKEN_USER,
    assert_pull_digest, image, pull, pull_ok, registries, shared,
};
use crate::host::{Output, host};

/// auth.json is one file for every registry: the tests that log in take turns.
static AUTH: Mutex<()> = Mutex::new(());

fn auth_json() -> Option<String> {
    fs::read_to_string(host().path(AUTH_FILE)).ok()
}

/// `printf PASSWORD | cleat login -u USER --password-stdin HOST`.
fn login(user: &str, password: &str, registry: &str) -> Output {
    host().sh(&format!(
        "printf '%s' '{password}' | /usr/local/bin/cleat login -u '{user}' --password-stdin '{registry}'"
    ))
}

/// The pull was refused for want of (valid) credentials, and the message says so and names
/// the registry.
#[track_caller]
fn refused_unauthorized(out: &Output, registry: &str) {
    out.fails().says(registry).reads_clean();
    let text = out.all_lower();
    assert!(
        [
            "unauthorized",
            "authentication required",
            "not authorized",
            "denied"
        ]
        .iter()
        .any(|w| text.contains(w)),
        "the message does not say the registry refused access:\n{out}"
    );
}

#[test]
fn tls_registry_with_basic_auth_login_and_logout() {
    registries();
    let _g = shared();
    let _a = AUTH.lock().unwrap_or_else(|p| p.into_inner());
    let img = image(TLS, "busybox");

    // No credentials: refused, naming the registry.
    let before = auth_json();
    refused_unauthorized(&pull(&[&img]), TLS);

    // A wrong password: login fails and writes nothing.
    let out = login(TLS_USER, "not-the-password", TLS);
    out.fails().says(TLS).reads_clean();
    assert_eq!(auth_json(), before, "a failed login changed {AUTH_FILE}");

    // The right one: written (not readable by others), and pulls work.
    login(TLS_USER, TLS_PASSWORD, TLS).ok();
    let json = auth_json().unwrap_or_else(|| panic!("cleat login wrote no {AUTH_FILE}"));
    assert!(
        json.contains(TLS),
        "{AUTH_FILE} does not mention {TLS}:\n{json}"
    );
    assert!(
        !json.contains(TLS_PASSWORD),
        "{AUTH_FILE} holds the password in clear (Docker's format encodes it):\n{json}"
    );
    let mode = fs::metadata(host().path(AUTH_FILE))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0);
    assert_eq!(mode & 0o077, 0, "{AUTH_FILE} has mode {mode:o}");
    let out = pull_ok(&img);
    assert_pull_digest(&out, &img, registries().digest("busybox"));

    // Logged out: refused again (a pull always asks the registry).
    host().cleat(&["logout", TLS]).ok();
    assert!(
        !auth_json().unwrap_or_default().contains(TLS),
        "{AUTH_FILE} still mentions {TLS} after logout"
    );
    refused_unauthorized(&pull(&[&img]), TLS);
}

#[test]
fn token_registry_anonymous_and_with_credentials() {
    registries();
    let _g = shared();
    let _a = AUTH.lock().unwrap_or_else(|p| p.into_inner());
    let h = host();

    // Anonymous: a token for public repositories only.
    pull_ok(&image(TOKEN, "public/busybox"));
    let journal = h.journal(TOKEN_SERVER_UNIT);
    assert!(
        journal.contains("token: user=<anonymous> scope=repository:public/busybox:pull"),
        "no anonymous token was asked for:\n{journal}"
    );
    let img = image(TOKEN, "busybox");
    refused_unauthorized(&pull(&[&img]), TOKEN);

    let before = auth_json();
    login(TOKEN_USER, "wrong", TOKEN).fails().says(TOKEN);
    assert_eq!(auth_json(), before, "a failed login changed {AUTH_FILE}");

    login(TOKEN_USER, TOKEN_PASSWORD, TOKEN).ok();
    pull_ok(&img);
    let journal = h.journal(TOKEN_SERVER_UNIT);
    assert!(
        journal.contains(&format!(
            "token: user={TOKEN_USER} scope=repository:busybox:pull"
        )),
        "no token was asked for with the credentials:\n{journal}"
    );

    h.cleat(&["logout", TOKEN]).ok();
    refused_unauthorized(&pull(&[&img]), TOKEN);
}
