//! Form bodies with clear answers to bad input: a wrong content type, an
//! oversized body, a missing field or invalid UTF-8 each get a 4xx page that
//! says what was wrong, and change nothing.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
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
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(HtmlForm(value)),
            Err(FormRejection::InvalidFormContentType(_)) => Err(WebError::Page {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                title: "Unsupported form",
                message: "Send the form as application/x-www-form-urlencoded, as a browser does."
                    .to_owned(),
            }),
            Err(FormRejection::BytesRejection(rejection))
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(WebError::Page {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    title: "Form too large",
                    message: "The form is larger than any sign-in form can be.".to_owned(),
                })
            }
            Err(rejection) => Err(WebError::bad_request(format!(
                "The form is incomplete or malformed ({}).",
                rejection.body_text()
            ))),
        }
    }
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
