//! Operator actions that bypass HTTP auth: used by `sauti accounts create` and by tests.

use sauti_core::{Permission, secret};
use sauti_store::{Account, NewAccessToken, NewAccount, Store, StoreResult, TokenKind};

/// A new account and its first access token (holding every permission).
pub struct BootstrappedAccount {
    pub account: Account,
    /// The token secret: shown once, stored only as a digest.
    pub access_token: String,
    pub access_token_id: i64,
}

/// Create an account (tenant) with an access token that holds every permission.
pub async fn create_account(store: &Store, name: &str, super_admin: bool) -> StoreResult<BootstrappedAccount> {
    let account = store
        .create_account(&NewAccount {
            name: name.to_string(),
            super_admin,
            settings: crate::routes::accounts::default_settings(),
            ..Default::default()
        })
        .await?;
    let access_token = secret::generate_token();
    let token = store
        .create_access_token(
            account.id,
            &NewAccessToken {
                digest: secret::token_digest(&access_token),
                user_id: None,
                kind: TokenKind::Api,
                permissions: Permission::ALL.iter().map(|p| p.as_str().to_string()).collect(),
                metadata: Default::default(),
                expires_at: None,
            },
        )
        .await?;
    Ok(BootstrappedAccount {
        account,
        access_token,
        access_token_id: token.id,
    })
}
