//! The OpenAPI document, generated from the handlers and types, served at
//! `/api/openapi.json` and browsable at `/api/docs`.

use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::routes::{
    access_tokens, accounts, batch_operations, callout_participations, callouts, clients, contact_imports, contacts,
    content, groups, ops, phone_calls, providers, recordings, session, signups, template_attachments, transmissions,
    users, verifications, webhook_endpoints,
};

/// Query parameters every list endpoint takes.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query string; parsing is `sauti_core::filter`
pub struct ListParams {
    /// Filters: `q[metadata][key]=value`, operators `.in .any .lt .lteq .gt .gteq .exists`
    /// with `.date`/`.numeric` casts (`q[metadata][dob.date.gt]=2022-01-01`), nested keys
    /// (`q[metadata][address][city]=Nairobi`), `q[created_at_before]`, `q[created_at_after]`,
    /// `q[updated_at_before]`, `q[updated_at_after]`, and resource fields.
    #[param(rename = "q[...]", value_type = Option<String>)]
    q: Option<String>,
    /// Comma-separated columns, `-` for descending: `-id,created_at`.
    sort: Option<String>,
    /// 1-based page number.
    page: Option<u32>,
    /// Items per page: 25 by default, at most 100.
    per_page: Option<u32>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "sauti", description = "Self-hosted SMS, voice and email platform: the native API."),
    paths(
        accounts::show_current, accounts::update_current,
        accounts::index, accounts::create, accounts::show, accounts::update, accounts::destroy,
        users::index, users::create, users::show, users::update, users::destroy, users::create_event,
        access_tokens::index, access_tokens::create, access_tokens::show, access_tokens::update, access_tokens::destroy,
        session::authenticate, session::logout, session::current_user,
        contacts::index, contacts::create, contacts::upsert, contacts::show, contacts::update, contacts::destroy,
        groups::index, groups::create, groups::show, groups::update, groups::destroy,
        groups::contacts, groups::add_contacts, groups::link_contact, groups::unlink_contact,
        contact_imports::create, contact_imports::index, contact_imports::show,
        contact_imports::export_contacts, contact_imports::export_group, contact_imports::sample,
        clients::index, clients::create, clients::show, clients::update, clients::destroy, clients::contacts,
        clients::put_logo, clients::show_logo, clients::destroy_logo,
        providers::index, providers::create, providers::show, providers::update, providers::destroy,
        content::texts_index, content::texts_create, content::texts_show, content::texts_update, content::texts_destroy,
        content::templates_index, content::templates_create, content::templates_show, content::templates_update, content::templates_destroy,
        template_attachments::index, template_attachments::create, template_attachments::show,
        template_attachments::content, template_attachments::destroy,
        transmissions::index, transmissions::create, transmissions::show, transmissions::destroy,
        transmissions::create_event, transmissions::clone, transmissions::attempts, transmissions::results,
        webhook_endpoints::index, webhook_endpoints::create, webhook_endpoints::show, webhook_endpoints::update,
        webhook_endpoints::destroy, webhook_endpoints::deliveries, webhook_endpoints::delivery,
        webhook_endpoints::delivery_attempts, webhook_endpoints::replay,
        verifications::index, verifications::create, verifications::show, verifications::check_by_id,
        verifications::check_by_to, verifications::create_event,
        signups::index, signups::create, signups::show, signups::check, signups::put_documents,
        signups::show_document, signups::register, signups::own_document,
        callouts::index, callouts::create, callouts::show, callouts::update, callouts::destroy,
        callouts::create_event, callouts::statistics,
        callout_participations::index, callout_participations::of_callout, callout_participations::create,
        callout_participations::show, callout_participations::update, callout_participations::destroy,
        batch_operations::index, batch_operations::create, batch_operations::show, batch_operations::update,
        batch_operations::destroy, batch_operations::create_event,
        recordings::index, recordings::create, recordings::show, recordings::update, recordings::destroy,
        recordings::show_media, recordings::put_media,
        phone_calls::index, phone_calls::of_participation, phone_calls::of_callout, phone_calls::show,
        phone_calls::events_index, phone_calls::events_show, phone_calls::events_update,
        ops::healthz, ops::readyz, ops::metrics,
    ),
    components(schemas(crate::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Tenants"),
        (name = "users", description = "People who log in"),
        (name = "access_tokens", description = "API keys"),
        (name = "session", description = "Log in and out"),
        (name = "contacts", description = "The people an account reaches"),
        (name = "groups", description = "Named lists of contacts"),
        (name = "clients", description = "Organisations the account works with"),
        (name = "providers", description = "Routes to the outside: SMPP, Twilio-compatible, Kannel, SMTP, sandbox"),
        (name = "content", description = "SMS texts and email templates"),
        (name = "transmissions", description = "Messages, their attempts and results"),
        (name = "webhooks", description = "Signed outbound events"),
        (name = "verifications", description = "One-time codes"),
        (name = "signups", description = "Phone-verified customer sign-up"),
        (name = "callouts", description = "Campaigns (SCFM callouts), their participations and populations"),
        (name = "recordings", description = "Voice recordings played during calls"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The generated document as pretty JSON (what `docs/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

pub fn router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", ApiDoc::openapi()))
}
