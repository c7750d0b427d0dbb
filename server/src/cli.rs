//! The `gatehouse` command line: `serve` (the default) and `user …`, which
//! works on the same data directory while the server runs.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, TlsConfig};
use crate::domain::api_tokens::ApiScope;
use crate::domain::oauth::NewClient;
use crate::domain::{AdminOps, NewAccount};
use crate::store::Store;

/// Gatehouse: sign-in with multi-factor authentication, seeds held in a
/// PKCS#11 token.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version)]
pub struct Cli {
    /// TOML configuration file (unknown keys are refused).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory: database and, without a PKCS#11 module, the SoftHSM token.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens: admin tokens (device-tools) and service tokens
    /// (the validation API, token introspection).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage external clients (desktop tools, CLIs) that sign in through
    /// the browser.
    #[command(subcommand)]
    Client(ClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its client id.
    Add {
        /// The client id: lower-case letters, digits, '.', '_' and '-'.
        name: String,
        /// A public client (native app or CLI): it proves itself with PKCE,
        /// not a secret. The only kind Gatehouse registers.
        #[arg(long)]
        public: bool,
        /// Allow any loopback redirect (http://127.0.0.1:PORT/..., http://[::1]:PORT/...).
        #[arg(long)]
        loopback: bool,
        /// A further redirect URI, matched exactly (https, or a private-use
        /// scheme such as com.example.app:/callback). Repeatable.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// What the consent page calls the client (default: its id).
        #[arg(long, value_name = "TEXT", default_value = "")]
        display_name: String,
    },
    /// List registered clients.
    List,
    /// Remove a client and revoke every token issued to it.
    Remove { name: String },
    /// Sign a user out of every external client (revoke their tokens).
    RevokeUser { user: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        /// An admin token: the admin API (device-tools yubikey enroll).
        #[arg(long, conflicts_with = "service", required_unless_present = "service")]
        admin: bool,
        /// A service token: the validation API and token introspection
        /// (a VPN or RADIUS front end, a resource server).
        #[arg(long)]
        service: bool,
        /// What the token is for.
        #[arg(long, default_value = "device-tools")]
        name: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 30)]
        days: u64,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by its id.
    Revoke { id: i64 },
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDRESS")]
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-private-key).
    #[arg(long, value_name = "FILE", requires = "tls_private_key")]
    pub tls_certificate: Option<PathBuf>,
    /// The PEM private key of --tls-certificate.
    #[arg(long, value_name = "FILE", requires = "tls_certificate")]
    pub tls_private_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (behind a TLS proxy).
    #[arg(long)]
    pub allow_plain_http: bool,
    /// PKCS#11 module of your HSM (default: an embedded SoftHSM token).
    #[arg(long, value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the token.
    #[arg(long, value_name = "LABEL")]
    pub token_label: Option<String>,
    /// File holding the token's user PIN.
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin, prompts on a terminal, or
    /// else generates a one-time password and prints it.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        force_mfa: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their MFA state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Enforce MFA for a user (or stop, with --off).
    ForceMfa {
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Remove a user's authenticators; with MFA enforced they register anew.
    ResetMfa { name: String },
    /// Clear a user's failed attempts and lock.
    Unlock { name: String },
    /// Set a user's password (a one-time password unless read from stdin
    /// or typed at a prompt).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Load the configuration with the command line's overrides applied.
pub fn configuration(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir.clone_from(dir);
    }
    if let Some(Command::Serve(serve)) = &cli.command {
        if let Some(listen) = serve.listen {
            config.listen = listen;
        }
        if let (Some(certificate), Some(private_key)) =
            (&serve.tls_certificate, &serve.tls_private_key)
        {
            config.tls = Some(TlsConfig {
                certificate: certificate.clone(),
                private_key: private_key.clone(),
            });
        }
        config.allow_plain_http |= serve.allow_plain_http;
        if serve.pkcs11_module.is_some() {
            config.pkcs11.module.clone_from(&serve.pkcs11_module);
        }
        if let Some(label) = &serve.token_label {
            config.pkcs11.token_label.clone_from(label);
        }
        if serve.pin_file.is_some() {
            config.pkcs11.pin_file.clone_from(&serve.pin_file);
        }
    }
    Ok(config)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = configuration(&cli)?;
    match cli.command {
        None | Some(Command::Serve(_)) => Ok(crate::server::serve(config).await?),
        Some(Command::User(command)) => user(command, &config).await,
        Some(Command::Token(command)) => token(command, &config),
        Some(Command::Client(command)) => client(command, &config),
    }
}

fn client(command: ClientCommand, config: &Config) -> anyhow::Result<()> {
    let ops = admin_ops(config)?;
    match command {
        ClientCommand::Add {
            name,
            public: _,
            loopback,
            redirect_uris,
            display_name,
        } => {
            let client = ops.add_client(NewClient {
                client_id: name,
                name: display_name,
                loopback,
                redirect_uris,
            })?;
            println!(
                "Registered public client {:?} with client id: {}",
                client.name, client.client_id
            );
            if client.loopback {
                println!(
                    "It may use loopback redirects (http://127.0.0.1:PORT/..., http://[::1]:PORT/...)."
                );
            }
            for uri in &client.redirect_uris {
                println!("Redirect URI: {uri}");
            }
        }
        ClientCommand::List => {
            println!("{:<24} {:<24} REDIRECTS", "CLIENT ID", "NAME");
            for client in ops.clients()? {
                let mut redirects = Vec::new();
                if client.loopback {
                    redirects.push("loopback".to_owned());
                }
                redirects.extend(client.redirect_uris);
                println!(
                    "{:<24} {:<24} {}",
                    client.client_id,
                    client.name,
                    redirects.join(", ")
                );
            }
        }
        ClientCommand::Remove { name } => {
            ops.remove_client(&name)?;
            println!("Client {name} is removed; every token issued to it is revoked.");
        }
        ClientCommand::RevokeUser { user } => {
            let user = ops.user(&user)?;
            let revoked = ops.revoke_client_sign_ins(&user)?;
            println!(
                "{} is signed out of {revoked} external client sign-in(s).",
                user.name
            );
        }
    }
    Ok(())
}

/// Admin operations on the data directory's database, as `cli`.
fn admin_ops(config: &Config) -> anyhow::Result<AdminOps> {
    let database = config.database_path();
    if !database.exists() {
        anyhow::bail!(
            "no Gatehouse database at {}: start the server once, or give the right --data-dir",
            database.display()
        );
    }
    Ok(AdminOps {
        store: Arc::new(Store::open(&database)?),
        passwords: Arc::new(crate::server::passwords(config)?),
        clock: crate::server::clock_from_environment(),
        actor: "cli".to_owned(),
        client: Some("command line".to_owned()),
    })
}

fn token(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    let ops = admin_ops(config)?;
    match command {
        TokenCommand::Create {
            admin: _,
            service,
            name,
            days,
        } => {
            let scope = if service {
                ApiScope::Service
            } else {
                ApiScope::Admin
            };
            let (id, value) = ops.create_api_token(&name, days, scope)?;
            println!(
                "Created {} API token {id} ({name}), valid for {days} days. It is shown only once:",
                scope.as_str()
            );
            println!("{value}");
        }
        TokenCommand::List => {
            let now = ops.clock.now();
            println!("{:<6} {:<24} {:<8} STATE", "ID", "NAME", "KIND");
            for token in ops.api_tokens()? {
                let state = if token.revoked {
                    "revoked".to_owned()
                } else if token.expires_at <= now {
                    "expired".to_owned()
                } else {
                    format!(
                        "valid for {} more days",
                        (token.expires_at - now).div_ceil(86_400)
                    )
                };
                println!(
                    "{:<6} {:<24} {:<8} {state}",
                    token.id, token.name, token.scope
                );
            }
        }
        TokenCommand::Revoke { id } => {
            ops.revoke_api_token(id)?;
            println!("Token {id} is revoked.");
        }
    }
    Ok(())
}

async fn user(command: UserCommand, config: &Config) -> anyhow::Result<()> {
    let ops = admin_ops(config)?;
    match command {
        UserCommand::Add {
            name,
            admin,
            force_mfa,
            password_stdin,
        } => {
            crate::domain::validate_user_name(&name)?;
            let (password, one_time) = new_password(password_stdin)?;
            ops.create_user(NewAccount {
                name: name.clone(),
                password: password.clone(),
                is_admin: admin,
                force_mfa,
                must_change_password: one_time,
            })
            .await?;
            println!(
                "Created user {name}{}.",
                if admin { " (administrator)" } else { "" }
            );
            if one_time {
                println!("One-time password: {}", password.expose_secret());
                println!("{name} chooses a new password at the first sign-in.");
            }
        }
        UserCommand::List { json } => list(&ops, json)?,
        UserCommand::ForceMfa { name, off } => {
            let user = ops.user(&name)?;
            ops.set_force_mfa(&user, !off)?;
            println!(
                "MFA is {} for {}.",
                if off {
                    "no longer enforced"
                } else {
                    "now enforced"
                },
                user.name
            );
        }
        UserCommand::ResetMfa { name } => {
            let user = ops.user(&name)?;
            let removed = ops.reset_mfa(&user)?;
            println!(
                "Removed {removed} authenticator(s) of {}; their sessions have ended.",
                user.name
            );
        }
        UserCommand::Unlock { name } => {
            let user = ops.user(&name)?;
            ops.unlock(&user)?;
            println!("{} is unlocked.", user.name);
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let user = ops.user(&name)?;
            let (password, one_time) = new_password(password_stdin)?;
            let hash = ops.passwords.hash(password.clone()).await?;
            ops.set_password_blocking(&user, hash, one_time)?;
            println!("Password of {} set; their sessions have ended.", user.name);
            if one_time {
                println!("One-time password: {}", password.expose_secret());
            }
        }
    }
    Ok(())
}

/// A password from standard input, a terminal prompt, or generated (then it
/// is a one-time password the user must change).
fn new_password(from_stdin: bool) -> anyhow::Result<(SecretString, bool)> {
    if from_stdin {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            anyhow::bail!("no password on standard input");
        }
        return Ok((SecretString::from(password.to_owned()), false));
    }
    if std::io::stdin().is_terminal() {
        let first = zeroize::Zeroizing::new(rpassword::prompt_password("New password: ")?);
        let second = zeroize::Zeroizing::new(rpassword::prompt_password("New password again: ")?);
        if *first != *second {
            anyhow::bail!("the two passwords differ");
        }
        return Ok((SecretString::from(first.to_string()), false));
    }
    Ok((
        SecretString::from(crate::random::readable_password(4)),
        true,
    ))
}

fn list(ops: &AdminOps, json: bool) -> anyhow::Result<()> {
    let users = ops.users()?;
    let now = ops.clock.now();
    if json {
        let rows: Vec<_> = users
            .iter()
            .map(|user| {
                serde_json::json!({
                    "name": user.name,
                    "admin": user.is_admin,
                    "force_mfa": user.force_mfa,
                    "authenticators": user.authenticators,
                    "devices": user.devices.iter().map(|(kind, serial)| {
                        serde_json::json!({ "kind": kind, "yubikey_serial": serial })
                    }).collect::<Vec<_>>(),
                    "failed_attempts": user.failed_attempts,
                    "locked_for_seconds": user.locked_until.saturating_sub(now),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<14} {:<10} {:<28} STATUS",
        "USER", "ROLE", "FORCE MFA", "AUTHENTICATORS"
    );
    for user in users {
        let status = if user.locked_until > now {
            format!("locked for {} s", user.locked_until - now)
        } else if user.failed_attempts > 0 {
            format!("{} failed attempt(s)", user.failed_attempts)
        } else {
            "active".to_owned()
        };
        println!(
            "{:<24} {:<14} {:<10} {:<28} {status}",
            user.name,
            if user.is_admin {
                "administrator"
            } else {
                "user"
            },
            if user.force_mfa { "yes" } else { "no" },
            if user.devices.is_empty() {
                "0".to_owned()
            } else {
                format!("{} ({})", user.authenticators, user.describe_devices())
            },
        );
    }
    Ok(())
}
