//! One view struct per template. Askama escapes every value; the only raw
//! HTML is the QR code's SVG, which the server itself generates.

use askama::Template;

#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage {
    pub csrf: String,
    pub name: String,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// Set when an external client sent the person here.
    pub external: Option<ExternalClient>,
}

/// The external client a sign-in is for.
#[derive(Debug, Clone)]
pub struct ExternalClient {
    pub client_name: String,
    /// The authorization request's public id, carried through sign-in.
    pub authorization: String,
}

#[derive(Template)]
#[template(path = "oauth_consent.html")]
pub struct ConsentPage {
    pub csrf: String,
    pub user: String,
    pub public_id: String,
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<(&'static str, &'static str)>,
    pub withheld: Vec<&'static str>,
    pub confirmation: String,
}

#[derive(Template)]
#[template(path = "oauth_device.html")]
pub struct DevicePage {
    pub csrf: String,
    pub user_code: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "oauth_done.html")]
pub struct DonePage {
    pub allowed: bool,
    pub client: Option<String>,
}

#[derive(Template)]
#[template(path = "mfa_required.html")]
pub struct MfaRequiredPage {
    pub csrf: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "mfa_settings.html")]
pub struct MfaSettingsPage {
    pub csrf: String,
    pub name: String,
    pub registered: usize,
    pub replace_allowed: bool,
    pub signed_in: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "mfa_authenticator.html")]
pub struct MfaAuthenticatorPage<'a> {
    pub csrf: String,
    pub name: String,
    pub qr_svg: &'a str,
    pub security_key: &'a str,
    pub minutes_left: u64,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub csrf: String,
    pub name: String,
    pub is_admin: bool,
    pub force_mfa: bool,
    pub registered: usize,
    pub mfa: bool,
    pub notice: Option<String>,
    pub grants: Vec<GrantView>,
}

#[derive(Template)]
#[template(path = "change_password.html")]
pub struct ChangePasswordPage {
    pub csrf: String,
    pub name: String,
    pub required: bool,
    pub min_length: usize,
    pub error: Option<String>,
}

pub struct AdminUserView {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub force_mfa: bool,
    pub authenticators: u32,
    pub devices: String,
    pub failed_attempts: u32,
    pub locked_for: u64,
    pub client_sign_ins: u32,
}

pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub redirects: String,
}

/// An external client a person is signed in to.
pub struct GrantView {
    pub public_id: String,
    pub client: String,
    pub since: String,
    pub last_used: String,
    pub mfa: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    pub csrf: String,
    pub users: Vec<AdminUserView>,
    pub clients: Vec<ClientView>,
    pub min_length: usize,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct AuditView {
    pub when: String,
    pub event: String,
    pub outcome: String,
    pub actor: String,
    pub subject: String,
    pub reason: String,
    pub client: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AuditPage {
    pub entries: Vec<AuditView>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub back: &'a str,
    pub back_label: &'a str,
    pub request_id: &'a str,
}

/// `YYYY-MM-DD hh:mm:ss` UTC for Unix seconds (civil-from-days, proleptic
/// Gregorian calendar).
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_111_111_109), "2005-03-18 01:58:29");
        assert_eq!(utc(2_000_000_000), "2033-05-18 03:33:20");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn templates_escape_hostile_values() {
        let page = SignInPage {
            csrf: "t".to_owned(),
            name: "<script>alert(1)</script>\"'".to_owned(),
            error: Some("<b>x</b>".to_owned()),
            notice: None,
            external: Some(ExternalClient {
                client_name: "<i>tool</i>".to_owned(),
                authorization: "\"><x>".to_owned(),
            }),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
        assert!(!html.contains("<b>x</b>"));
        assert!(!html.contains("<i>tool</i>"));
        assert!(!html.contains("\"><x>"));
    }
}
