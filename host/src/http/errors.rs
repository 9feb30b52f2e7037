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
        warp::reply::with_status(warp::reply::json(&body), self.status).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            ServiceError::InvalidRequest(_) => (S::UNPROCESSABLE_ENTITY, "invalid_request"),
            ServiceError::UnknownDecision(_) => (S::NOT_FOUND, "not_found"),
            ServiceError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
            ServiceError::Store(StoreError::BadCursor(_)) => (S::BAD_REQUEST, "bad_cursor"),
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
