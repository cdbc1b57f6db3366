//! The HTTP side of the cascade (级联, 回流): the linked hubs' catalogues and requests for their resources
//! (`/admin/hubs/…`), the parent link's state (`/admin/parent`), and what a member hub exchanges with its
//! parent about requests and records (`/link/v1/requests…`, `/link/v1/deliveries…`), all in the OpenAPI
//! document. The `/link/v1/…` routes here answer only an enrolled member hub presenting its certificate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cascade::{
    DeliveryAck, DeliveryQuery, DeliveryReceipt, LinkedDelivery, LinkedRequests, PARENT,
};
use super::parent::ParentLink;
use super::protocol::PublishedCatalogue;
use super::routes::{batch_of, edge_of, ok};
use super::{LinkedCatalogue, Links, NodeKind};
use crate::admin::bodies::SubscriptionRequested;
use crate::api_error::{ApiError, JsonRequest};
use crate::audit::EntryRef;
use crate::auth::Principal;
use crate::governance::{Governance, LinkedRequest, LinkedRequestState, SubscriptionRequest};

/// What the cascade's routes work on.
#[derive(Clone)]
pub struct CascadeState {
    /// The links.
    pub links: Arc<Links>,
    /// The control plane's operations.
    pub governance: Arc<Governance>,
}

type Shared = State<CascadeState>;
type ApiResult = Result<axum::response::Response, ApiError>;

/// The operators' and agencies' routes (behind the access layer and the role matrix).
pub fn admin_router(state: CascadeState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(linked_catalogues))
        .routes(routes!(request_from_linked_hub))
        .routes(routes!(parent_link))
        .with_state(state)
}

/// A member hub's routes at its parent (behind the access layer and the role matrix).
pub fn link_router(state: CascadeState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(parent_catalogue))
        .routes(routes!(requests, file_request))
        .routes(routes!(request_state))
        .routes(routes!(take_delivery))
        .routes(routes!(fetch_delivery))
        .routes(routes!(acknowledge_delivery))
        .with_state(state)
}

/// The enrolled member hub calling, or 403 (an edge node has no business here).
fn member_of(links: &Links, who: &Principal) -> Result<String, ApiError> {
    let id = edge_of(who)?;
    if links.read().edges.get(id).map(|e| e.kind) != Some(NodeKind::MemberHub) {
        return Err(ApiError::Forbidden(
            "this is for an enrolled member hub (级联)".into(),
        ));
    }
    Ok(id.to_owned())
}

/// The catalogues of the linked hubs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkedCatalogues {
    /// Each linked hub's: the member hubs' as they published them, the parent's as this hub fetched it.
    pub hubs: Vec<LinkedCatalogue>,
}

#[utoipa::path(get, path = "/admin/hubs/catalogue", tag = "edges",
    responses((status = 200, description = "The resource catalogues of the linked hubs (级联): members' and the parent's", body = LinkedCatalogues), crate::api_error::ApiFailure))]
async fn linked_catalogues(State(s): Shared, who: Principal) -> ApiResult {
    ok(LinkedCatalogues {
        hubs: s.links.linked_catalogues(&who)?,
    })
}

#[utoipa::path(post, path = "/admin/hubs/{hub}/subscriptions", tag = "edges",
    params(("hub" = String, Path, description = "The linked hub that holds the data: a member hub's node id, or `parent`")),
    request_body = SubscriptionRequest,
    responses((status = 201, description = "The request, filed here and sent to the hub that holds the data, which decides it", body = SubscriptionRequested), crate::api_error::ApiFailure))]
async fn request_from_linked_hub(
    State(s): Shared,
    who: Principal,
    Path(hub): Path<String>,
    JsonRequest(body): JsonRequest<SubscriptionRequest>,
) -> ApiResult {
    let (filed, webhook_key) = request_from(&s.links, &s.governance, &who, &hub, body).await?;
    let note = webhook_key.as_ref().map(|_| {
        "the webhook signing key is shown only now; verify X-Unsilo-Signature with it".to_owned()
    });
    Ok((
        StatusCode::CREATED,
        Json(SubscriptionRequested {
            subscription: filed.redacted(),
            webhook_signing_key: webhook_key.map(hex::encode),
            note,
        }),
    )
        .into_response())
}

/// Files `who`'s request for data the linked hub `hub` holds (a member hub enrolled here, or [`PARENT`]),
/// against the entry `hub` published for the schema; the API and the portal both file through it.
pub async fn request_from(
    links: &Links,
    governance: &Governance,
    who: &Principal,
    hub: &str,
    body: SubscriptionRequest,
) -> Result<(unsilo_policy::model::Subscription, Option<Vec<u8>>), ApiError> {
    let known = if hub == PARENT {
        links.parent_link().is_some()
    } else {
        links.read().edges.get(hub).is_some_and(|e| {
            e.kind == NodeKind::MemberHub
                && e.revoked_at_ms.is_none()
                && e.certificate_sha256.is_some()
        })
    };
    if !known {
        return Err(ApiError::NotFound(format!(
            "linked hub `{hub}` (a member hub enrolled here, or `parent` when this hub has one)"
        )));
    }
    let entry = links.linked_entry(hub, &body.spec.schema).ok_or_else(|| {
        ApiError::Invalid(format!(
            "hub `{hub}` has published no catalogue entry for schema `{}`; only catalogued resources are shared",
            body.spec.schema
        ))
    })?;
    governance.request_held_at(who, hub, &entry, body).await
}

#[utoipa::path(get, path = "/admin/parent", tag = "edges",
    responses((status = 200, description = "This hub's link to its parent hub (级联), as last seen", body = ParentLink), crate::api_error::ApiFailure))]
async fn parent_link(State(s): Shared, who: Principal) -> ApiResult {
    crate::governance::authorize(&who, crate::roles::Action::ViewEdges)?;
    match super::parent::parent_link_now(&s.links, &s.governance) {
        Some(p) => ok(p),
        None => Err(ApiError::NotFound(
            "a parent link: this hub has no [parent]".into(),
        )),
    }
}

#[utoipa::path(get, path = "/link/v1/catalogue", tag = "link",
    responses((status = 200, description = "The parent's own resource catalogue, for its member hubs' agencies to request from (回流)", body = PublishedCatalogue), crate::api_error::ApiFailure))]
async fn parent_catalogue(State(s): Shared, who: Principal) -> ApiResult {
    member_of(&s.links, &who)?;
    let entries = s
        .governance
        .catalogue(&Principal::Hub, None)?
        .into_iter()
        .map(|v| v.entry)
        .collect();
    ok(PublishedCatalogue { entries })
}

#[utoipa::path(get, path = "/link/v1/requests", tag = "link",
    responses((status = 200, description = "The parent's agencies' requests for the member's data, and where the member's requests for the parent's data stand", body = LinkedRequests), crate::api_error::ApiFailure))]
async fn requests(State(s): Shared, who: Principal) -> ApiResult {
    let member = member_of(&s.links, &who)?;
    ok(LinkedRequests {
        asked: s.governance.linked_requests(&member),
        states: s.governance.linked_states(&member),
    })
}

#[utoipa::path(post, path = "/link/v1/requests", tag = "link", request_body = LinkedRequest,
    responses((status = 200, description = "A member's agency's request for the parent's data (回流), filed at the parent and decided there; where it stands", body = LinkedRequestState), crate::api_error::ApiFailure))]
async fn file_request(
    State(s): Shared,
    who: Principal,
    JsonRequest(body): JsonRequest<LinkedRequest>,
) -> ApiResult {
    let member = member_of(&s.links, &who)?;
    ok(s.governance
        .take_linked_request(&member, &member, body)
        .await?)
}

#[utoipa::path(post, path = "/link/v1/requests/state", tag = "link", request_body = LinkedRequestState,
    responses((status = 200, description = "The member's decision on a parent's request is followed at the parent", body = Followed), crate::api_error::ApiFailure))]
async fn request_state(
    State(s): Shared,
    who: Principal,
    JsonRequest(body): JsonRequest<LinkedRequestState>,
) -> ApiResult {
    let member = member_of(&s.links, &who)?;
    let subscription = body.subscription.clone();
    s.governance.apply_linked_state(&member, body).await?;
    ok(Followed { subscription })
}

/// A decision followed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Followed {
    /// The subscription (the parent's id).
    pub subscription: String,
}

#[utoipa::path(post, path = "/link/v1/deliveries", tag = "link",
    request_body(content = LinkedDelivery, description = "Records the member released to a parent's request, in offset order; may be gzip-compressed"),
    responses((status = 200, description = "What the parent made durable, and its receipt entry", body = DeliveryReceipt), crate::api_error::ApiFailure))]
async fn take_delivery(
    State(s): Shared,
    who: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let member = member_of(&s.links, &who)?;
    let delivery: LinkedDelivery = batch_of(&headers, &body)?;
    ok(s.links
        .accept_delivery(&s.governance, &member, delivery)
        .await?)
}

/// The parent's subscription for `member`'s request `subscription`, or 404.
fn held_for(
    s: &CascadeState,
    member: &str,
    subscription: &str,
) -> Result<unsilo_policy::model::Subscription, ApiError> {
    s.governance
        .held_for_request(member, subscription)
        .ok_or_else(|| ApiError::NotFound(format!("a request `{subscription}` of {member} here")))
}

#[utoipa::path(get, path = "/link/v1/deliveries/{subscription}", tag = "link",
    params(("subscription" = String, Path, description = "The subscription's id at the member"), DeliveryQuery),
    responses((status = 200, description = "Records the parent released to the member's request (回流), from the member's position; the parent's send entry names them", body = LinkedDelivery), crate::api_error::ApiFailure))]
async fn fetch_delivery(
    State(s): Shared,
    who: Principal,
    Path(subscription): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult {
    let member = member_of(&s.links, &who)?;
    let held = held_for(&s, &member, &subscription)?;
    ok(s.links
        .outgoing(&member, &subscription, &held, q.partition, q.from)
        .await?)
}

/// The parent's acknowledgement entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Acknowledged {
    /// The parent's `link.acknowledged` entry, naming the member's receipt.
    pub entry: EntryRef,
}

#[utoipa::path(post, path = "/link/v1/deliveries/ack", tag = "link", request_body = DeliveryAck,
    responses((status = 200, description = "The parent's entry naming the member's receipt", body = Acknowledged), crate::api_error::ApiFailure))]
async fn acknowledge_delivery(
    State(s): Shared,
    who: Principal,
    JsonRequest(ack): JsonRequest<DeliveryAck>,
) -> ApiResult {
    let member = member_of(&s.links, &who)?;
    let held = held_for(&s, &member, &ack.subscription)?;
    let entry = s
        .links
        .record_acknowledged(
            &member,
            &held.id,
            &ack.release,
            &ack.receipt,
            ack.next_offset,
        )
        .await?;
    ok(Acknowledged { entry })
}
