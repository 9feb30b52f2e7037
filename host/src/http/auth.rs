//! Bearer tokens with roles. Tokens are configured as sha256 hashes; the
//! presented token is hashed and compared, so no clear token is ever stored.
//! With no tokens configured, auth is off (the server then refuses to listen
//! beyond loopback: see `Config::validate`).

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use warp::http::StatusCode;

use super::errors::ApiError;
use crate::config::{Role, TokenConfig};

/// Who is calling (for logs and for `created_by` on freezes).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Option<String>,
}

pub struct Auth {
    /// sha256 hex → (holder, roles). Empty: auth disabled.
    tokens: HashMap<String, (String, Vec<Role>)>,
}

impl Auth {
    pub fn new(tokens: &[TokenConfig]) -> Auth {
        Auth {
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
        !self.tokens.is_empty()
    }

    /// Check an `Authorization` header value for `role`.
    pub fn check(&self, header: Option<&str>, role: Role) -> Result<Caller, ApiError> {
        if !self.enabled() {
            return Ok(Caller { name: None });
        }
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header =
            header.ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the `Authorization` header must be `Bearer <token>`"))?;
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        let (name, roles) = self
            .tokens
            .get(&hash)
            .ok_or_else(|| unauthorized("unknown token"))?;
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
        Auth::new(&[TokenConfig {
            name: "ci".into(),
            sha256: hex::encode(Sha256::digest(b"s3cret")),
            roles: vec![Role::Decide],
        }])
    }

    #[test]
    fn roles_are_enforced() {
        let a = auth();
        assert_eq!(
            a.check(Some("Bearer s3cret"), Role::Decide)
                .unwrap()
                .name
                .as_deref(),
            Some("ci")
        );
        let e = a.check(Some("Bearer s3cret"), Role::Admin).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.message.contains("`admin`"));
        assert_eq!(
            a.check(Some("Bearer nope"), Role::Decide)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.check(None, Role::Decide).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            a.check(Some("Basic x"), Role::Decide).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn no_tokens_means_open() {
        assert!(Auth::new(&[]).check(None, Role::Admin).is_ok());
    }
}
