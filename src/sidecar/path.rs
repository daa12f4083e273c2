//! The path parameters of the API's routes: axum's `Path`, with its refusals answered as every
//! other error of the API is, JSON 400 `BadRequest`, instead of axum's plain text (a segment
//! that is not valid percent-encoding, or not UTF-8 once decoded).

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, ErrorKind};

/// The route's path parameters, deserialized as `T`.
pub(crate) struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::BadRequest,
                e.body_text(),
            )),
        }
    }
}
