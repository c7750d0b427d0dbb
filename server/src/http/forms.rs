//! Form bodies with clear answers to bad input: a wrong content type, an
//! oversized body, a missing field or invalid UTF-8 each get a 4xx page that
//! says what was wrong, and change nothing.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::error::WebError;

pub struct HtmlForm<T>(pub T);

impl<T, S> FromRequest<S> for HtmlForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_form(request.headers()) {
            return Err(WebError::Page {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                title: "Unsupported form",
                message: "Send the form as application/x-www-form-urlencoded, as a browser does."
                    .to_owned(),
            });
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    WebError::Page {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        title: "Form too large",
                        message: "The form is larger than any sign-in form can be.".to_owned(),
                    }
                } else {
                    WebError::bad_request("The form could not be read.")
                }
            })?;
        check_utf8(&body)?;
        serde_urlencoded::from_bytes(&body)
            .map(HtmlForm)
            .map_err(|error| {
                WebError::bad_request(format!("The form is incomplete or malformed ({error})."))
            })
    }
}

/// Every name and value, once percent-decoded, must be UTF-8: a form
/// decoder would otherwise replace bad bytes and carry on.
fn check_utf8(body: &[u8]) -> Result<(), WebError> {
    let invalid = || WebError::bad_request("The form is not valid UTF-8 text.");
    let text = std::str::from_utf8(body).map_err(|_| invalid())?;
    for part in text.split(['&', '=']) {
        let spaced = part.replace('+', " ");
        std::str::from_utf8(&urlencoding::decode_binary(spaced.as_bytes()))
            .map_err(|_| invalid())?;
    }
    Ok(())
}

/// Whether the body is declared `application/x-www-form-urlencoded`.
pub fn is_form(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// A form field's length check, with a message naming the field.
pub fn bounded<'a>(field: &'static str, value: &'a str, max: usize) -> Result<&'a str, WebError> {
    if value.len() > max {
        return Err(WebError::bad_request(format!(
            "The {field} is too long (at most {max} characters)."
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_found_raw_and_percent_encoded() {
        assert!(check_utf8(b"name=alice&password=p%C3%A4ss+word").is_ok());
        assert!(check_utf8(b"name=carol%FF").is_err());
        assert!(check_utf8(b"name=carol\xff").is_err());
        assert!(check_utf8(b"na%FEme=x").is_err());
    }
}
