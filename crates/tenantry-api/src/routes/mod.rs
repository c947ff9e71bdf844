//! One module per resource.

pub mod compute;
pub mod domains;
pub mod events;
pub mod health;
pub mod infrastructure;
pub mod migrations;
pub mod moves;
pub mod operations;
pub mod plans;
pub mod pool;
pub mod reconciliation;
pub mod shard_admin;
pub mod storage;
pub mod tenants;
pub mod tokens;
pub mod topology;

use crate::problem::Problem;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// A JSON body whose rejections are problem documents naming the field at fault.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
