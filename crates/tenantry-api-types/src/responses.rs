//! Response envelopes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The answer to a request that started an operation (`202 Accepted`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The operation's id.
    pub operation_id: Uuid,
    /// Where to follow it: `GET` this URL.
    pub operation_url: String,
    /// The tenant it works on.
    pub tenant_id: Uuid,
    pub tenant_slug: String,
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
