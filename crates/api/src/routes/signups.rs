//! `/api/signups`: phone-verified sign-up, the Nunua flow on the native API. A tenant's
//! app (with a `signups_*` token) starts a sign-up for a phone (a code is sent), checks
//! the code, uploads the customer's photo and ID, and registers the customer as a user
//! of the account, who then logs in with `POST /api/authenticate` and reads their profile
//! at `GET /api/user`.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use sauti_core::{ValidationErrors, secret};
use sauti_store::signups::DOCUMENTS;
use sauti_store::{CheckTarget, NewUser, Registered, Registration, Signup, StoreError};
use serde::Deserialize;
use serde_json::Value;

use super::clients::{MULTIPART_SLACK, NOT_AN_IMAGE, blob_image, discard_blob, multipart_error, read_capped};
use super::created;
use super::verifications::{self, VerificationInput, normalize_to};
use crate::auth::{AnyToken, Authed, SignupsRead, SignupsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientIp, Id, JsonBody, RawQuery};
use crate::image::ImageType;
use crate::pagination::list_response;
use crate::{ApiConfig, AppState};
use sauti_store::blobs::Blobs;

pub const SPEC: sauti_core::filter::ResourceSpec = sauti_core::filter::ResourceSpec {
    sortable: &["id", "created_at", "updated_at", "status"],
    fields: &[
        sauti_core::filter::FieldSpec {
            name: "status",
            column: "status",
            kind: sauti_core::filter::FieldKind::Text,
        },
        sauti_core::filter::FieldSpec {
            name: "phone",
            column: "phone",
            kind: sauti_core::filter::FieldKind::Text,
        },
    ],
    has_metadata: false,
};

/// The largest body of `PUT /api/signups/{id}/documents`: three images.
pub(crate) fn documents_body_limit(config: &ApiConfig) -> usize {
    usize::try_from(config.logo_limit_bytes)
        .unwrap_or(usize::MAX)
        .saturating_mul(3)
        .saturating_add(MULTIPART_SLACK)
}

fn location(id: i64) -> String {
    format!("/api/signups/{id}")
}

fn body(s: &Signup) -> Value {
    s.to_json(&format!("/api/signups/{}/documents", s.id))
}

async fn find(st: &AppState, account_id: i64, id: i64) -> ApiResult<Signup> {
    st.store.get_signup(account_id, id).await?.ok_or(ApiError::NotFound)
}

/// Body of `POST /api/signups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupInput {
    /// The customer's phone number (E.164, or national in the account's `default_country`).
    pub phone: Option<String>,
    /// Language of the code message (default en).
    pub locale: Option<String>,
}

/// Body of `POST /api/signups/{id}/verification_checks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupCheck {
    #[schema(value_type = String)]
    pub code: Option<Value>,
}

/// Body of `POST /api/signups/{id}/registration`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationInput {
    pub email: Option<String>,
    /// 8 to 128 characters; the customer logs in with it.
    pub password: Option<String>,
    pub name: Option<String>,
    /// The national ID number.
    pub id_number: Option<String>,
    /// Date of birth, `YYYY-MM-DD`.
    pub dob: Option<String>,
}

/// Start a sign-up: a code is sent to the phone. 409 when the phone is already
/// registered; starting again for a phone mid-way sends a code again (the same one
/// while it is valid).
#[utoipa::path(post, path = "/api/signups", operation_id = "signups_create", tag = "signups", security(("bearer" = [])), request_body = SignupInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    (status = 429, body = crate::ErrorBody, headers(("Retry-After" = u64))),
))]
pub async fn create(
    auth: Authed<SignupsWrite>,
    State(st): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(input): JsonBody<SignupInput>,
) -> ApiResult<Response> {
    let account = st.store.get_account(auth.account_id).await?.ok_or(ApiError::NotFound)?;
    let mut errors = ValidationErrors::new();
    let phone = match input.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => normalize_to("sms", raw, &account, "phone", &mut errors),
        None => {
            errors.add("phone", "can't be blank");
            String::new()
        }
    };
    errors.into_result()?;
    if st.store.phone_registered(auth.account_id, &phone).await? {
        return Err(ApiError::Conflict("phone has already been registered".into()));
    }
    let verification = VerificationInput {
        to: Some(phone.clone()),
        channel: Some("sms".into()),
        locale: input.locale,
        ..Default::default()
    };
    let (v, _) = verifications::start(&st, auth.account_id, verification, ip)
        .await
        .map_err(|e| rename_field(e, "to", "phone"))?;
    let now = st.config.clock.now();
    let signup = st
        .store
        .begin_signup(auth.account_id, &phone, v.id, now)
        .await?
        .ok_or_else(|| ApiError::Conflict("phone has already been registered".into()))?;
    Ok(created(location(signup.id), body(&signup)))
}

/// Errors of the verification core name its fields; a sign-up calls `to` the phone.
fn rename_field(e: ApiError, from: &str, to: &str) -> ApiError {
    match e {
        ApiError::Validation(mut v) => {
            if let Some(m) = v.0.remove(from) {
                v.0.insert(to.to_string(), m);
            }
            ApiError::Validation(v)
        }
        other => other,
    }
}

/// List sign-ups.
#[utoipa::path(get, path = "/api/signups", operation_id = "signups_index", tag = "signups", security(("bearer" = [])), params(crate::openapi::ListParams), responses(
    (status = 200, body = Vec<Object>, headers(("Per-Page" = u32), ("Total" = u64), ("Link" = String))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
))]
pub async fn index(
    auth: Authed<SignupsRead>,
    State(st): State<AppState>,
    uri: Uri,
    raw: RawQuery,
) -> ApiResult<Response> {
    let q = raw.list_query(&SPEC)?;
    let page = st.store.list_signups(auth.account_id, &q).await?;
    Ok(list_response(&uri, &raw.0, &q, page.map(|s| body(&s))))
}

/// Retrieve a sign-up.
#[utoipa::path(get, path = "/api/signups/{id}", operation_id = "signups_show", tag = "signups", security(("bearer" = [])), params(("id" = i64, Path)), responses(
    (status = 200, body = Object), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show(auth: Authed<SignupsRead>, State(st): State<AppState>, Id(id): Id) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(body(&find(&st, auth.account_id, id).await?)))
}

/// Check the code sent to the phone: 200 with the sign-up `verified`; 422 for a wrong
/// code; 429 when no checks are left; 404 when the code expired (start again).
#[utoipa::path(post, path = "/api/signups/{id}/verification_checks", operation_id = "signups_check", tag = "signups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = SignupCheck, responses(
    (status = 200, body = Object),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody), (status = 422, body = crate::ErrorBody),
    (status = 429, body = crate::ErrorBody, headers(("Retry-After" = u64))),
))]
pub async fn check(
    auth: Authed<SignupsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<SignupCheck>,
) -> ApiResult<Response> {
    let signup = find(&st, auth.account_id, id).await?;
    if signup.status != sauti_store::signups::signup_status::PENDING_VERIFICATION {
        return Err(ApiError::validation("phone", "is already verified"));
    }
    let verification_id = signup.verification_id.ok_or(ApiError::NotFound)?;
    verifications::check(&st, auth.account_id, CheckTarget::Id(verification_id), input.code).await?;
    let now = st.config.clock.now();
    let signup = match st.store.mark_signup_verified(auth.account_id, id, now).await? {
        Some(s) => s,
        // Verified by a parallel check a moment ago.
        None => find(&st, auth.account_id, id).await?,
    };
    Ok((StatusCode::OK, axum::Json(body(&signup))).into_response())
}

/// The `multipart/form-data` body of `PUT /api/signups/{id}/documents`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it with `Multipart`
pub struct DocumentsForm {
    /// The customer's photo: PNG, JPEG, GIF or WebP, recognised by content.
    #[schema(value_type = String, format = Binary)]
    photo: Vec<u8>,
    /// The front of the customer's ID.
    #[schema(value_type = String, format = Binary)]
    id_front: Vec<u8>,
    /// The back of the customer's ID.
    #[schema(value_type = String, format = Binary)]
    id_back: Vec<u8>,
}

/// Upload the customer's photo and ID (front and back), all three at once, after the
/// phone is verified (422 before). Each image at most the logo limit (2 MiB by default).
#[utoipa::path(put, path = "/api/signups/{id}/documents", operation_id = "signups_put_documents", tag = "signups", security(("bearer" = [])), params(("id" = i64, Path)), request_body(content = DocumentsForm, content_type = "multipart/form-data"), responses(
    (status = 200, body = Object),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 413, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn put_documents(
    auth: Authed<SignupsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    req: Request,
) -> ApiResult<Response> {
    // The body is read before the sign-up is looked at: answering while the client is
    // still uploading makes many clients fail on a broken pipe instead of reading the
    // answer. The route's body limit bounds what this costs.
    let is_multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::WrongMediaType(
            "Content-Type must be multipart/form-data with photo, id_front and id_back parts",
        ));
    }
    let mut multipart = Multipart::from_request(req, &st)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = st.config.logo_limit_bytes;
    let mut images: [Option<(ImageType, Vec<u8>)>; 3] = [None, None, None];
    let mut errors = ValidationErrors::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let Some(slot) = field.name().and_then(|n| DOCUMENTS.iter().position(|d| *d == n)) else {
            continue;
        };
        let bytes = read_capped(field, limit, multipart_error).await?;
        match ImageType::sniff(&bytes) {
            Some(kind) => images[slot] = Some((kind, bytes)),
            None if bytes.is_empty() => errors.add(DOCUMENTS[slot], "can't be blank"),
            None => errors.add(DOCUMENTS[slot], NOT_AN_IMAGE),
        }
    }
    for (slot, name) in DOCUMENTS.iter().enumerate() {
        if images[slot].is_none() && !errors.0.contains_key(*name) {
            errors.add(*name, "can't be blank");
        }
    }
    let signup = find(&st, auth.account_id, id).await?;
    if signup.status != sauti_store::signups::signup_status::VERIFIED {
        return Err(ApiError::validation(
            "phone",
            if signup.status == "registered" {
                "is already registered"
            } else {
                "is not verified"
            },
        ));
    }
    errors.into_result()?;

    let blobs = Blobs::new(&st.config.data_dir);
    let mut names = Vec::with_capacity(3);
    for (kind, bytes) in images.iter().flatten() {
        match blobs.write(auth.account_id, kind.ext(), bytes).await {
            Ok(n) => names.push(n),
            Err(e) => {
                for n in &names {
                    discard_blob(&st, auth.account_id, n).await;
                }
                return Err(ApiError::Internal(format!("storing a document: {e}")));
            }
        }
    }
    let now = st.config.clock.now();
    let written = st
        .store
        .set_signup_documents(auth.account_id, id, [&names[0], &names[1], &names[2]], now)
        .await;
    match written {
        Ok(Some((signup, replaced))) => {
            for n in replaced {
                discard_blob(&st, auth.account_id, &n).await;
            }
            Ok((StatusCode::OK, axum::Json(body(&signup))).into_response())
        }
        other => {
            // Registered meanwhile, or the write failed: nothing points at the new files.
            for n in &names {
                discard_blob(&st, auth.account_id, n).await;
            }
            match other {
                Err(e) => Err(e.into()),
                _ => Err(ApiError::validation("phone", "is no longer awaiting documents")),
            }
        }
    }
}

/// One uploaded document of a sign-up (`photo`, `id_front` or `id_back`).
#[utoipa::path(get, path = "/api/signups/{id}/documents/{kind}", operation_id = "signups_show_document", tag = "signups", security(("bearer" = [])), params(("id" = i64, Path), ("kind" = String, Path)), responses(
    (status = 200, description = "The image", content(("image/png"), ("image/jpeg"), ("image/gif"), ("image/webp"))),
    (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn show_document(
    auth: Authed<SignupsRead>,
    State(st): State<AppState>,
    axum::extract::Path((id, kind)): axum::extract::Path<(String, String)>,
) -> ApiResult<Response> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound)?;
    let signup = find(&st, auth.account_id, id).await?;
    let name = signup.document(&kind).ok_or(ApiError::NotFound)?;
    blob_image(&st, auth.account_id, name).await
}

/// The caller's own document, when the caller is a registered customer.
#[utoipa::path(get, path = "/api/user/documents/{kind}", operation_id = "session_show_document", tag = "session", security(("bearer" = [])), params(("kind" = String, Path)), responses(
    (status = 200, description = "The image", content(("image/png"), ("image/jpeg"), ("image/gif"), ("image/webp"))),
    (status = 401, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody),
))]
pub async fn own_document(
    auth: Authed<AnyToken>,
    State(st): State<AppState>,
    axum::extract::Path(kind): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let user_id = auth.user_id.ok_or(ApiError::NotFound)?;
    let signup = st
        .store
        .signup_of_user(auth.account_id, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let name = signup.document(&kind).ok_or(ApiError::NotFound)?;
    blob_image(&st, auth.account_id, name).await
}

/// A user as the API shows it; a customer who signed up also has `phone`,
/// `phone_verified_at` and the `customer` profile (documents at `/api/user/documents`).
pub(crate) fn user_json(user: sauti_store::User, signup: Option<&Signup>) -> ApiResult<Value> {
    let mut v =
        serde_json::to_value(super::users::UserBody::from(user)).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(s) = signup {
        let profile = s.to_json("/api/user/documents");
        v["phone"] = profile["phone"].clone();
        v["phone_verified_at"] = profile["phone_verified_at"].clone();
        v["customer"] = profile;
    }
    Ok(v)
}

fn check_dob(raw: &str, today: NaiveDate, errors: &mut ValidationErrors) -> String {
    match NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        Ok(d) if d > today => {
            errors.add("dob", "must be in the past");
            String::new()
        }
        Ok(d) if d.year() < 1900 => {
            errors.add("dob", "must be after 1900");
            String::new()
        }
        Ok(d) => d.format("%Y-%m-%d").to_string(),
        Err(_) => {
            errors.add("dob", "must be a date (YYYY-MM-DD)");
            String::new()
        }
    }
}

/// Register the customer: a user of the account (no API permissions; they log in with
/// e-mail and password) tied to the verified phone and its documents. 422 when the phone
/// is not verified or the documents are missing; 409 when the phone or e-mail is taken.
#[utoipa::path(post, path = "/api/signups/{id}/registration", operation_id = "signups_register", tag = "signups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = RegistrationInput, responses(
    (status = 201, body = Object, headers(("Location" = String))),
    (status = 400, body = crate::ErrorBody), (status = 401, body = crate::ErrorBody), (status = 403, body = crate::ErrorBody),
    (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody), (status = 415, body = crate::ErrorBody),
    (status = 422, body = crate::ErrorBody),
))]
pub async fn register(
    auth: Authed<SignupsWrite>,
    State(st): State<AppState>,
    Id(id): Id,
    JsonBody(input): JsonBody<RegistrationInput>,
) -> ApiResult<Response> {
    let signup = find(&st, auth.account_id, id).await?;
    let mut errors = ValidationErrors::new();
    let email = input
        .email
        .as_deref()
        .map(super::users::normalize_email)
        .unwrap_or_default();
    if email.is_empty() {
        errors.add("email", "can't be blank");
    } else {
        super::users::check_email(&email, &mut errors);
    }
    let password = input.password.unwrap_or_default();
    super::users::check_password(&password, &mut errors);
    let name = input.name.as_deref().map(str::trim).unwrap_or("").to_string();
    if name.is_empty() || name.chars().count() > 200 {
        errors.add("name", "must be 1 to 200 characters");
    }
    let id_number = input.id_number.as_deref().map(str::trim).unwrap_or("").to_string();
    if !(4..=20).contains(&id_number.len()) || !id_number.chars().all(|c| c.is_ascii_alphanumeric()) {
        errors.add("id_number", "must be 4 to 20 letters or digits");
    }
    let dob = match input.dob.as_deref() {
        Some(d) => check_dob(d, st.config.clock.now().date_naive(), &mut errors),
        None => {
            errors.add("dob", "can't be blank");
            String::new()
        }
    };
    match signup.status.as_str() {
        "pending_verification" => errors.add("phone", "is not verified"),
        "registered" => return Err(ApiError::Conflict("phone has already been registered".into())),
        _ if !signup.has_documents() => errors.add("documents", "photo, id_front and id_back must be uploaded first"),
        _ => {}
    }
    errors.into_result()?;
    let password_hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let registration = Registration {
        user: NewUser {
            email,
            password_hash,
            locale: "en".into(),
            permissions: vec![],
            metadata: Default::default(),
        },
        name,
        id_number,
        dob,
    };
    let now = st.config.clock.now();
    match st.store.register_signup(auth.account_id, id, &registration, now).await {
        Ok(Registered::Done(done)) => {
            let (user, signup) = *done;
            Ok(created(location(signup.id), user_json(user, Some(&signup))?))
        }
        Ok(Registered::NotReady(s)) if s.status == "registered" => {
            Err(ApiError::Conflict("phone has already been registered".into()))
        }
        Ok(Registered::NotReady(_)) => Err(ApiError::validation("phone", "is not verified")),
        Ok(Registered::NotFound) => Err(ApiError::NotFound),
        Err(StoreError::Conflict { field }) => Err(ApiError::Conflict(format!("{field} has already been taken"))),
        Err(e) => Err(e.into()),
    }
}
