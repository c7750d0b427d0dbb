//! `device-tools login` against a real `gatehouse`, with a real headless
//! Chromium as the person's browser: the loopback flow (the browser opened
//! through `$BROWSER`) and the device flow, each for an account that must
//! first register an authenticator. The tool ends with a working token:
//! `whoami` names the right user, and `yubikey enroll` provisions a key
//! with it (through a real pcscd and a virtual card).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use data_encoding::BASE32_NOPAD;
use gatehouse_tests::oath_card::{OathCard, Touch};
use gatehouse_tests::pcscd::Pcscd;
use gatehouse_tests::vpcd::InsertedCard;
use gatehouse_tests::webdriver::{Browser, Chromedriver};
use gatehouse_tests::{GatehouseServer, Ran, ServerOptions, run};

const READER: &str = "Virtual PCD 00 00";

fn gatehouse_binary() -> PathBuf {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_device-tools")).with_file_name("gatehouse");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p server` (the test command does)",
        binary.display()
    );
    binary
}

fn screenshot_dir(name: &str) -> PathBuf {
    std::env::var_os("GATEHOUSE_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
        .join(name)
}

/// A server on the system clock: the tool polls in real time.
fn start_server() -> GatehouseServer {
    GatehouseServer::start(
        &gatehouse_binary(),
        ServerOptions {
            system_clock: true,
            ..ServerOptions::default()
        },
    )
}

fn add_user(server: &GatehouseServer, name: &str, password: &str) {
    use std::io::Write;
    let mut child = server
        .command(&gatehouse_binary())
        .args(["user", "add", name, "--force-mfa", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success());
}

fn device_tools() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_device-tools"));
    command
        .env_remove("GATEHOUSE_TOKEN")
        .env_remove("GATEHOUSE_URL")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER");
    command
}

/// `device-tools login` running in the background, its output collected.
struct Running {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Running {
    fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let mut all = sink.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        Running { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The rest of the line after `prefix`, once the tool has printed it.
    fn wait_for_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = self.output();
            if let Some(line) = output.lines().find_map(|line| line.strip_prefix(prefix)) {
                return line.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the tool never printed {prefix:?}:\n{output}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code().unwrap_or(-1), self.output());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the tool did not finish:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The six-digit code an authenticator app shows for the security key now.
fn current_code(security_key: &str) -> String {
    let now = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .as_secs();
    totp_rs::Builder::new()
        .with_secret(BASE32_NOPAD.decode(security_key.as_bytes()).unwrap())
        .build_noncompliant()
        .generate(now)
        .to_string()
}

/// On "Sign In for External Client": sign in as a user with MFA enforced
/// and no authenticator, register one, and arrive at the consent page.
async fn sign_in_and_register(browser: &mut Browser, name: &str, password: &str) {
    browser.wait_for_text("Sign In for External Client").await;
    browser.fill("User name", name).await;
    browser.fill("Password", password).await;
    browser.snap("external-sign-in").await;
    browser.click("Sign In").await;
    browser
        .wait_for_text("Multi-factor authentication (MFA) is enforced for your account")
        .await;
    browser.click("Show MFA Settings").await;
    browser
        .wait_for_text(&format!("MFA Settings for user {name}"))
        .await;
    browser.click("Initialize").await;
    browser.wait_for_text("– Authenticator").await;
    let key_element = browser.xpath("//*[@id='security-key']").await;
    let key: String = browser
        .text(&key_element)
        .await
        .split_whitespace()
        .collect();
    browser
        .fill("Authenticator code", &current_code(&key))
        .await;
    browser.click("Close").await;
}

/// The confirmation code the consent page shows.
async fn consent_code(browser: &mut Browser) -> String {
    let text = browser
        .wait_for_text("Check that your tool shows this confirmation code")
        .await;
    assert!(text.contains("Gatehouse device-tools"), "{text}");
    let element = browser.xpath("//*[@id='confirmation']").await;
    browser.text(&element).await.trim().to_owned()
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_flow_signs_the_tool_in_and_enroll_uses_its_token() {
    let server = start_server();
    let one_time = server.admin_password.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("config/gatehouse/credentials.json");
    // The "default browser": a script that hands the address to the test.
    let opened = dir.path().join("opened-url");
    let script = dir.path().join("browser.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut command = device_tools();
    command
        .args(["login", "--server", &server.url])
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("BROWSER", &script);
    let tool = Running::start(command);
    let printed_code = tool.wait_for_line("Confirmation code (the browser shows the same):");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !opened.exists() {
        assert!(
            Instant::now() < deadline,
            "the browser was not opened:\n{}",
            tool.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = std::fs::read_to_string(&opened).unwrap();
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", server.url)),
        "{url}"
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(tool.output().contains(&url), "the address is printed too");

    let driver = Chromedriver::start();
    let mut browser = driver.session(1000, 860).await;
    browser.save_screenshots_in(&screenshot_dir("external-client-loopback"));
    browser.goto(&url).await;
    // The bootstrap administrator: one-time password, MFA enforced.
    sign_in_and_register(&mut browser, "admin", &one_time).await;
    browser
        .wait_for_text("Change Password for user admin")
        .await;
    browser.fill("Current password", &one_time).await;
    browser.fill("New password", "a new admin password").await;
    browser
        .fill("New password again", "a new admin password")
        .await;
    browser.click("Change Password").await;
    let shown_code = consent_code(&mut browser).await;
    assert_eq!(
        shown_code, printed_code,
        "the page and the tool show one code"
    );
    browser.snap("consent").await;
    browser.click("Allow").await;
    let text = browser.wait_for_text("You can close this window").await;
    assert!(text.contains("signed in"), "{text}");
    browser.snap("done").await;

    let (code, output) = tool.finish();
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(&format!(
            "Signed in to {} as admin (scope: user admin)",
            server.url
        )),
        "{output}"
    );
    assert!(credentials.exists(), "{output}");
    assert_eq!(mode_of(&credentials), 0o600, "only its owner can read it");
    assert_eq!(mode_of(credentials.parent().unwrap()), 0o700);
    let env_config = dir.path().join("config");
    let whoami = run(device_tools()
        .args(["whoami"])
        .env("XDG_CONFIG_HOME", &env_config))
    .expect_code(0);
    assert!(
        whoami.stdout.contains(&format!(
            "admin on {} (scope: user admin, administrator)",
            server.url
        )),
        "{}",
        whoami.stdout
    );

    // A second sign-in from the same browser goes straight to consent; a
    // Deny there leaves the tool without tokens (and the saved ones alone).
    std::fs::remove_file(&opened).unwrap();
    let saved_before = std::fs::read_to_string(&credentials).unwrap();
    let mut command = device_tools();
    command
        .args(["login", "--server", &server.url])
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("BROWSER", &script);
    let denied = Running::start(command);
    denied.wait_for_line("Confirmation code (the browser shows the same):");
    while !opened.exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    browser
        .goto(&std::fs::read_to_string(&opened).unwrap())
        .await;
    consent_code(&mut browser).await;
    browser.click("Deny").await;
    browser.wait_for_text("You denied the request").await;
    let (code, output) = denied.finish();
    assert_eq!(code, 11, "{output}");
    assert!(output.contains("access_denied"), "{output}");
    assert_eq!(std::fs::read_to_string(&credentials).unwrap(), saved_before);

    // `yubikey enroll` works the admin API with the saved sign-in.
    add_user(&server, "gina", "gina-password-1");
    {
        let _pcscd = Pcscd::start();
        let _card = InsertedCard::insert(OathCard::new(Touch::Never));
        let enroll = wait_for_card(|| {
            run(device_tools()
                .args([
                    "yubikey",
                    "enroll",
                    "--server",
                    &server.url,
                    "--user",
                    "gina",
                    "--reader",
                    READER,
                    "--no-touch",
                ])
                .env("XDG_CONFIG_HOME", &env_config))
        });
        assert_eq!(enroll.code, Some(0), "{}{}", enroll.stdout, enroll.stderr);
        assert!(
            enroll.stdout.contains("is now gina's authenticator"),
            "{}",
            enroll.stdout
        );
    }
    let log = server.log();
    assert!(
        log.contains("admin via device-tools"),
        "the admin API names the person: {log}"
    );

    // Sign out: the server revokes the tokens, the file is gone.
    let saved = std::fs::read_to_string(&credentials).unwrap();
    let logout = run(device_tools()
        .args(["logout"])
        .env("XDG_CONFIG_HOME", &env_config))
    .expect_code(0);
    assert!(logout.stdout.contains("revoked"), "{}", logout.stdout);
    assert!(!credentials.exists());
    std::fs::create_dir_all(credentials.parent().unwrap()).unwrap();
    std::fs::write(&credentials, saved).unwrap();
    let revoked = run(device_tools()
        .args(["whoami"])
        .env("XDG_CONFIG_HOME", &env_config));
    assert_eq!(
        revoked.code,
        Some(11),
        "{}{}",
        revoked.stdout,
        revoked.stderr
    );
    browser.quit().await;
}

/// Retry `attempt` while pcscd has not yet seen the virtual card (exit 8).
fn wait_for_card(attempt: impl Fn() -> Ran) -> Ran {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ran = attempt();
        if ran.code != Some(8) || Instant::now() > deadline {
            return ran;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_flow_signs_the_tool_in_from_a_browser_anywhere() {
    let server = start_server();
    add_user(&server, "hank", "hank-password-1");
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("hank.json");
    let mut command = device_tools();
    command.args([
        "login",
        "--server",
        &server.url,
        "--device-code",
        "--credentials",
        credentials.to_str().unwrap(),
    ]);
    let tool = Running::start(command);
    let line = tool.wait_for_line("On any device, open ");
    let (verification, user_code) = line.split_once(" and enter the code: ").unwrap();
    assert_eq!(verification, format!("{}/device", server.url));

    let driver = Chromedriver::start();
    let mut browser = driver.session(1000, 860).await;
    browser.save_screenshots_in(&screenshot_dir("external-client-device"));
    browser.goto(verification).await;
    browser
        .wait_for_text("Enter it here to sign the tool in")
        .await;
    browser.fill("Code", user_code).await;
    browser.snap("device-code").await;
    browser.click("Continue").await;
    sign_in_and_register(&mut browser, "hank", "hank-password-1").await;
    assert_eq!(consent_code(&mut browser).await, user_code);
    browser.snap("consent").await;
    browser.click("Allow").await;
    browser.wait_for_text("You can close this window").await;
    browser.snap("done").await;

    let (code, output) = tool.finish();
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("as hank (scope: user)"), "{output}");
    assert!(output.contains("hank is not an administrator"), "{output}");
    let whoami = run(device_tools().args([
        "whoami",
        "--json",
        "--credentials",
        credentials.to_str().unwrap(),
    ]))
    .expect_code(0);
    let identity: serde_json::Value = serde_json::from_str(whoami.stdout.trim()).unwrap();
    assert_eq!(identity["user"], "hank");
    assert_eq!(identity["mfa"], true);

    // Denied: the tool learns it at its next poll, and saves nothing.
    let denied_file = dir.path().join("denied.json");
    let mut command = device_tools();
    command.args([
        "login",
        "--server",
        &server.url,
        "--device-code",
        "--credentials",
        denied_file.to_str().unwrap(),
    ]);
    let denied = Running::start(command);
    let line = denied.wait_for_line("(or open ");
    let complete = line.trim_end_matches(" directly)");
    browser.goto(complete).await;
    browser.click("Continue").await;
    consent_code(&mut browser).await;
    browser.click("Deny").await;
    browser.wait_for_text("You denied the request").await;
    let (code, output) = denied.finish();
    assert_eq!(code, 11, "{output}");
    assert!(output.contains("access_denied"), "{output}");
    assert!(!denied_file.exists());
    browser.quit().await;
}

#[test]
fn unreachable_servers_and_missing_sign_ins_are_explained() {
    // No server at all.
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("c.json");
    let unreachable = run(device_tools().args([
        "login",
        "--server",
        "http://127.0.0.1:9",
        "--no-browser",
        "--credentials",
        credentials.to_str().unwrap(),
    ]));
    assert_eq!(unreachable.code, Some(10), "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot reach the server"),
        "{}",
        unreachable.stderr
    );
    assert!(!credentials.exists());
    // Not signed in: enroll and whoami say what to do.
    let whoami =
        run(device_tools().args(["whoami", "--credentials", credentials.to_str().unwrap()]));
    assert_eq!(whoami.code, Some(11));
    assert!(
        whoami.stderr.contains("device-tools login"),
        "{}",
        whoami.stderr
    );
}
