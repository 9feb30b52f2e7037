//! Bearer tokens with roles. Tokens are configured as sha256 hashes; the
//! presented token is hashed and compared, so no clear token is ever stored.
//! With no tokens configured, auth is off (the server then refuses to listen
//! beyond loopback: see `Config::validate`).
//!
//! A token is accepted as `Authorization: Bearer <token>` or as the password
//! of HTTP Basic auth (`Authorization: Basic base64(user:token)`, any user):
//! Flagger's webhooks cannot carry headers, only a URL, and Go's HTTP client
//! turns `http://user:token@host/…` into Basic auth. Both forms go through
//! the same hash lookup; the password is never logged nor echoed in errors.
//!
//! Over HTTPS with `tls_client_ca`, a verified client certificate whose
//! subject (common name, DNS name or URI) is listed in `[[client_certs]]`
//! authenticates as that entry's name and roles. An `Authorization` header,
//! when present, is what counts; the certificate is used without one.

use std::collections::HashMap;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use warp::http::StatusCode;

use super::errors::ApiError;
use crate::config::{ClientCertConfig, Role, TokenConfig};
use crate::tls::PeerNames;

/// Who is calling (for logs and for `created_by` on freezes).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Option<String>,
}

pub struct Auth {
    /// sha256 hex → (holder, roles). Empty: auth disabled.
    tokens: HashMap<String, (String, Vec<Role>)>,
    /// Client certificate subjects, in configuration order (the first
    /// entry matching one of a certificate's names wins).
    certs: Vec<ClientCertConfig>,
}

impl Auth {
    pub fn new(tokens: &[TokenConfig], certs: &[ClientCertConfig]) -> Auth {
        Auth {
            certs: certs.to_vec(),
            tokens: tokens
                .iter()
                .map(|t| {
                    (
                        t.sha256.to_ascii_lowercase(),
                        (t.name.clone(), t.roles.clone()),
                    )
                })
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.certs.is_empty()
    }

    /// Check an `Authorization` header value, or else the client
    /// certificate's names (`peer`), for `role`.
    pub fn check(
        &self,
        header: Option<&str>,
        peer: Option<&PeerNames>,
        role: Role,
    ) -> Result<Caller, ApiError> {
        if !self.enabled() {
            return Ok(Caller { name: None });
        }
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let (name, roles) = match header {
            Some(header) => {
                let token = presented_token(header).map_err(&unauthorized)?;
                let hash = hex::encode(Sha256::digest(token.as_bytes()));
                self.tokens
                    .get(&hash)
                    .map(|(n, r)| (n, r))
                    .ok_or_else(|| unauthorized("unknown token"))?
            }
            None => match peer {
                Some(peer) => self
                    .certs
                    .iter()
                    .find(|c| peer.0.contains(&c.subject))
                    .map(|c| (&c.name, &c.roles))
                    .ok_or_else(|| {
                        unauthorized(
                            "the client certificate's subject is not in `client_certs`, \
                             and no `Authorization` header was sent",
                        )
                    })?,
                None => {
                    return Err(unauthorized(
                        "missing `Authorization: Bearer <token>` (or Basic auth) header",
                    ))
                }
            },
        };
        if !roles.contains(&role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("token `{name}` lacks the `{}` role", role_name(role)),
            ));
        }
        Ok(Caller {
            name: Some(name.clone()),
        })
    }
}

/// The token in an `Authorization` header value: the credentials of
/// `Bearer <token>`, or the password of `Basic base64(user:password)`.
/// Errors say what is wrong with the form, never what was sent.
fn presented_token(header: &str) -> Result<String, &'static str> {
    let (scheme, credentials) = header
        .trim()
        .split_once(' ')
        .ok_or("the `Authorization` header must be `Bearer <token>` or `Basic <user:token>`")?;
    let credentials = credentials.trim();
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        credentials.to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .map_err(|_| "Basic auth credentials are not base64")?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| "Basic auth credentials are not UTF-8")?;
        // The user name is free (Flagger's URL needs one); the password is
        // the token. A colon may appear in the password, not in the user.
        let (_user, password) = decoded
            .split_once(':')
            .ok_or("Basic auth credentials must be `user:token`")?;
        password.to_string()
    } else {
        return Err("the `Authorization` header must be `Bearer <token>` or `Basic <user:token>`");
    };
    if token.is_empty() {
        return Err("the `Authorization` header carries an empty token");
    }
    Ok(token)
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Decide => "decide",
        Role::Read => "read",
        Role::Admin => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            &[TokenConfig {
                name: "ci".into(),
                sha256: hex::encode(Sha256::digest(b"s3cret")),
                roles: vec![Role::Decide],
            }],
            &[ClientCertConfig {
                subject: "spiffe://cluster.local/ns/argo/sa/rollouts".into(),
                name: "argo".into(),
                roles: vec![Role::Decide, Role::Read],
            }],
        )
    }

    #[test]
    fn a_listed_client_certificate_authenticates_like_a_token() {
        let a = auth();
        let argo = PeerNames(vec![
            "rollouts".into(),
            "spiffe://cluster.local/ns/argo/sa/rollouts".into(),
        ]);
        let c = a.check(None, Some(&argo), Role::Read).unwrap();
        assert_eq!(c.name.as_deref(), Some("argo"));
        let e = a.check(None, Some(&argo), Role::Admin).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let stranger = PeerNames(vec!["other".into()]);
        let e = a.check(None, Some(&stranger), Role::Decide).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.message.contains("client_certs"), "{}", e.message);
        // A header, when sent, is what counts.
        assert_eq!(
            a.check(Some("Bearer s3cret"), Some(&stranger), Role::Decide)
                .unwrap()
                .name
                .as_deref(),
            Some("ci")
        );
        assert_eq!(
            a.check(Some("Bearer nope"), Some(&argo), Role::Decide)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(
            Auth::new(
                &[],
                &[ClientCertConfig {
                    subject: "x".into(),
                    name: "x".into(),
                    roles: vec![Role::Read],
                }]
            )
            .enabled(),
            "client certificates alone turn auth on"
        );
    }

    #[test]
    fn roles_are_enforced() {
        let a = auth();
        assert_eq!(
            a.check(Some("Bearer s3cret"), None, Role::Decide)
                .unwrap()
                .name
                .as_deref(),
            Some("ci")
        );
        let e = a
            .check(Some("Bearer s3cret"), None, Role::Admin)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("`admin`"));
        assert_eq!(
            a.check(Some("Bearer nope"), None, Role::Decide)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.check(None, None, Role::Decide).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.check(Some("Basic x"), None, Role::Decide)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.check(Some("Token s3cret"), None, Role::Decide)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
    }

    fn basic(user_and_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        )
    }

    #[test]
    fn basic_auth_password_is_the_token() {
        let a = auth();
        for user in ["flagger", "", "any:thing"] {
            // "any:thing" splits at the first colon: user "any", password
            // "thing:s3cret" is not the token.
            let header = basic(&format!("{user}:s3cret"));
            let got = a.check(Some(&header), None, Role::Decide);
            if user.contains(':') {
                assert_eq!(got.unwrap_err().status, StatusCode::UNAUTHORIZED);
            } else {
                assert_eq!(got.unwrap().name.as_deref(), Some("ci"), "{user}");
            }
        }
        assert_eq!(
            a.check(Some(&basic("flagger:s3cret")), None, Role::Admin)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN,
            "same roles as the bearer form"
        );
        for bad in [
            basic("flagger:wrong"),
            basic("flagger:"),
            basic("s3cret"),
            "Basic !!!".to_string(),
        ] {
            let e = a.check(Some(&bad), None, Role::Decide).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
            assert!(
                !e.message.contains("s3cret") && !e.message.contains("wrong"),
                "{e:?}"
            );
        }
        assert_eq!(
            a.check(
                Some(&basic("u:s3cret").replace("Basic", "basic")),
                None,
                Role::Decide
            )
            .unwrap()
            .name
            .as_deref(),
            Some("ci"),
            "the scheme is case-insensitive"
        );
    }

    #[test]
    fn no_tokens_means_open() {
        assert!(Auth::new(&[], &[]).check(None, None, Role::Admin).is_ok());
    }
}
