//! Phone numbers (MSISDNs), parsed at the edge into E.164.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, OnceLock};

use phonenumber::metadata::{DATABASE, Database, Descriptor, Metadata};
use phonenumber::{PhoneNumber, country};
use regex::Regex;

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
    let national = n.national().to_string();
    // E.164 is the country code and the national number, as the crate's E.164 formatter
    // writes it (which first picks a display format by regex, then ignores it).
    is_valid(&n, &national).then(|| Msisdn(format!("+{}{national}", n.country().code())))
}

/// `phonenumber::is_valid`, on the same metadata, with its patterns compiled once.
///
/// The crate looks every pattern up in one LRU cache behind one global mutex, a dozen
/// times per number: 5 of the 6.5 µs an import spent per phone number, and the rayon
/// threads parsing a CSV contended on the lock. The steps and their order are the
/// crate's (`validator::source_for`, then `number_type(..) != Unknown`);
/// `tests::agrees_with_the_crate` checks the two agree on every region's examples and
/// on numbers near them.
fn is_valid(n: &PhoneNumber, national: &str) -> bool {
    let db: &'static Database = &DATABASE;
    let code = n.country().code();
    let Some(regions) = db.region(&code) else {
        return false;
    };
    let meta = if let [only] = regions[..] {
        if only == "001" {
            db.by_code(&code).and_then(|m| m.into_iter().next())
        } else if only.parse::<country::Id>().is_ok() {
            db.by_id(only)
        } else {
            None
        }
    } else {
        // Regions sharing a code (+1, +7, +44 …): the first whose leading digits match,
        // or, for one without leading digits, the first that knows the number's type.
        regions.into_iter().find_map(|r| {
            let meta = db.by_id(r)?;
            let p = patterns(meta);
            let chosen = match &p.leading_digits {
                Some(leading) => leading.is_match(national),
                None => p.known_type(national),
            };
            (chosen && r.parse::<country::Id>().is_ok()).then_some(meta)
        })
    };
    meta.is_some_and(|m| patterns(m).known_type(national))
}

/// One descriptor's test: a listed length (when lengths are listed) and the pattern
/// matching from the first digit (the crate's `find(..).start() == 0`).
struct Pattern {
    lengths: Vec<u16>,
    regex: Regex,
}

impl Pattern {
    fn new(d: &Descriptor) -> Option<Pattern> {
        Some(Pattern {
            lengths: d.possible_length().to_vec(),
            regex: anchored(d.national_number().as_str())?,
        })
    }

    fn is_match(&self, value: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(value.len() as u16))) && self.regex.is_match(value)
    }
}

struct Patterns {
    leading_digits: Option<Regex>,
    general: Option<Pattern>,
    /// Every type `number_type` tries; which one matched does not matter here.
    types: Vec<Pattern>,
}

impl Patterns {
    fn known_type(&self, national: &str) -> bool {
        self.general.as_ref().is_some_and(|g| g.is_match(national)) && self.types.iter().any(|t| t.is_match(national))
    }
}

/// A metadata pattern as the crate compiles it (its patterns are laid out with
/// whitespace), matching only from the start of the text.
fn anchored(pattern: &str) -> Option<Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

/// Every region's metadata, the non-geographic ones included (`Database::iter` yields one
/// of those only, as they share the id `001`). Country codes have at most three digits.
fn all_metadata() -> impl Iterator<Item = &'static Metadata> {
    let db: &'static Database = &DATABASE;
    (1..1000u16).flat_map(|code| db.by_code(&code).unwrap_or_default())
}

/// The compiled patterns of a region, built on first use (a few hundred regions, most
/// never seen by one installation). Keyed by the metadata's address in the crate's static
/// database: the non-geographic codes (+800, +979 …) all have the id `001`.
fn patterns(meta: &'static Metadata) -> &'static Patterns {
    /// Slot of each metadata (by address), and the slots.
    type Slots = (HashMap<usize, usize>, Vec<OnceLock<Patterns>>);
    static INDEX: LazyLock<Slots> = LazyLock::new(|| {
        let index: HashMap<usize, usize> = all_metadata().enumerate().map(|(i, m)| (address(m), i)).collect();
        let slots = (0..index.len()).map(|_| OnceLock::new()).collect();
        (index, slots)
    });
    fn address(m: &Metadata) -> usize {
        std::ptr::from_ref(m) as usize
    }
    static UNKNOWN: Patterns = Patterns {
        leading_digits: None,
        general: None,
        types: Vec::new(),
    };
    let (index, slots) = &*INDEX;
    // Metadata from anywhere but the static database knows no valid number.
    let Some(slot) = index.get(&address(meta)).map(|&i| &slots[i]) else {
        return &UNKNOWN;
    };
    slot.get_or_init(|| {
        let d = meta.descriptors();
        Patterns {
            leading_digits: meta.leading_digits().and_then(|r| anchored(r.as_str())),
            general: Pattern::new(d.general()),
            types: [
                d.premium_rate(),
                d.toll_free(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
                d.fixed_line(),
                d.mobile(),
            ]
            .into_iter()
            .flatten()
            .filter_map(Pattern::new)
            .collect(),
        }
    })
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

    /// The compiled validity test gives the crate's answer: for every region's example
    /// numbers, and for numbers a digit longer, a digit shorter, and with each digit
    /// changed, in national and international form.
    #[test]
    fn agrees_with_the_crate() {
        let mut checked = 0;
        for meta in all_metadata() {
            let d = meta.descriptors();
            let examples = [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .filter_map(|d| d.example().map(str::to_string));
            for example in examples {
                let mut variants = vec![example.clone(), format!("{example}5"), example[1..].to_string()];
                for i in 0..example.len() {
                    for digit in ['0', '3', '7', '9'] {
                        let mut v = example.clone().into_bytes();
                        v[i] = digit as u8;
                        variants.push(String::from_utf8(v).unwrap());
                    }
                }
                for v in variants {
                    let international = format!("+{}{v}", meta.country_code());
                    let national_in = meta.id().parse::<country::Id>().ok().map(|r| (v.clone(), Some(r)));
                    for (input, region) in [(international, None)].into_iter().chain(national_in) {
                        let Ok(n) = phonenumber::parse(region, &input) else {
                            continue;
                        };
                        let national = n.national().to_string();
                        assert_eq!(
                            is_valid(&n, &national),
                            phonenumber::is_valid(&n),
                            "{input} ({region:?})"
                        );
                        if phonenumber::is_valid(&n) {
                            assert_eq!(
                                valid(&input, region).unwrap().as_str(),
                                n.format().mode(phonenumber::Mode::E164).to_string()
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
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
