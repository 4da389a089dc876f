//! Registry authentication: the `WWW-Authenticate` challenge of a 401 answer, the bearer-token
//! exchange with the realm it names (anonymous, or with basic credentials when there are
//! some), basic authentication, and a cache of tokens per host and scope that honours their
//! lifetime.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::creds::Credential;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Get a token from `realm` for `service` and `scope`, then send it as a bearer token.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send the user name and password.
    Basic { realm: Option<String> },
    /// A scheme cleat does not speak (Negotiate, Digest, …).
    Other(String),
}

/// The challenges in the `WWW-Authenticate` headers of an answer (RFC 7235: one header may
/// carry several, parameters may be quoted strings that contain commas).
pub fn parse_challenges<'a>(headers: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    headers.into_iter().flat_map(parse_header).collect()
}

/// The challenge cleat answers, bearer preferred over basic.
pub fn preferred(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or_else(|| {
            challenges
                .iter()
                .find(|c| matches!(c, Challenge::Basic { .. }))
        })
}

fn parse_header(header: &str) -> Vec<Challenge> {
    let mut parser = Parser { rest: header };
    let mut challenges = Vec::new();
    loop {
        parser.skip_separators();
        let Some(scheme) = parser.token() else {
            break;
        };
        let params = parser.params();
        challenges.push(challenge(scheme, params));
        if parser.rest.is_empty() {
            break;
        }
        if parser.peek_token_is_scheme() {
            continue;
        }
        // Something unparsable (a token68, stray characters): skip to the next comma.
        match parser.rest.find(',') {
            Some(i) => parser.rest = &parser.rest[i + 1..],
            None => break,
        }
    }
    challenges
}

fn challenge(scheme: &str, params: Vec<(String, String)>) -> Challenge {
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        if let Some(realm) = param("realm") {
            return Challenge::Bearer {
                realm,
                service: param("service"),
                scope: param("scope"),
            };
        }
    } else if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic {
            realm: param("realm"),
        };
    }
    Challenge::Other(scheme.to_owned())
}

/// A cursor over a header value.
struct Parser<'a> {
    rest: &'a str,
}

impl<'a> Parser<'a> {
    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn skip_separators(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', ',']);
    }

    /// An RFC 7230 token.
    fn token(&mut self) -> Option<&'a str> {
        let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let end = self
            .rest
            .find(|c: char| !is_tchar(c))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(token)
    }

    /// Whether what follows is `token` not followed by `=`, i.e. the next challenge's scheme.
    fn peek_token_is_scheme(&self) -> bool {
        let mut probe = Parser { rest: self.rest };
        probe.skip_separators();
        if probe.token().is_none() {
            return false;
        }
        probe.skip_whitespace();
        !probe.rest.starts_with('=')
    }

    /// `name=value` pairs separated by commas, up to the next challenge; names lowercased.
    fn params(&mut self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        loop {
            self.skip_separators();
            let checkpoint = self.rest;
            let Some(name) = self.token() else {
                break;
            };
            self.skip_whitespace();
            let Some(after_equals) = self.rest.strip_prefix('=') else {
                // A token without '=' starts the next challenge.
                self.rest = checkpoint;
                break;
            };
            self.rest = after_equals.trim_start_matches([' ', '\t']);
            let value = if self.rest.starts_with('"') {
                self.quoted_string()
            } else {
                self.bare_value()
            };
            params.push((name.to_ascii_lowercase(), value));
        }
        params
    }

    /// An unquoted value: a token by the RFC, but servers send URLs unquoted too, so
    /// everything up to the next comma or space.
    fn bare_value(&mut self) -> String {
        let end = self.rest.find([',', ' ', '\t']).unwrap_or(self.rest.len());
        let (value, rest) = self.rest.split_at(end);
        self.rest = rest;
        value.to_owned()
    }

    /// A quoted string with backslash escapes; an unterminated one runs to the end.
    fn quoted_string(&mut self) -> String {
        let mut value = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return value;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c => value.push(c),
            }
        }
        self.rest = "";
        value
    }
}

/// The scope of pulling from a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// `Authorization: Basic …` for a credential.
pub fn basic_header(credential: &Credential) -> String {
    let pair = format!("{}:{}", credential.username, credential.password);
    format!("Basic {}", BASE64.encode(pair))
}

/// A token server's answer. Docker's registry sends `token`, OAuth2 servers `access_token`.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A bearer token and how long it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    pub lifetime: Duration,
}

/// Tokens live 60 s unless the server says otherwise (and at least that long, per the
/// distribution spec).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

/// Parses a token server's JSON answer.
pub fn parse_token_answer(body: &[u8]) -> Result<Token, String> {
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("the token server's answer is not valid JSON: {e}"))?;
    let value = answer
        .token
        .filter(|t| !t.is_empty())
        .or(answer.access_token.filter(|t| !t.is_empty()))
        .ok_or("the token server's answer has no token")?;
    let seconds = answer
        .expires_in
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
        .max(DEFAULT_TOKEN_LIFETIME);
    Ok(Token {
        value,
        lifetime: Duration::from_secs(seconds),
    })
}

/// What the client knows about each host's authentication: bearer tokens per scope until they
/// expire, and which hosts take basic credentials (so they are sent without waiting for a
/// challenge).
#[derive(Debug, Default)]
pub struct AuthCache {
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    basic_hosts: Mutex<HashSet<String>>,
}

/// How much of a token's lifetime is used before it is fetched again, so a token does not
/// expire between the check and the request.
const EXPIRY_MARGIN: f64 = 0.9;

impl AuthCache {
    /// The `Authorization` value to send to `host` for `scope` without waiting for a
    /// challenge: a live cached token, or basic credentials for a basic host.
    pub fn header(
        &self,
        host: &str,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Option<String> {
        if let Some(header) = self.token(host, scope) {
            return Some(header);
        }
        let basic = lock(&self.basic_hosts).contains(host);
        credential.filter(|_| basic).map(basic_header)
    }

    fn token(&self, host: &str, scope: &str) -> Option<String> {
        let mut tokens = lock(&self.tokens);
        let key = (host.to_owned(), scope.to_owned());
        match tokens.get(&key) {
            Some((header, expires)) if Instant::now() < *expires => Some(header.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers a token for `host` and `scope`; returns the header to send.
    pub fn store_token(&self, host: &str, scope: &str, token: &Token) -> String {
        let header = format!("Bearer {}", token.value);
        let expires = Instant::now() + token.lifetime.mul_f64(EXPIRY_MARGIN);
        lock(&self.tokens).insert(
            (host.to_owned(), scope.to_owned()),
            (header.clone(), expires),
        );
        header
    }

    /// Forgets what was cached for `host` and `scope` (after the registry refused it).
    pub fn forget(&self, host: &str, scope: &str) {
        lock(&self.tokens).remove(&(host.to_owned(), scope.to_owned()));
    }

    /// Remembers that `host` asks for basic credentials.
    pub fn remember_basic(&self, host: &str) {
        lock(&self.basic_hosts).insert(host.to_owned());
    }
}

/// Locks a mutex, recovering the data if another thread panicked while holding it (the maps
/// stay consistent: every update is a single insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn docker_hub_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#;
        assert_eq!(
            parse_challenges([header]),
            [bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/ubuntu:pull")
            )]
        );
    }

    #[test]
    fn quoted_commas_escapes_case_and_spacing() {
        let header = r#"bearer Realm = "https://a.io/token?x=1,2" , service="a \"b\" c",scope="repository:x:pull,push""#;
        assert_eq!(
            parse_challenges([header]),
            [bearer(
                "https://a.io/token?x=1,2",
                Some(r#"a "b" c"#),
                Some("repository:x:pull,push")
            )]
        );
        assert_eq!(
            parse_challenges([r#"Bearer realm=https://a.io/token"#]),
            [bearer("https://a.io/token", None, None)]
        );
    }

    #[test]
    fn basic_and_several_challenges() {
        assert_eq!(
            parse_challenges([r#"Basic realm="Registry Realm""#]),
            [Challenge::Basic {
                realm: Some("Registry Realm".into())
            }]
        );
        assert_eq!(
            parse_challenges(["Basic"]),
            [Challenge::Basic { realm: None }]
        );
        let both =
            parse_challenges([r#"Basic realm="r", Bearer realm="https://t/token",service="s""#]);
        assert_eq!(
            both,
            [
                Challenge::Basic {
                    realm: Some("r".into())
                },
                bearer("https://t/token", Some("s"), None)
            ]
        );
        assert_eq!(preferred(&both), Some(&both[1]));
        let separate = parse_challenges(["Negotiate", r#"Basic realm="x""#]);
        assert_eq!(
            separate,
            [
                Challenge::Other("Negotiate".into()),
                Challenge::Basic {
                    realm: Some("x".into())
                }
            ]
        );
        assert_eq!(preferred(&separate), Some(&separate[1]));
    }

    #[test]
    fn odd_headers_do_not_break_the_parser() {
        assert_eq!(parse_challenges([""]), []);
        assert_eq!(
            parse_challenges(["Bearer"]),
            [Challenge::Other("Bearer".into())]
        );
        assert_eq!(
            parse_challenges([r#"Bearer realm="unterminated"#]),
            [bearer("unterminated", None, None)]
        );
        assert_eq!(
            parse_challenges(["Negotiate abc==, Basic realm=x"]).last(),
            Some(&Challenge::Basic {
                realm: Some("x".into())
            })
        );
        assert_eq!(parse_challenges([",,,"]), []);
        assert_eq!(parse_challenges(["=x"]), []);
    }

    #[test]
    fn token_answers() {
        let token = parse_token_answer(
            br#"{"token": "abc", "expires_in": 300, "issued_at": "2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            token,
            Token {
                value: "abc".into(),
                lifetime: Duration::from_secs(300)
            }
        );
        let token = parse_token_answer(br#"{"access_token": "xyz"}"#).unwrap();
        assert_eq!(
            token,
            Token {
                value: "xyz".into(),
                lifetime: Duration::from_secs(60)
            }
        );
        let token = parse_token_answer(br#"{"token": "", "access_token": "xyz", "expires_in": 5}"#)
            .unwrap();
        assert_eq!(token.lifetime, Duration::from_secs(60));
        assert!(
            parse_token_answer(br#"{"expires_in": 5}"#)
                .unwrap_err()
                .contains("no token")
        );
        assert!(
            parse_token_answer(b"<html>")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn cache_honours_expiry_and_basic_hosts() {
        let cache = AuthCache::default();
        let credential = Credential {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(cache.header("h", "s", Some(&credential)), None);
        let header = cache.store_token(
            "h",
            "s",
            &Token {
                value: "t".into(),
                lifetime: Duration::from_secs(60),
            },
        );
        assert_eq!(header, "Bearer t");
        assert_eq!(cache.header("h", "s", None).as_deref(), Some("Bearer t"));
        assert_eq!(cache.header("h", "other", None), None);
        cache.store_token(
            "h",
            "short",
            &Token {
                value: "t".into(),
                lifetime: Duration::ZERO,
            },
        );
        assert_eq!(cache.header("h", "short", None), None);
        cache.forget("h", "s");
        assert_eq!(cache.header("h", "s", None), None);
        cache.remember_basic("h");
        assert_eq!(
            cache.header("h", "s", Some(&credential)).as_deref(),
            Some("Basic dTpw")
        );
        assert_eq!(cache.header("h", "s", None), None);
    }
}
