//! What is checked on a message before its body is parsed: its size and its declared content
//! type. The same for triggers and for executor reports.

/// Why a message was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("content_type '{0}' is not JSON (application/json or a +json type)")]
    NotJson(String),
}

/// `application/json` or any `+json` type (e.g. `application/cloudevents+json`), parameters
/// such as `; charset=utf-8` allowed.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// A body of `size` bytes declared as `content_type` (absent = not declared): at most `max`
/// bytes, and JSON when declared.
pub fn check_envelope(
    size: usize,
    content_type: Option<&str>,
    max: usize,
) -> Result<(), EnvelopeError> {
    if size > max {
        return Err(EnvelopeError::TooLarge { size, max });
    }
    match content_type {
        Some(t) if !is_json(t) => Err(EnvelopeError::NotJson(t.to_owned())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_types_pass_and_others_do_not() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/cloudevents+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in ["text/plain", "application/xml", "", "application/jsonx"] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn size_is_checked_first_and_an_absent_type_is_fine() {
        assert_eq!(check_envelope(10, None, 10), Ok(()));
        assert_eq!(
            check_envelope(11, Some("text/plain"), 10),
            Err(EnvelopeError::TooLarge { size: 11, max: 10 })
        );
        assert_eq!(
            check_envelope(1, Some("text/plain"), 10),
            Err(EnvelopeError::NotJson("text/plain".into()))
        );
    }
}
