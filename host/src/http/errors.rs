//! The one place errors become HTTP statuses and the JSON error body
//! `{"error": {"code", "message"}}`.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::engine::{EngineError, HostError, SandboxError};
use crate::service::ServiceError;
use crate::store::StoreError;

/// An API error: status, stable machine code, human message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn reject(self) -> Rejection {
        warp::reject::custom(self)
    }

    pub fn reply(&self) -> warp::reply::Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut r = warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // Says how to authenticate (HTTP requires it on a 401). Basic is
            // listed so a browser opening the console asks for the token
            // (as the password) instead of showing this JSON.
            r.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static(
                    "Bearer realm=\"verdict\", Basic realm=\"verdict\", charset=\"UTF-8\"",
                ),
            );
        }
        r
    }
}

/// A request refused by the HTTP layer itself, before (or instead of) a
/// handler: how it was sent, not what it asks for.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request body larger than {limit} bytes (the server's `{setting}`)")]
    TooLarge { limit: u64, setting: &'static str },
    #[error("request body not received within {ms} ms")]
    BodyTimeout { ms: u128 },
    #[error("cannot read body: {0}")]
    BadBody(String),
    #[error("request took longer than {ms} ms")]
    Timeout { ms: u128 },
    #[error("this route takes `Content-Type: {expected}`, and the request has no `Content-Type`")]
    NoMediaType { expected: &'static str },
    #[error("this route takes `Content-Type: {expected}`, not `{got}`")]
    WrongMediaType { expected: &'static str, got: String },
    #[error(
        "without tokens this server answers only requests addressed to loopback \
         (`Host` localhost, 127.0.0.1 or [::1]), not `{0}`; configure tokens to serve other names"
    )]
    ForeignHost(String),
    #[error("without tokens this server answers only requests addressed to loopback, and this one has no `Host`")]
    NoHost,
    #[error(
        "without tokens this server refuses requests from web pages of other origins: \
         `Origin` `{0}` is not loopback"
    )]
    ForeignOrigin(String),
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        use RequestError as R;
        use StatusCode as S;
        let (status, code) = match &e {
            R::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "too_large"),
            R::BodyTimeout { .. } => (S::REQUEST_TIMEOUT, "body_timeout"),
            R::BadBody(_) => (S::BAD_REQUEST, "bad_body"),
            R::Timeout { .. } => (S::SERVICE_UNAVAILABLE, "timeout"),
            R::NoMediaType { .. } | R::WrongMediaType { .. } => {
                (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            R::ForeignHost(_) | R::NoHost => (S::MISDIRECTED_REQUEST, "misdirected"),
            R::ForeignOrigin(_) => (S::FORBIDDEN, "foreign_origin"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl RequestError {
    pub fn reject(self) -> Rejection {
        ApiError::from(self).reject()
    }
}

/// Client input shown in a message: at most 200 characters, control
/// characters escaped (a header can carry anything but CR and LF).
pub fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_debug).collect();
    if s.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            ServiceError::InvalidRequest(_)
            | ServiceError::InvalidName(_)
            | ServiceError::TimeOutOfRange(_)
            | ServiceError::PulledOnInput(_)
            | ServiceError::TooManyReplayPolicies { .. } => {
                (S::UNPROCESSABLE_ENTITY, "invalid_request")
            }
            ServiceError::ClockSkew { .. } => (S::UNPROCESSABLE_ENTITY, "clock_skew"),
            // Nobody is waiting for this answer any more; should one be
            // sent, it says the work was given up.
            ServiceError::Cancelled => (S::SERVICE_UNAVAILABLE, "cancelled"),
            ServiceError::UnknownDecision(_) => (S::NOT_FOUND, "not_found"),
            ServiceError::Internal(_) | ServiceError::Config(_) | ServiceError::StoreOpen(_) => {
                (S::INTERNAL_SERVER_ERROR, "internal")
            }
            ServiceError::Store(StoreError::BadCursor(_)) => (S::BAD_REQUEST, "bad_cursor"),
            ServiceError::Store(StoreError::Failed(_)) => (S::SERVICE_UNAVAILABLE, "store_failed"),
            // The database is down or unreachable: nothing was stored, and
            // the same request succeeds once it is back.
            ServiceError::Store(StoreError::Unavailable(_)) => {
                (S::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ServiceError::Store(StoreError::IdempotencyConflict(_)) => {
                (S::CONFLICT, "idempotency_conflict")
            }
            ServiceError::Store(_) => (S::INTERNAL_SERVER_ERROR, "store"),
            ServiceError::Engine(e) => match e {
                EngineError::InvalidName(_) => (S::BAD_REQUEST, "invalid_name"),
                EngineError::Rejected { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_policy"),
                EngineError::UnknownPolicy(_)
                | EngineError::UnknownBinding(_)
                | EngineError::UnknownFreeze(_) => (S::NOT_FOUND, "not_found"),
                EngineError::PolicyInUse { .. } => (S::CONFLICT, "policy_in_use"),
                EngineError::PinMismatch { .. } => (S::UNPROCESSABLE_ENTITY, "pin_mismatch"),
                EngineError::InvalidSettings { .. } | EngineError::InvalidBinding(..) => {
                    (S::UNPROCESSABLE_ENTITY, "invalid_binding")
                }
                EngineError::Sandbox(SandboxError::Setup(_)) => {
                    (S::INTERNAL_SERVER_ERROR, "internal")
                }
                // The host could not run a policy: retryable, never the
                // policy's (nor the caller's) fault.
                EngineError::Host(HostError::Overloaded { .. } | HostError::Starved { .. })
                | EngineError::Sandbox(SandboxError::Host(
                    HostError::Overloaded { .. } | HostError::Starved { .. },
                )) => (S::SERVICE_UNAVAILABLE, "overloaded"),
                EngineError::Host(HostError::Instantiate { .. })
                | EngineError::Sandbox(SandboxError::Host(HostError::Instantiate { .. })) => {
                    (S::SERVICE_UNAVAILABLE, "sandbox_unavailable")
                }
                EngineError::Sandbox(_) => (S::UNPROCESSABLE_ENTITY, "invalid_policy"),
            },
        };
        if status == S::INTERNAL_SERVER_ERROR {
            tracing::error!("{message}");
        } else if status == S::SERVICE_UNAVAILABLE {
            tracing::warn!("{message}");
        }
        ApiError::new(status, code, message)
    }
}

/// Parse a JSON body into `T`: syntax errors are 400, well-formed JSON of the
/// wrong shape is 422; both say where.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("invalid request body: {e}"),
            ),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("malformed JSON body: {e}"),
            ),
        }
    })
}

/// Map every rejection to the JSON error body.
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    use StatusCode as S;
    let err = if let Some(e) = rejection.find::<ApiError>() {
        return Ok(e.reply());
    } else if rejection.is_not_found() {
        ApiError::new(S::NOT_FOUND, "not_found", "no such route")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            S::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this route",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::new(
            S::BAD_REQUEST,
            "invalid_query",
            format!("invalid query string: {e}"),
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(S::PAYLOAD_TOO_LARGE, "too_large", "request body too large")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::new(S::BAD_REQUEST, "invalid_header", e.to_string())
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::new(
            S::INTERNAL_SERVER_ERROR,
            "internal",
            "unhandled request error",
        )
    };
    Ok(err.reply())
}
