//! Where a request carries its assertion.

/// Why the assertion header of a request cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionHeaderError {
    /// Sent twice, or under two spellings (`X-Assertion`, `X_Assertion`):
    /// ambiguous, as for plain identity headers (HTTP 400).
    Ambiguous,
    /// Not visible ASCII: no compact JWS can be in it.
    NotAscii,
}

/// The assertion a request carries in header `name` (normalised, see
/// [`crate::headers::same_name`]), trimmed. Empty counts as none: that is how
/// fronts say "nobody" on pages they do not protect (Apache's `RequestHeader
/// set` with an unset variable), as with plain identity headers.
pub fn assertion_in<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, AssertionHeaderError> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| crate::headers::same_name(n.as_str(), name))
        .map(|(_, v)| v);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AssertionHeaderError::Ambiguous);
    }
    let token = value
        .to_str()
        .map_err(|_| AssertionHeaderError::NotAscii)?
        .trim();
    Ok((!token.is_empty()).then_some(token))
}
