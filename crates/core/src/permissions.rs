//! Access-token permissions: SCFM's list, extended with sauti's later resources.

use serde::{Deserialize, Serialize};

macro_rules! permissions {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// One permission an access token may hold.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Permission {
            $(#[serde(rename = $name)] $variant,)+
        }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name,)+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Permission::$variant),)+ _ => None }
            }
        }
    };
}

permissions! {
    AccessTokensRead => "access_tokens_read",
    AccessTokensWrite => "access_tokens_write",
    AccountsRead => "accounts_read",
    AccountsWrite => "accounts_write",
    BatchOperationsRead => "batch_operations_read",
    BatchOperationsWrite => "batch_operations_write",
    CalloutParticipationsRead => "callout_participations_read",
    CalloutParticipationsWrite => "callout_participations_write",
    CalloutsRead => "callouts_read",
    CalloutsWrite => "callouts_write",
    ContactsRead => "contacts_read",
    ContactsWrite => "contacts_write",
    PhoneCallsRead => "phone_calls_read",
    PhoneCallsWrite => "phone_calls_write",
    RemotePhoneCallEventsRead => "remote_phone_call_events_read",
    RemotePhoneCallEventsWrite => "remote_phone_call_events_write",
    UsersRead => "users_read",
    UsersWrite => "users_write",
    // sauti's resources beyond SCFM.
    GroupsRead => "groups_read",
    GroupsWrite => "groups_write",
    ClientsRead => "clients_read",
    ClientsWrite => "clients_write",
    ContactImportsRead => "contact_imports_read",
    ContactImportsWrite => "contact_imports_write",
    TransmissionsRead => "transmissions_read",
    TransmissionsWrite => "transmissions_write",
    ProvidersRead => "providers_read",
    ProvidersWrite => "providers_write",
    WebhookEndpointsRead => "webhook_endpoints_read",
    WebhookEndpointsWrite => "webhook_endpoints_write",
    VerificationsRead => "verifications_read",
    VerificationsWrite => "verifications_write",
    TextsRead => "texts_read",
    TextsWrite => "texts_write",
    TemplatesRead => "templates_read",
    TemplatesWrite => "templates_write",
    SignupsRead => "signups_read",
    SignupsWrite => "signups_write",
    RecordingsRead => "recordings_read",
    RecordingsWrite => "recordings_write",
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse a list of permission names; unknown names are returned as the error.
pub fn parse_list(names: &[String]) -> Result<Vec<Permission>, Vec<String>> {
    let mut ok = Vec::with_capacity(names.len());
    let mut bad = Vec::new();
    for n in names {
        match Permission::parse(n) {
            Some(p) if !ok.contains(&p) => ok.push(p),
            Some(_) => {}
            None => bad.push(n.clone()),
        }
    }
    if bad.is_empty() {
        ok.sort();
        Ok(ok)
    } else {
        Err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
        }
        assert_eq!(parse_list(&["nope".into()]), Err(vec!["nope".to_string()]));
    }
}
