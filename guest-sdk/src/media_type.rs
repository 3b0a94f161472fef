//! Parsing of header values shaped `value *( ";" name "=" token-or-quoted-string )`: media
//! types (`Content-Type`, RFC 9110 §8.3.1), the `Content-Disposition` of multipart parts
//! (RFC 7578 §4.2, RFC 6266) and `Accept` (RFC 9110 §12.5.1). Pure text, no I/O.

/// A header value split into its lower-cased main value and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameterized {
    /// The value before the first `;`, trimmed and lower-cased: `multipart/form-data`,
    /// `form-data`.
    pub value: String,
    /// The parameters in order, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Parameterized {
    /// Parses `text`; `None` if a parameter is malformed (an unterminated quoted string, a
    /// parameter without `=`).
    pub fn parse(text: &str) -> Option<Self> {
        let (value, mut rest) = match text.find(';') {
            Some(at) => (&text[..at], &text[at..]),
            None => (text, ""),
        };
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            let Some(after) = rest.strip_prefix(';') else { break };
            let after = after.trim_start_matches([' ', '\t']);
            if after.is_empty() || after.starts_with(';') {
                rest = after;
                continue;
            }
            let eq = after.find('=')?;
            let name = after[..eq].trim().to_ascii_lowercase();
            if name.is_empty() || name.contains([';', ' ', '"']) {
                return None;
            }
            let (param, remainder) = parse_param_value(&after[eq + 1..])?;
            params.push((name, param));
            rest = remainder;
        }
        if !rest.trim().is_empty() {
            return None;
        }
        Some(Self { value: value.trim().to_ascii_lowercase(), params })
    }

    /// The value of the first parameter called `name` (lower case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// Parses a token or a quoted string (with `\` escapes) at the start of `text`; returns it and
/// the rest.
fn parse_param_value(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start_matches([' ', '\t']);
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(';').unwrap_or(text.len());
        return Some((text[..end].trim_end().to_owned(), &text[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[at + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

/// Whether the media type `essence` (lower case, no parameters) is JSON: `application/json`
/// or any `+json` structured syntax suffix (`application/problem+json`, RFC 6839).
pub(crate) fn is_json(essence: &str) -> bool {
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether an `Accept` header asks for JSON rather than text: some JSON type
/// (`application/json` or `application/*+json`) is listed with `q > 0`, and no `text/*`
/// type is listed with a higher `q`. Wildcards (`*/*`, `application/*`) count for neither.
pub(crate) fn accept_prefers_json(accept: &str) -> bool {
    let (mut json, mut text) = (0, 0);
    for range in accept.split(',') {
        let Some(range) = Parameterized::parse(range) else { continue };
        let q = range.param("q").map_or(1000, quality);
        if is_json(&range.value) {
            json = json.max(q);
        } else if range.value.starts_with("text/") {
            text = text.max(q);
        }
    }
    json > 0 && json >= text
}

/// A `q` weight (RFC 9110 §12.4.2: `0`–`1` with at most three decimals) in thousandths,
/// capped at 1000; a value that is not a decimal number counts as 1000, the weight of a range
/// without `q`. Integer arithmetic on purpose: `str::parse::<f32>` would bring the float parser
/// and its 10 KB table of powers of five into every handler's data segment, which every
/// instance copies into its memory (a page and a half of each parked request).
fn quality(q: &str) -> u16 {
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return 1000;
    }
    if whole.trim_start_matches('0').is_empty() {
        // 0.xyz: the first three decimals, padded with zeros.
        fraction.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0, |n, b| n * 10 + u16::from(b - b'0'))
    } else {
        1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_value_and_params_case_insensitively() {
        let ct = Parameterized::parse("Multipart/Form-Data; Boundary=\"a b\\\"c\"; charset=utf-8").unwrap();
        assert_eq!(ct.value, "multipart/form-data");
        assert_eq!(ct.param("boundary"), Some("a b\"c"));
        assert_eq!(ct.param("charset"), Some("utf-8"));
        let cd = Parameterized::parse("form-data; name=field;filename=\"a;b.txt\"").unwrap();
        assert_eq!(
            (cd.value.as_str(), cd.param("name"), cd.param("filename")),
            ("form-data", Some("field"), Some("a;b.txt"))
        );
        assert_eq!(Parameterized::parse("text/plain;").unwrap().params, []);
    }

    #[test]
    fn refuses_malformed_params() {
        assert_eq!(Parameterized::parse("form-data; name=\"open"), None);
        assert_eq!(Parameterized::parse("form-data; name"), None);
        assert_eq!(Parameterized::parse("form-data; =x"), None);
    }

    #[test]
    fn json_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/json+x"));
        assert!(!is_json("application/jsonx"));
    }

    #[test]
    fn accept_rule() {
        assert!(accept_prefers_json("application/json"));
        assert!(accept_prefers_json("application/problem+json, */*;q=0.1"));
        assert!(accept_prefers_json("text/plain;q=0.5, application/json"));
        assert!(accept_prefers_json("text/html, application/json"), "a tie goes to JSON");
        assert!(!accept_prefers_json("text/html, application/json;q=0.9"));
        assert!(!accept_prefers_json("*/*"));
        assert!(!accept_prefers_json("application/json;q=0"));
        assert!(!accept_prefers_json("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(accept_prefers_json("text/plain;q=0.499, application/json;q=0.5"));
        assert!(
            accept_prefers_json("text/plain;q=0.5001, application/json;q=0.5"),
            "decimals past the third are ignored: a tie, which goes to JSON"
        );
        assert!(!accept_prefers_json("text/plain;q=0.501, application/json;q=0.5"));
        assert!(!accept_prefers_json("text/plain;q=1.0, application/json;q=0.999"));
    }

    #[test]
    fn quality_weights_in_thousandths() {
        assert_eq!(quality("0"), 0);
        assert_eq!(quality("0.5"), 500);
        assert_eq!(quality(".25"), 250);
        assert_eq!(quality("0.001"), 1);
        assert_eq!(quality("0.0009"), 0);
        assert_eq!(quality("1"), 1000);
        assert_eq!(quality("1.000"), 1000);
        assert_eq!(quality("7"), 1000, "capped");
        assert_eq!(quality("x"), 1000, "not a number: as without q");
        assert_eq!(quality(""), 1000);
        assert_eq!(quality("-0.5"), 1000);
    }
}
