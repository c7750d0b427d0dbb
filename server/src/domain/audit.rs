//! The audit log: every sign-in success and failure with its reason, every
//! registration and every admin action; who, when, from where.

use super::Gatehouse;
use crate::store::{AuditRow, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// One thing worth recording.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event: &'static str,
    pub outcome: Outcome,
    /// Who did it (the user signing in, or the admin acting).
    pub actor: Option<String>,
    /// Whom it concerned, when that is someone else.
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub client: Option<String>,
}

impl AuditEvent {
    pub fn new(event: &'static str, outcome: Outcome) -> Self {
        AuditEvent {
            event,
            outcome,
            actor: None,
            subject: None,
            reason: None,
            client: None,
        }
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn client(mut self, client: impl ToString) -> Self {
        self.client = Some(client.to_string());
        self
    }

    pub(crate) fn into_row(self, at: u64) -> AuditRow {
        AuditRow {
            at,
            event: self.event.to_owned(),
            outcome: match self.outcome {
                Outcome::Success => "success",
                Outcome::Failure => "failure",
            }
            .to_owned(),
            actor: self.actor,
            subject: self.subject,
            reason: self.reason,
            client: self.client,
        }
    }
}

/// Write an event to the store (and the log). Failing to audit is logged,
/// not fatal: the action itself already happened.
pub fn record(store: &Store, event: AuditEvent, at: u64) {
    tracing::info!(
        event = event.event,
        outcome = ?event.outcome,
        actor = event.actor.as_deref(),
        subject = event.subject.as_deref(),
        reason = event.reason.as_deref(),
        client = event.client.as_deref(),
        "audit"
    );
    if let Err(error) = store.audit(&event.into_row(at)) {
        tracing::error!(%error, "could not write an audit record");
    }
}

impl Gatehouse {
    pub async fn audit(&self, event: AuditEvent) {
        let at = self.now();
        let store = std::sync::Arc::clone(&self.store);
        let _ = tokio::task::spawn_blocking(move || record(&store, event, at)).await;
    }
}
