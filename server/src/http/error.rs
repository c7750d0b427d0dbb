//! The web error type: each failure maps to a status and a message a person
//! can act on. Inner causes go to the log, tagged with the request id that
//! the page also shows, never into the page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::views::ErrorPage;
use crate::domain::DomainError;

tokio::task_local! {
    /// The id of the request being served, for logs and error pages.
    pub static REQUEST_ID: String;
}

pub fn request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_owned())
}

#[derive(Debug)]
pub enum WebError {
    /// A page for the person: status, title, message.
    Page {
        status: StatusCode,
        title: &'static str,
        message: String,
    },
    /// Something broke inside: logged with its cause, shown as a plain 500.
    Internal(String),
    /// The token is down: fail closed, say so.
    Unavailable(String),
}

impl WebError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        WebError::Page {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        WebError::Page {
            status: StatusCode::FORBIDDEN,
            title: "Not allowed",
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        WebError::Page {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            message: "There is no such page.".to_owned(),
        }
    }

    pub fn session_ended() -> Self {
        WebError::Page {
            status: StatusCode::FORBIDDEN,
            title: "Session ended",
            message: "Your session has ended. Sign in again.".to_owned(),
        }
    }

    pub fn csrf() -> Self {
        WebError::Page {
            status: StatusCode::FORBIDDEN,
            title: "Form expired",
            message: "The form expired or was not sent from this site. Go back, reload the page and try again."
                .to_owned(),
        }
    }
}

impl From<DomainError> for WebError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::TokenUnavailable(inner) => WebError::Unavailable(inner.to_string()),
            DomainError::Internal(cause) => WebError::Internal(cause),
            DomainError::Forbidden => WebError::forbidden("You are not allowed to do that."),
            DomainError::NoSuchUser => WebError::Page {
                status: StatusCode::NOT_FOUND,
                title: "Not found",
                message: "There is no such user.".to_owned(),
            },
            DomainError::AddressLimited => WebError::Page {
                status: StatusCode::TOO_MANY_REQUESTS,
                title: "Too many attempts",
                message: capitalise(&error.to_string()),
            },
            other => WebError::bad_request(capitalise(&other.to_string())),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(error: askama::Error) -> Self {
        WebError::Internal(format!("rendering a page: {error}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let id = request_id();
        let (status, title, message) = match self {
            WebError::Page {
                status,
                title,
                message,
            } => (status, title, message),
            WebError::Internal(cause) => {
                tracing::error!(request_id = %id, %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete this request. It has been logged; try again, or tell your administrator the request number below.".to_owned(),
                )
            }
            WebError::Unavailable(cause) => {
                tracing::error!(request_id = %id, %cause, "security token unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in paused",
                    "The security token that checks authenticator codes is not available, so sign-in is paused. Try again shortly.".to_owned(),
                )
            }
        };
        render_error(status, title, &message, &id)
    }
}

pub fn render_error(status: StatusCode, title: &str, message: &str, request_id: &str) -> Response {
    let page = ErrorPage {
        title,
        message,
        back: "/",
        back_label: "Back to Sign In",
        request_id,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, format!("{title}: {message} (request {request_id})")).into_response(),
    }
}

pub fn capitalise(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => {
            let mut sentence: String = first.to_uppercase().chain(characters).collect();
            if !sentence.ends_with('.') {
                sentence.push('.');
            }
            sentence
        }
        None => String::new(),
    }
}
