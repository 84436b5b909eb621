//! Text normalization shared by the embed-time builders and the stream: merchant-name
//! title-casing and the anchor normalizers for phone numbers, addresses and URLs
//! (seed-system §3.2, §3.3, §3.7).

/// Characters Python's `str.title()` maps to a two-character title case.
fn special_title(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "Ss",
        'ﬀ' => "Ff",
        'ﬁ' => "Fi",
        'ﬂ' => "Fl",
        'ﬃ' => "Ffi",
        'ﬄ' => "Ffl",
        'ﬅ' | 'ﬆ' => "St",
        'Ǆ' | 'ǅ' | 'ǆ' => "ǅ",
        'Ǉ' | 'ǈ' | 'ǉ' => "ǈ",
        'Ǌ' | 'ǋ' | 'ǌ' => "ǋ",
        'Ǳ' | 'ǲ' | 'ǳ' => "ǲ",
        _ => return None,
    })
}

fn is_cased(c: char) -> bool {
    // Unicode "Cased": upper, lower, or one of the four title-case digraphs.
    c.is_uppercase() || c.is_lowercase() || matches!(c, 'ǅ' | 'ǈ' | 'ǋ' | 'ǲ')
}

/// Python's `str.title()`: a character that follows a cased character is lower-cased, any
/// other is title-cased (so `"mcdonald's"` → `"Mcdonald'S"` and `"7-eleven"` →
/// `"7-Eleven"`, exactly as the seed's embed-time metadata has them).
pub fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_cased = false;
    for c in text.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else if let Some(t) = special_title(c) {
            out.push_str(t);
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = is_cased(c);
    }
    out
}

/// A merchant name as the collections store it: trimmed and title-cased (the seed's
/// `merchant_name.strip().title()`); `None` when nothing is left.
pub fn merchant_name(raw: Option<&str>) -> Option<String> {
    let trimmed = raw?.trim();
    (!trimmed.is_empty()).then(|| title_case(trimmed))
}

/// A phone number as ten digits: digits only, a leading `1` of an 11-digit number dropped,
/// exactly 10 digits required, 10 identical digits rejected. `None` means "omit the key".
pub fn phone(raw: &str) -> Option<String> {
    let mut digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 && digits.starts_with('1') {
        digits.remove(0);
    }
    if digits.len() != 10 {
        return None;
    }
    let first = digits.as_bytes()[0];
    if digits.bytes().all(|b| b == first) {
        return None;
    }
    Some(digits)
}

const SUFFIXES: [(&str, &str); 10] = [
    ("STREET", "ST"),
    ("ROAD", "RD"),
    ("AVENUE", "AVE"),
    ("BOULEVARD", "BLVD"),
    ("DRIVE", "DR"),
    ("LANE", "LN"),
    ("HIGHWAY", "HWY"),
    ("PARKWAY", "PKWY"),
    ("SUITE", "STE"),
    ("APARTMENT", "APT"),
];

/// An address as one comparable string: upper case, whitespace collapsed, punctuation
/// trimmed from each token (`#` kept), street suffixes abbreviated (STREET → ST, ROAD → RD,
/// AVENUE → AVE, BOULEVARD → BLVD, DRIVE → DR, LANE → LN, HIGHWAY → HWY, PARKWAY → PKWY,
/// SUITE → STE, APARTMENT → APT). `None` when nothing is left.
pub fn address(raw: &str) -> Option<String> {
    let upper = raw.to_uppercase();
    let tokens: Vec<String> = upper
        .split_whitespace()
        .map(|t| t.trim_matches(|c: char| c.is_ascii_punctuation() && c != '#'))
        .filter(|t| !t.is_empty())
        .map(|t| {
            SUFFIXES
                .iter()
                .find(|(long, _)| *long == t)
                .map_or_else(|| t.to_string(), |(_, short)| short.to_string())
        })
        .collect();
    (!tokens.is_empty()).then(|| tokens.join(" "))
}

fn has_street_number(part: &str) -> bool {
    part.split(|c: char| !c.is_ascii_digit())
        .any(|run| (1..=6).contains(&run.len()))
}

fn has_place_token(part: &str) -> bool {
    part.split(|c: char| !c.is_ascii_alphanumeric()).any(|t| {
        let zip = t.len() == 5 && t.bytes().all(|b| b.is_ascii_digit());
        let state = t.len() == 2 && t.bytes().all(|b| b.is_ascii_alphabetic());
        zip || state
    })
}

/// A visual row's address from its words' `address` values: deduplicated, longest first;
/// a street-like part (holding a 1–6 digit number) joined with a different place-like part
/// (a ZIP or a two-letter token), else the two longest joined, else the longest; then
/// normalized with [`address`].
pub fn row_address<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for v in values {
        let v = v.trim();
        if !v.is_empty() && !parts.contains(&v) {
            parts.push(v);
        }
    }
    // Longest first; ties keep their first-seen order (stable sort).
    parts.sort_by_key(|p| std::cmp::Reverse(p.chars().count()));
    // Prefer a numbered part that is not itself place-like ("Westlake, CA 91361" holds a
    // number too, but is the place).
    let street = parts
        .iter()
        .find(|p| has_street_number(p) && !has_place_token(p))
        .or_else(|| parts.iter().find(|p| has_street_number(p)));
    let combined = match street {
        Some(s) => parts
            .iter()
            .find(|p| *p != s && has_place_token(p))
            .map(|place| format!("{s} {place}")),
        None => None,
    };
    let joined = combined.or_else(|| match parts.as_slice() {
        [a, b, ..] => Some(format!("{a} {b}")),
        [a] => Some(a.to_string()),
        [] => None,
    })?;
    address(&joined)
}

/// A URL as a comparable string: email-like values (an `@` and no scheme) rejected; scheme,
/// `www.`, query and fragment dropped; host lower-cased; repeated slashes collapsed; a
/// trailing slash stripped except for the root.
pub fn url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (has_scheme, rest) = match raw.find("://") {
        Some(i)
            if i > 0
                && raw[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (true, &raw[i + 3..])
        }
        _ => (false, raw),
    };
    if !has_scheme && raw.contains('@') {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host.to_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    if host.is_empty() {
        return None;
    }
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    if collapsed.len() > 1 && collapsed.ends_with('/') {
        collapsed.pop();
    }
    if collapsed == "/" {
        return Some(format!("{host}/"));
    }
    Some(format!("{host}{collapsed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Seed §8.10 "title-cased merchant" (Python str.strip().title()).
    #[test]
    fn title_case_is_pythons() {
        assert_eq!(title_case("hello world"), "Hello World");
        assert_eq!(title_case("MCDONALD'S"), "Mcdonald'S");
        assert_eq!(title_case("7-eleven"), "7-Eleven");
        assert_eq!(title_case("3rd street"), "3Rd Street");
        assert_eq!(title_case("TRADER JOE'S #123"), "Trader Joe'S #123");
        assert_eq!(title_case("élan café"), "Élan Café");
        assert_eq!(title_case("straße"), "Straße");
        assert_eq!(title_case("ßa"), "Ssa");
        assert_eq!(
            merchant_name(Some("  costco wholesale ")).as_deref(),
            Some("Costco Wholesale")
        );
        assert_eq!(merchant_name(Some("   ")), None);
        assert_eq!(merchant_name(None), None);
    }

    #[test]
    fn phones() {
        assert_eq!(phone("(805) 555-1234").as_deref(), Some("8055551234"));
        assert_eq!(phone("+1 805 555 1234").as_deref(), Some("8055551234"));
        assert_eq!(phone("555-1234"), None);
        assert_eq!(phone("0000000000"), None);
        assert_eq!(phone("2 805 555 1234"), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address("123  Main Street, Suite 4.").as_deref(),
            Some("123 MAIN ST STE 4")
        );
        assert_eq!(address(" ,. "), None);
        assert_eq!(
            row_address([
                "Westlake Village, CA 91361",
                "123 Main Street",
                "123 Main Street"
            ])
            .as_deref(),
            Some("123 MAIN ST WESTLAKE VILLAGE CA 91361")
        );
        assert_eq!(row_address(["Suite", "Mall"]).as_deref(), Some("STE MALL"));
        assert_eq!(row_address(["Mall"]).as_deref(), Some("MALL"));
        assert_eq!(row_address([" "]), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            url("HTTPS://WWW.Example.COM/Path//To/?q=1#x").as_deref(),
            Some("example.com/Path/To")
        );
        assert_eq!(url("www.shop.com/").as_deref(), Some("shop.com/"));
        assert_eq!(url("shop.com").as_deref(), Some("shop.com"));
        assert_eq!(url("someone@example.com"), None);
        assert_eq!(
            url("mailto://someone@example.com").as_deref(),
            Some("someone@example.com")
        );
        assert_eq!(url(""), None);
    }
}
