//! The edge's HTTP client for its link to the hub: outbound HTTPS only, the edge's own client certificate
//! after enrolment, the hub's server certificate checked against the CA the department was given, batches
//! gzip-compressed, and a bandwidth cap that paces what is sent.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::link::protocol::{
    BatchAnswer, Definitions, EdgeReport, EnrolAnswer, EnrolRequest, LinkBatch, Positions,
    StatusAnswer,
};

/// Why a call to the hub failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The hub could not be reached or did not answer in time: try again later.
    #[error("the hub is unreachable: {0}")]
    Unreachable(String),
    /// The batch did not start where the hub's acknowledgement is: ask for the positions again.
    #[error("{0}")]
    Gap(String),
    /// The hub refused (a 4xx or 5xx other than a gap), with its message.
    #[error("the hub answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What the hub said.
        message: String,
    },
}

/// Paces sending to a byte rate: each send of `n` bytes books `n / rate` seconds of the link, and a send
/// waits until the link's booked time has passed.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_second: Option<u64>,
    free_at: Mutex<Instant>,
}

impl Pacer {
    /// A pacer at `bytes_per_second` (`None`: no cap).
    pub fn new(bytes_per_second: Option<u64>) -> Self {
        Self {
            bytes_per_second: bytes_per_second.filter(|r| *r > 0),
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `bytes` may be sent within the cap.
    pub async fn wait_for(&self, bytes: usize) {
        let Some(rate) = self.bytes_per_second else {
            return;
        };
        let start = {
            let mut free_at = self.free_at.lock().await;
            let start = (*free_at).max(Instant::now());
            *free_at = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }
}

/// The edge's client of one hub.
#[derive(Debug)]
pub struct LinkClient {
    http: reqwest::Client,
    base: String,
    compress: bool,
    pacer: Pacer,
}

/// The error body the hub answers with.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

impl LinkClient {
    /// A client of the hub at `base` (`https://host:port`), trusting the CA file `hub_ca` for the hub's certificate
    /// (the system's roots when `None`), presenting `identity_pem` (certificate then key) once enrolled.
    pub fn new(
        base: &str,
        hub_ca: Option<&std::path::Path>,
        identity_pem: Option<&[u8]>,
        compress: bool,
        bytes_per_second: Option<u64>,
    ) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = hub_ca {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = identity_pem {
            builder =
                builder
                    .identity(reqwest::Identity::from_pem(pem).map_err(|e| {
                        format!("the edge's certificate and key are unusable: {e}")
                    })?);
        }
        Ok(Self {
            http: builder.build().map_err(|e| e.to_string())?,
            base: base.trim_end_matches('/').to_owned(),
            compress,
            pacer: Pacer::new(bytes_per_second),
        })
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The underlying HTTP client (local deliveries pull through it).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, CallError> {
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| CallError::Unreachable(format!("the answer could not be read: {e}")));
        }
        let message = response
            .json::<ErrorBody>()
            .await
            .map(|b| b.message)
            .unwrap_or_default();
        if status == StatusCode::CONFLICT {
            return Err(CallError::Gap(message));
        }
        // The hub is busy or restarting (rate limit, overload, a proxy with no upstream): wait and try again.
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        ) {
            return Err(CallError::Unreachable(format!(
                "the hub answered {status}: {message}"
            )));
        }
        Err(CallError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    fn unreachable(e: reqwest::Error) -> CallError {
        CallError::Unreachable(e.to_string())
    }

    /// Enrols with a one-time code.
    pub async fn enrol(&self, request: &EnrolRequest) -> Result<EnrolAnswer, CallError> {
        let response = self
            .http
            .post(format!("{}/link/v1/enrol", self.base))
            .json(request)
            .send()
            .await
            .map_err(Self::unreachable)?;
        Self::answer(response).await
    }

    /// `GET path` as the edge (or member hub).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(Self::unreachable)?;
        Self::answer(response).await
    }

    /// The positions the hub acknowledged.
    pub async fn positions(&self) -> Result<Positions, CallError> {
        self.get("/link/v1/positions").await
    }

    /// Sends a batch (compressed when configured, paced to the cap) and returns the hub's acknowledgement and
    /// the bytes that went over the link.
    pub async fn send(&self, batch: &LinkBatch) -> Result<(BatchAnswer, usize), CallError> {
        self.post_paced("/link/v1/batches", batch).await
    }

    /// `POST path` with `body` as JSON, compressed when configured and paced to the bandwidth cap; returns the
    /// answer and the bytes that went over the link.
    pub async fn post_paced<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(T, usize), CallError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| CallError::Unreachable(format!("the body could not be encoded: {e}")))?;
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let body = if self.compress {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let compressed = encoder
                .write_all(&json)
                .and_then(|()| encoder.finish())
                .map_err(|e| CallError::Unreachable(format!("compressing the body: {e}")))?;
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            compressed
        } else {
            json
        };
        let sent = body.len();
        self.pacer.wait_for(sent).await;
        let response = request.body(body).send().await.map_err(Self::unreachable)?;
        Ok((Self::answer(response).await?, sent))
    }

    /// `POST path` with `body` as plain JSON.
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(Self::unreachable)?;
        Self::answer(response).await
    }

    /// Reports the edge's status; the answer lists the definitions the hub holds for it.
    pub async fn status(&self, report: &EdgeReport) -> Result<StatusAnswer, CallError> {
        self.post("/link/v1/status", report).await
    }

    /// Publishes a member hub's catalogue to its parent.
    pub async fn publish_catalogue(
        &self,
        catalogue: &crate::link::protocol::PublishedCatalogue,
    ) -> Result<crate::link::protocol::CatalogueReceipt, CallError> {
        self.post("/link/v1/catalogue", catalogue).await
    }

    /// The signed definitions the hub holds for the edge.
    pub async fn definitions(&self) -> Result<Definitions, CallError> {
        self.get("/link/v1/definitions").await
    }
}
