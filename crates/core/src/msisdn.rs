//! Phone numbers (MSISDNs), parsed at the edge into E.164.

use std::fmt;

use phonenumber::{Mode, country};

/// A valid phone number in E.164 form (`+254712345678`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    #[error("can't be blank")]
    Blank,
    #[error("is not a valid phone number")]
    Invalid,
}

/// An ISO 3166 alpha-2 region for national numbers (`KE`), validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    pub fn parse(code: &str) -> Option<Region> {
        code.trim().to_ascii_uppercase().parse::<country::Id>().ok().map(Region)
    }
}

impl Msisdn {
    /// Parse what people type: `+254 712 345 678`, `00254712345678`, `254712345678`
    /// (SCFM's form: international digits without the plus) and, with a default region,
    /// national numbers such as `0712345678`. Only numbers libphonenumber's metadata calls
    /// valid are accepted.
    pub fn parse(input: &str, default_region: Option<Region>) -> Result<Msisdn, MsisdnError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MsisdnError::Blank);
        }
        if trimmed.len() > 40 || !trimmed.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
            return Err(MsisdnError::Invalid);
        }
        let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        let international = if trimmed.starts_with('+') {
            Some(format!("+{digits}"))
        } else {
            digits.strip_prefix("00").map(|rest| format!("+{rest}"))
        };
        if let Some(intl) = international {
            return valid(&intl, None).ok_or(MsisdnError::Invalid);
        }
        if let Some(region) = default_region
            && let Some(m) = valid(&digits, Some(region.0))
        {
            return Ok(m);
        }
        valid(&format!("+{digits}"), None).ok_or(MsisdnError::Invalid)
    }

    /// Trusted constructor for values read back from the store (already E.164).
    pub fn from_stored(e164: String) -> Msisdn {
        Msisdn(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn valid(s: &str, region: Option<country::Id>) -> Option<Msisdn> {
    let n = phonenumber::parse(region, s).ok()?;
    phonenumber::is_valid(&n).then(|| Msisdn(n.format().mode(Mode::E164).to_string()))
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ke() -> Option<Region> {
        Region::parse("KE")
    }

    #[test]
    fn normalises_the_usual_forms() {
        for (input, region) in [
            ("+254712345678", None),
            ("+254 712 345 678", None),
            ("00254712345678", None),
            ("254712345678", None),
            ("0712345678", ke()),
            ("254712345678", ke()),
            ("(0712) 345-678", ke()),
        ] {
            assert_eq!(
                Msisdn::parse(input, region).unwrap().as_str(),
                "+254712345678",
                "{input}"
            );
        }
        assert_eq!(Msisdn::parse("252662345999", None).unwrap().as_str(), "+252662345999");
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        assert_eq!(Msisdn::parse("  ", None), Err(MsisdnError::Blank));
        for bad in ["0712345678", "12", "+999123", "abc", "+2547123456789999", "254-7x"] {
            assert_eq!(Msisdn::parse(bad, None), Err(MsisdnError::Invalid), "{bad}");
        }
        assert!(Region::parse("ZZ").is_none());
        assert!(Region::parse("ke").is_some());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Msisdn::parse(&s, ke());
            let _ = Msisdn::parse(&s, None);
        }

        #[test]
        fn digit_strings_never_panic_and_round_trip(s in "[+0-9 ]{0,20}") {
            if let Ok(m) = Msisdn::parse(&s, ke()) {
                proptest::prop_assert_eq!(Msisdn::parse(m.as_str(), None), Ok(m.clone()));
            }
        }
    }
}
