//! E-mail address validation (syntax only; deliverability is the provider's business).

/// A pragmatic check: one `@`, a non-empty local part without spaces, and a domain with a
/// dot whose labels are non-empty. RFC 5322 allows far more, but no sender accepts it.
pub fn is_valid(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn accepts_ordinary_addresses() {
        assert!(is_valid("user22@example.com"));
        assert!(is_valid("first.last+tag@sub.example.co.ke"));
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a b@example.com",
            "a@-x.com",
            "a@x..com",
        ] {
            assert!(!is_valid(bad), "{bad} should be invalid");
        }
    }
}
