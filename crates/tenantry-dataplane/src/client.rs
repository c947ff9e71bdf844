//! The control plane's side: a signed `initialize` call with a long timeout, its failures told
//! apart into those worth retrying (the data plane is unreachable, busy or failing) and those
//! that are not (it refused the request).

use crate::protocol::{InitializeRequest, InitializeResponse};
use crate::server::INITIALIZE_PATH;
use crate::signature::{SIGNATURE_HEADER, SignatureError, Signer, TIMESTAMP_HEADER};
use secrecy::SecretString;
use std::time::Duration;

/// How long the data plane may take to create and migrate a space (the seeds' ten minutes).
pub const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("the data plane at {endpoint} cannot be reached: {source}")]
    Unreachable {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the data plane at {endpoint} failed ({status}): {message}")]
    Failed {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("the data plane at {endpoint} refused the request ({status}): {message}")]
    Refused {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("the data plane at {endpoint} answered something that is not an initialize answer: {0}", endpoint = .1)]
    BadAnswer(String, String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl DataPlaneError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Failed { .. })
    }
}

/// Calls data planes on behalf of a control plane.
pub struct DataPlaneClient {
    http: reqwest::Client,
    signer: Signer,
}

impl DataPlaneClient {
    pub fn new(secret: SecretString) -> Result<Self, DataPlaneError> {
        let http = reqwest::Client::builder()
            .timeout(INITIALIZE_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| DataPlaneError::Unreachable {
                endpoint: String::new(),
                source,
            })?;
        Ok(Self {
            http,
            signer: Signer::new(secret)?,
        })
    }

    /// Asks the data plane at `endpoint` (its base URL) to create and migrate a space.
    pub async fn initialize(
        &self,
        endpoint: &str,
        request: &InitializeRequest,
    ) -> Result<InitializeResponse, DataPlaneError> {
        let url = format!("{}{INITIALIZE_PATH}", endpoint.trim_end_matches('/'));
        let body = serde_json::to_vec(request).expect("a request serialises");
        let timestamp = chrono::Utc::now().timestamp();
        let signature = self.signer.sign(timestamp, &body);
        let unreachable = |source| DataPlaneError::Unreachable {
            endpoint: endpoint.to_owned(),
            source,
        };
        let answer = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = answer.status();
        let text = answer.text().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| DataPlaneError::BadAnswer(e.to_string(), endpoint.to_owned()));
        }
        // Problem details carry the reason in `detail`; anything else is shown as it came.
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or(text);
        let (endpoint, status) = (endpoint.to_owned(), status.as_u16());
        Err(if status >= 500 || status == 429 {
            DataPlaneError::Failed {
                endpoint,
                status,
                message,
            }
        } else {
            DataPlaneError::Refused {
                endpoint,
                status,
                message,
            }
        })
    }
}
