//! Registered clients, and which redirects each may use.

use url::{Host, Url};

use super::super::{AdminOps, DomainError, Result};
use crate::store::{ClientRow, StoreError};

/// A client an administrator registers.
pub struct NewClient {
    /// The `client_id`: lower-case letters, digits, `.`, `_` and `-`.
    pub client_id: String,
    /// What the consent page calls it; the id when empty.
    pub name: String,
    /// Allow any loopback redirect (RFC 8252 §7.3).
    pub loopback: bool,
    /// Further redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
}

fn validate_client_id(id: &str) -> Result<()> {
    let ok = (1..=64).contains(&id.len())
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(DomainError::Invalid(
            "a client id is 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
                .to_owned(),
        ))
    }
}

/// A registered (non-loopback) redirect URI must be HTTPS, or a private-use
/// scheme in reverse domain form (RFC 8252 §7.1), with no fragment.
fn validate_registered_redirect(uri: &str) -> Result<()> {
    let invalid = |why: &str| DomainError::Invalid(format!("redirect URI {uri:?}: {why}"));
    let url = Url::parse(uri).map_err(|error| invalid(&error.to_string()))?;
    if url.fragment().is_some() {
        return Err(invalid("a redirect URI has no fragment"));
    }
    if url.as_str() != uri && format!("{uri}/") != url.as_str() {
        return Err(invalid("write it in its normal form"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => Err(invalid(
            "plain http is only for loopback redirects: register the client with --loopback",
        )),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(invalid(
            "use https, or a private-use scheme in reverse domain form (com.example.app:/callback)",
        )),
    }
}

/// Why `redirect_uri` is not acceptable for `client`, if it is not. The
/// answer is shown to the person; the browser is not redirected.
pub fn check_redirect_uri(client: &ClientRow, redirect_uri: &str) -> Result<(), String> {
    if redirect_uri.len() > 512 {
        return Err("The redirect address is too long.".to_owned());
    }
    if client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Ok(());
    }
    let url = Url::parse(redirect_uri)
        .map_err(|_| format!("The redirect address {redirect_uri:?} is not a valid URL."))?;
    let loopback_host = matches!(
        url.host(),
        Some(Host::Ipv4(ip)) if ip == std::net::Ipv4Addr::LOCALHOST
    ) || matches!(url.host(), Some(Host::Ipv6(ip)) if ip == std::net::Ipv6Addr::LOCALHOST);
    if !client.loopback {
        return Err(format!(
            "{redirect_uri:?} is not a redirect address registered for {}.",
            client.name
        ));
    }
    if url.scheme() != "http" || !loopback_host {
        let hint = if url.host_str() == Some("localhost") {
            " Use 127.0.0.1 or [::1] instead of \"localhost\" (RFC 8252 §8.3)."
        } else {
            ""
        };
        return Err(format!(
            "{} may only be sent back to this computer (http://127.0.0.1:PORT/… or http://[::1]:PORT/…), \
             not to {redirect_uri:?}.{hint}",
            client.name
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(
            "A loopback redirect address carries no user name, password or fragment.".to_owned(),
        );
    }
    Ok(())
}

impl AdminOps {
    pub fn add_client(&self, new: NewClient) -> Result<ClientRow> {
        validate_client_id(&new.client_id)?;
        let name = match new.name.trim() {
            "" => new.client_id.clone(),
            name if name.len() <= 64 && !name.chars().any(char::is_control) => name.to_owned(),
            _ => {
                return Err(DomainError::Invalid(
                    "a client name is at most 64 printable characters".to_owned(),
                ));
            }
        };
        if new.redirect_uris.len() > 16 {
            return Err(DomainError::Invalid(
                "at most 16 redirect URIs per client".to_owned(),
            ));
        }
        for uri in &new.redirect_uris {
            validate_registered_redirect(uri)?;
        }
        if !new.loopback && new.redirect_uris.is_empty() {
            return Err(DomainError::Invalid(
                "a client needs --loopback or at least one --redirect-uri".to_owned(),
            ));
        }
        let row = ClientRow {
            client_id: new.client_id,
            name,
            loopback: new.loopback,
            redirect_uris: new.redirect_uris,
            created_at: self.clock.now(),
            created_by: Some(self.actor.clone()),
        };
        self.store
            .create_client(&row)
            .map_err(|error| match error {
                StoreError::DuplicateClient(id) => {
                    DomainError::Invalid(format!("a client with id {id:?} is already registered"))
                }
                other => other.into(),
            })?;
        let mut redirects = Vec::new();
        if row.loopback {
            redirects.push("loopback".to_owned());
        }
        redirects.extend(row.redirect_uris.iter().cloned());
        self.record(
            "client-added",
            &row.client_id,
            format!(
                "public client {:?}, redirects: {}",
                row.name,
                redirects.join(", ")
            ),
        );
        Ok(row)
    }

    pub fn clients(&self) -> Result<Vec<ClientRow>> {
        Ok(self.store.clients()?)
    }

    /// Remove a client and revoke every token issued to it.
    pub fn remove_client(&self, client_id: &str) -> Result<()> {
        if !self.store.delete_client(client_id, self.clock.now())? {
            return Err(DomainError::Invalid(format!(
                "no client with id {client_id:?}"
            )));
        }
        self.record("client-removed", client_id, "its tokens are revoked");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(loopback: bool, uris: &[&str]) -> ClientRow {
        ClientRow {
            client_id: "tool".to_owned(),
            name: "Tool".to_owned(),
            loopback,
            redirect_uris: uris.iter().map(|uri| (*uri).to_owned()).collect(),
            created_at: 0,
            created_by: None,
        }
    }

    #[test]
    fn loopback_clients_take_any_port_on_127_0_0_1_and_ipv6_loopback() {
        let tool = client(true, &[]);
        for good in [
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1:8/",
            "http://[::1]:61000/cb?x=1",
            "http://127.0.0.1/",
        ] {
            assert_eq!(check_redirect_uri(&tool, good), Ok(()), "{good}");
        }
        for bad in [
            "http://localhost:49152/callback",
            "https://127.0.0.1:49152/callback",
            "http://127.0.0.2:49152/",
            "http://evil.example/callback",
            "http://127.0.0.1.evil.example/",
            "http://user@127.0.0.1:5/",
            "http://127.0.0.1:5/#frag",
            "not a url",
        ] {
            assert!(check_redirect_uri(&tool, bad).is_err(), "{bad}");
        }
        let why = check_redirect_uri(&tool, "http://localhost:1/").unwrap_err();
        assert!(why.contains("127.0.0.1"), "{why}");
    }

    #[test]
    fn registered_uris_match_exactly_and_loopback_needs_the_flag() {
        let web = client(false, &["https://app.example/cb"]);
        assert_eq!(check_redirect_uri(&web, "https://app.example/cb"), Ok(()));
        assert!(check_redirect_uri(&web, "https://app.example/cb2").is_err());
        assert!(check_redirect_uri(&web, "http://127.0.0.1:5/cb").is_err());
    }

    #[test]
    fn registered_redirects_are_https_or_private_schemes() {
        assert!(validate_registered_redirect("https://app.example/cb").is_ok());
        assert!(validate_registered_redirect("com.example.app:/cb").is_ok());
        assert!(validate_registered_redirect("http://app.example/cb").is_err());
        assert!(validate_registered_redirect("myapp:/cb").is_err());
        assert!(validate_registered_redirect("https://app.example/cb#x").is_err());
        assert!(validate_client_id("device-tools").is_ok());
        assert!(validate_client_id("Device Tools").is_err());
        assert!(validate_client_id("-x").is_err());
    }
}
