//! A small W3C WebDriver client, enough to drive a real headless Chromium
//! (through Debian's `chromedriver`) by the labels a person reads, and to
//! take screenshots.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver` on a free loopback port, stopped when dropped.
pub struct Chromedriver {
    child: Child,
    pub url: String,
    profile: tempfile::TempDir,
}

impl Chromedriver {
    pub fn start() -> Chromedriver {
        let binary = crate::require_tool("chromedriver", "chromium-driver");
        crate::require_tool("chromium", "chromium");
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            // Its own process group, so that stopping it also stops the
            // browsers it started, even when a test panicked mid-session.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Chromedriver {
            child,
            url,
            profile: tempfile::tempdir().expect("browser profile directory"),
        }
    }

    /// Open a headless browser window of `width`×`height` pixels.
    pub async fn session(&self, width: u32, height: u32) -> Browser {
        let http = reqwest::Client::new();
        let profile = self.profile.path().join(format!(
            "profile-{}",
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
                }
            }
        });
        let response: Value = http
            .post(format!("{}/session", self.url))
            .json(&capabilities)
            .send()
            .await
            .expect("create a WebDriver session")
            .json()
            .await
            .expect("WebDriver answer");
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id from chromedriver: {response}"))
            .to_owned();
        Browser {
            http,
            base: format!("{}/session/{id}", self.url),
            screenshots: None,
            step: 0,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// One browser window.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    screenshots: Option<PathBuf>,
    step: u32,
}

/// An element on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {path}: {error}"),
        }
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request
            .send()
            .await
            .expect("WebDriver request")
            .json()
            .await
            .expect("WebDriver answer");
        if response["value"]["error"].is_string() {
            return Err(response["value"].to_string());
        }
        Ok(response["value"].clone())
    }

    /// Find an element and act on it, again while the page is still
    /// changing under it (a stale or not yet interactable element).
    async fn on_element(&self, xpath: &str, action: &str, body: Option<Value>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let element = self.xpath(xpath).await;
            let method = if body.is_some() {
                reqwest::Method::POST
            } else {
                reqwest::Method::GET
            };
            match self
                .try_call(
                    method,
                    &format!("/element/{}/{action}", element.0),
                    body.clone(),
                )
                .await
            {
                Ok(value) => return value,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!("WebDriver {action} on {xpath}: {error}"),
            }
        }
    }

    /// Wait until the page's visible text contains `needle`; returns it.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self
                .on_element("//body", "text", None)
                .await
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the page never said {needle:?}; it says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Save a numbered screenshot of every `snap` in `dir`.
    pub fn save_screenshots_in(&mut self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("screenshot directory");
        self.screenshots = Some(dir.to_owned());
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_path(&self) -> String {
        let url = self.call(reqwest::Method::GET, "/url", None).await;
        let url = url.as_str().unwrap_or_default();
        reqwest::Url::parse(url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default()
    }

    pub async fn xpath(&self, xpath: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response: Value = self
                .http
                .post(format!("{}/element", self.base))
                .json(&json!({ "using": "xpath", "value": xpath }))
                .send()
                .await
                .expect("WebDriver request")
                .json()
                .await
                .expect("WebDriver answer");
            if let Some(id) = response["value"][ELEMENT_KEY].as_str() {
                return Element(id.to_owned());
            }
            if Instant::now() > deadline {
                let source = self.source().await;
                panic!("no element {xpath} on the page:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, label: &str, text: &str) {
        // The input a `<label>` with this text is for.
        let xpath = format!("//input[@id=//label[normalize-space()='{label}']/@for]");
        self.on_element(&xpath, "clear", Some(json!({}))).await;
        self.on_element(&xpath, "value", Some(json!({ "text": text })))
            .await;
    }

    pub async fn click(&self, button_text: &str) {
        let xpath = format!("//button[normalize-space()='{button_text}']");
        self.on_element(&xpath, "click", Some(json!({}))).await;
    }

    pub async fn text(&self, element: &Element) -> String {
        let value = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", element.0),
                None,
            )
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    pub async fn source(&self) -> String {
        let value = self.call(reqwest::Method::GET, "/source", None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await;
        decode_png(&value)
    }

    /// A PNG of one element.
    pub async fn element_screenshot(&self, element: &Element) -> Vec<u8> {
        let value = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/screenshot", element.0),
                None,
            )
            .await;
        decode_png(&value)
    }

    /// Save a screenshot named after the step, when screenshots are on.
    pub async fn snap(&mut self, name: &str) -> Option<PathBuf> {
        let dir = self.screenshots.clone()?;
        self.step += 1;
        let path = dir.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, self.screenshot().await).expect("write screenshot");
        Some(path)
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

fn decode_png(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap_or_default())
        .expect("screenshot is base64")
}
