//! Tokens kept in the catalog: issued once, stored as hashes, revocable.

use crate::auth::{Caller, Scope, TokenVerifier, hash_token};
use async_trait::async_trait;
use rand::Rng;
use rand::distr::Alphanumeric;
use std::sync::Arc;
use tenantry_catalog::CatalogStore;
use tenantry_catalog::model::Token;

/// Token lookups against the catalog.
pub struct CatalogTokens(pub Arc<dyn CatalogStore>);

#[async_trait]
impl TokenVerifier for CatalogTokens {
    async fn verify(&self, token_hash: &str) -> Result<Option<Caller>, String> {
        let Some(token) = self
            .0
            .token_by_hash(token_hash)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let scope: Scope = token.scope.parse()?;
        Ok(Some(Caller {
            name: token.name,
            scope,
        }))
    }
}

/// Creates a token with `scope` and returns it with the plain text, which exists only here:
/// the catalog keeps its hash.
pub async fn issue(
    catalog: &dyn CatalogStore,
    name: &str,
    scope: Scope,
) -> Result<(Token, String), tenantry_catalog::CatalogError> {
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let plain = format!("tty_{secret}");
    let token = catalog
        .create_token(name, scope.as_str(), &hash_token(&plain))
        .await?;
    Ok((token, plain))
}

/// The name a token gets when none is given: `<scope>-<8 random hex digits>`.
pub fn default_name(scope: Scope) -> String {
    format!(
        "{scope}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
