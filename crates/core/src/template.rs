//! Personalisation: `{{first_name}}`, `{{metadata.key}}` (nested: `{{metadata.a.b}}`)
//! replaced with the contact's values. A placeholder with no value renders empty; text
//! that is not a complete `{{…}}` placeholder is left as it is.

/// Render `text`, asking `lookup` for each placeholder's value (the name is trimmed:
/// `{{ first_name }}` works). With `html`, values are escaped for HTML.
pub fn render(text: &str, html: bool, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else { break };
        let name = rest[start + 2..start + 2 + len].trim();
        // `{{` inside the name means the first `{{` was literal text.
        if name.contains("{{") || name.is_empty() {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let value = lookup(name).unwrap_or_default();
        if html {
            out.push_str(&escape_html(&value));
        } else {
            out.push_str(&value);
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds any placeholder.
pub fn has_placeholders(text: &str) -> bool {
    text.find("{{").is_some_and(|i| text[i..].contains("}}"))
}

/// A value from a JSON object by a dotted path (`a.b`), as text.
pub fn json_path(object: &serde_json::Map<String, serde_json::Value>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut v = object.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "first_name" => Some("Kate".into()),
            "metadata.city" => Some("<Nairobi>".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_known_and_blanks_unknown() {
        assert_eq!(
            render("Hi {{first_name}}, {{ metadata.city }}!", false, vars),
            "Hi Kate, <Nairobi>!"
        );
        assert_eq!(render("Hi {{nope}}.", false, vars), "Hi .");
        assert_eq!(render("{{metadata.city}}", true, vars), "&lt;Nairobi&gt;");
    }

    #[test]
    fn leaves_incomplete_braces() {
        assert_eq!(render("a {{ b", false, vars), "a {{ b");
        assert_eq!(render("{{}} {{{{first_name}}", false, vars), "{{}} {{Kate");
        assert!(!has_placeholders("a {{ b"));
        assert!(has_placeholders("{{x}}"));
    }

    #[test]
    fn reads_nested_json() {
        let m = serde_json::json!({"a": {"b": 3}, "s": "x"});
        let m = m.as_object().unwrap();
        assert_eq!(json_path(m, "a.b").as_deref(), Some("3"));
        assert_eq!(json_path(m, "s").as_deref(), Some("x"));
        assert_eq!(json_path(m, "a.c"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = render(&text, true, vars);
        }
    }
}
