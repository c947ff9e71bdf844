//! Bearer tokens with scopes. A token is shown once when created and stored only as its
//! SHA-256 hash, so the catalog never holds a usable token. Every route names the smallest
//! scope it needs; `admin` includes `operator`, which includes `reader`.

use crate::problem::Problem;
use crate::state::AppState;
use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read tenants, operations, events and the topology.
    Reader,
    /// Also create, suspend, resume and delete tenants.
    Operator,
    /// Also manage shards and tokens.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Reader => "reader",
            Scope::Operator => "operator",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reader" => Ok(Scope::Reader),
            "operator" => Ok(Scope::Operator),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!(
                "unknown scope {s:?}: expected admin, operator or reader"
            )),
        }
    }
}

/// Who is calling, once their token checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name, recorded as the actor of what it does.
    pub name: String,
    pub scope: Scope,
}

/// Looks up a token by its hash. Implemented over the catalog.
#[async_trait]
pub trait TokenVerifier: Send + Sync + 'static {
    /// The caller the token with this hash belongs to, or `None` (unknown or revoked).
    async fn verify(&self, token_hash: &str) -> Result<Option<Caller>, String>;
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Middleware that admits only callers whose token has at least `needed`.
pub async fn require(
    State((state, needed)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Result<Response, Problem> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized(
                "send `Authorization: Bearer <token>`; create a token with `tenantry token create --scope reader|operator|admin`",
            )
        })?;
    let caller = state
        .tokens
        .verify(&hash_token(presented))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "token lookup failed");
            Problem::unauthorized("the token could not be checked; retry later")
        })?
        .ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))?;
    if caller.scope < needed {
        return Err(Problem::forbidden(format!(
            "this needs a token with scope {needed} or more; token {} has scope {}",
            caller.name, caller.scope
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered_and_parsed() {
        assert!(Scope::Admin > Scope::Operator && Scope::Operator > Scope::Reader);
        assert_eq!("operator".parse::<Scope>().unwrap(), Scope::Operator);
        assert!("root".parse::<Scope>().is_err());
        assert_eq!(hash_token("x").len(), 64);
    }
}
