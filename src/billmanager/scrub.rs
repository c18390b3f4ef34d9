//! Bounding and scrubbing the text the upstream sends back.
//!
//! Whatever the upstream writes into an answer (an error message above all) may be
//! stored in a license, its events and the audit log, and shown to callers. So it is
//! cut to [`MAX_UPSTREAM_TEXT`] bytes, and the credentials of the request are masked
//! first: an upstream that echoes its request carries the password and the session id
//! in whatever encoding the request used (raw inside `authinfo`, percent-encoded in a
//! URL, form-encoded in a body).

/// The most bytes of one upstream text that are kept (a message, a field).
pub const MAX_UPSTREAM_TEXT: usize = 1024;

/// What a masked credential is replaced with.
const MASK: &str = "***";

/// Appended to a text that was cut.
const CUT: &str = "…";

/// `text` cut to at most [`MAX_UPSTREAM_TEXT`] bytes, on a character boundary, ending in
/// `…` when it was cut.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_UPSTREAM_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_UPSTREAM_TEXT - CUT.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &text[..end])
}

/// The credentials to mask in upstream text, each in every encoding it can travel in.
#[derive(Default)]
pub(crate) struct Scrubber {
    /// Longest first, so that a form that contains another is masked whole.
    forms: Vec<String>,
}

impl Scrubber {
    /// Masks each of `secrets` (empty ones are ignored).
    pub(crate) fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut forms: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(encodings)
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Self { forms }
    }

    /// `text` with every credential masked, then [`bounded`]. Masking comes first so a
    /// cut can never leave the start of a credential behind.
    pub(crate) fn text(&self, text: &str) -> String {
        let mut clean = text.to_owned();
        for form in &self.forms {
            if clean.contains(form.as_str()) {
                clean = clean.replace(form.as_str(), MASK);
            }
        }
        bounded(&clean)
    }
}

/// The forms a secret takes on the wire: raw; percent-encoded as in a URL (`%20` for a
/// space, `~` kept); form-encoded (`+` for a space, `*` kept); each with upper- and
/// lower-case hex digits.
fn encodings(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for style in [Style::Url, Style::Form] {
        for upper in [true, false] {
            forms.push(encode(secret, style, upper));
        }
    }
    forms
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Url,
    Form,
}

fn encode(secret: &str, style: Style, upper: bool) -> String {
    let mut out = String::with_capacity(secret.len() * 3);
    for &b in secret.as_bytes() {
        let kept = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (style == Style::Url && b == b'~')
            || (style == Style::Form && b == b'*');
        if kept {
            out.push(char::from(b));
        } else if b == b' ' && style == Style::Form {
            out.push('+');
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_masked_raw_url_encoded_and_form_encoded() {
        let scrubber = Scrubber::new(["p@ss w/rd~*", "SID123"]);
        let echoed = [
            "authinfo=demo:p@ss w/rd~*",
            "authinfo=demo%3Ap%40ss%20w%2Frd~%2A",
            "authinfo=demo%3ap%40ss%20w%2frd~%2a",
            "authinfo=demo%3Ap%40ss+w%2Frd%7E*",
            "auth=SID123&func=soft",
        ];
        for text in echoed {
            let clean = scrubber.text(text);
            assert!(!clean.contains("rd"), "{text} → {clean}");
            assert!(!clean.contains("SID123"), "{text} → {clean}");
            assert!(clean.contains(MASK), "{text} → {clean}");
        }
    }

    #[test]
    fn a_long_text_is_cut_to_one_kibibyte_on_a_character_boundary() {
        let long = "é".repeat(5 * 1024 * 1024);

        let cut = bounded(&long);

        assert!(cut.len() <= MAX_UPSTREAM_TEXT);
        assert!(cut.ends_with(CUT));
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn a_rendered_upstream_error_is_at_most_one_kibibyte() {
        let long = "m".repeat(4096);
        let error = super::super::UpstreamError::Refused {
            kind: long.clone(),
            object: Some(long.clone()),
            message: long,
        };

        assert!(error.to_string().len() <= MAX_UPSTREAM_TEXT);
    }

    #[test]
    fn masking_happens_before_the_cut() {
        let secret = "s3cret-password";
        let text = format!("{}{secret}", "x".repeat(MAX_UPSTREAM_TEXT - 8));

        let clean = Scrubber::new([secret]).text(&text);

        assert!(!clean.contains("s3cr"), "{clean}");
    }
}
