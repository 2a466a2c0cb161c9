//! The trace viewer in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromedriver`, from the packages `chromium` and `chromium-driver`): after traffic the list
//! shows the traces; clicking the chain's row shows a waterfall of three nested spans across two
//! services; a search by debug id finds the debug trace. Screenshots of the list and of the
//! waterfall are left in the target directory (`viewer-list.png`, `viewer-screenshot.png`).
//!
//! Everything is local: the app on 127.0.0.1, chromedriver on a free 127.0.0.1 port, Chromium
//! with its background networking off and a fresh profile. The whole test is bounded.

#![allow(clippy::unwrap_used)]

mod support;
mod viewer_app;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use viewer_app::{DEBUG_ID, VIEWER};

/// The whole browser test, Chromium's start included.
const TEST_BUDGET: Duration = Duration::from_secs(40);
/// Longest wait for one thing on the page.
const PAGE_WAIT: Duration = Duration::from_secs(10);
const INSTALL_HINT: &str = "the browser test needs Debian's Chromium and its WebDriver: \
apt-get install -y chromium chromium-driver";

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// chromedriver, in its own process group; dropping it ends the group (the driver and the
/// browsers it started), also when the test fails.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(binary: &Path, log: &Path) -> Self {
        // A free loopback port: bound, read, released, then handed to chromedriver.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log_file = std::fs::File::create(log).expect("chromedriver log file");
        let child = std::os::unix::process::CommandExt::process_group(
            Command::new(binary)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log_file.try_clone().expect("log handle")))
                .stderr(Stdio::from(log_file)),
            0,
        )
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL_HINT}", binary.display()));
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh Chromium profile directory, removed when dropped.
struct Profile(PathBuf);

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-default-apps".to_owned(),
        "--disable-extensions".to_owned(),
        "--disable-domain-reliability".to_owned(),
        "--disable-client-side-phishing-detection".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-pings".to_owned(),
        "--window-size=1400,900".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let value = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// Connects to chromedriver once it listens (it takes a moment to start).
async fn connect(driver: &Driver, capabilities: Capabilities) -> Client {
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&driver.url())
            .await
        {
            Ok(client) => return client,
            Err(error) if tokio::time::Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("no WebDriver session from chromedriver: {error}"),
        }
    }
}

/// Polls `probe` until it returns `Some`, within [`PAGE_WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PAGE_WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {PAGE_WAIT:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The list's rows, once the list has rendered `count` of them.
async fn rows(client: &Client, count: usize) -> Vec<Element> {
    eventually(&format!("{count} trace rows"), || async {
        let ready = client
            .find(Locator::Css("body[data-ready='list']"))
            .await
            .is_ok();
        let rows = client
            .find_all(Locator::Css("#trace-list tr.trace-row"))
            .await
            .ok()?;
        (ready && rows.len() == count).then_some(rows)
    })
    .await
}

async fn attr(element: &Element, name: &str) -> String {
    element
        .attr(name)
        .await
        .expect("read an attribute")
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    // Cargo gives integration tests `<target>/tmp`; the artifacts go beside it.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "screenshots are PNG");
    let path = target_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

async fn drive(client: &Client, demo: &viewer_app::Demo, traffic: &viewer_app::Traffic) {
    // The mount point without a trailing slash: the page must still find its API.
    client
        .goto(&format!("http://{}{VIEWER}", demo.a))
        .await
        .expect("open the viewer");
    let listed = rows(client, 5).await;
    let mut ids = Vec::new();
    for row in &listed {
        ids.push(attr(row, "data-trace-id").await);
    }
    assert_eq!(
        ids,
        [
            traffic.debug,
            traffic.slow,
            traffic.failure,
            traffic.user,
            traffic.chain
        ]
        .map(|t| t.to_string()),
        "the most recent trace first"
    );
    let list_shot = screenshot(client, "viewer-list.png").await;

    // Open the chain: A's server span → A's client span → B's server span.
    client
        .find(Locator::Css(&format!(
            "tr.trace-row[data-trace-id='{}']",
            traffic.chain
        )))
        .await
        .expect("the chain's row")
        .click()
        .await
        .expect("click the chain's row");
    let spans = eventually("the waterfall of 3 spans", || async {
        client
            .find(Locator::Css("body[data-ready='trace']"))
            .await
            .ok()?;
        let rows = client
            .find_all(Locator::Css("#waterfall .span-row"))
            .await
            .ok()?;
        (rows.len() == 3).then_some(rows)
    })
    .await;
    let mut shape = Vec::new();
    for row in &spans {
        shape.push((
            attr(row, "data-depth").await,
            row.find(Locator::Css(".name"))
                .await
                .expect("a span name")
                .text()
                .await
                .expect("its text"),
            row.find(Locator::Css(".chip"))
                .await
                .expect("a service chip")
                .text()
                .await
                .expect("its text"),
        ));
    }
    let expected = [
        ("0", "GET /call/{*path}", "a"),
        ("1", "GET", "a"),
        ("2", "GET /hop", "b"),
    ]
    .map(|(d, n, s)| (d.to_owned(), n.to_owned(), s.to_owned()));
    assert_eq!(shape, expected);
    for pair in spans.windows(2) {
        assert_eq!(
            attr(&pair[1], "data-parent-span-id").await,
            attr(&pair[0], "data-span-id").await,
            "each row is the child of the one above"
        );
    }
    let bars = client
        .find_all(Locator::Css("#waterfall .bar"))
        .await
        .expect("bars");
    assert_eq!(bars.len(), 3, "one bar per span on the time axis");
    let shown_id = client
        .find(Locator::Id("trace-id-text"))
        .await
        .expect("the trace id box")
        .prop("value")
        .await
        .expect("its value");
    assert_eq!(
        shown_id.as_deref(),
        Some(traffic.chain.to_string().as_str())
    );
    // Open B's span: its attributes and the A server span's events are there to read.
    spans[2].click().await.expect("open B's span");
    let details = client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#waterfall .details"))
        .await
        .expect("span details")
        .text()
        .await
        .expect("their text");
    assert!(
        details.contains("http.route") && details.contains("/hop"),
        "{details}"
    );
    let shot = screenshot(client, "viewer-screenshot.png").await;

    // Back to the list, and search by debug id.
    client
        .find(Locator::Id("back"))
        .await
        .expect("the back link")
        .click()
        .await
        .expect("go back");
    rows(client, 5).await;
    client
        .find(Locator::Id("f-debug-id"))
        .await
        .expect("the debug id field")
        .send_keys(DEBUG_ID)
        .await
        .expect("type the debug id");
    client
        .find(Locator::Id("apply"))
        .await
        .expect("the search button")
        .click()
        .await
        .expect("search");
    let found = eventually("the debug search result", || async {
        let url = client.current_url().await.ok()?;
        if !url.fragment().unwrap_or_default().contains("debug_id=abc") {
            return None;
        }
        let rows = client
            .find_all(Locator::Css("#trace-list tr.trace-row"))
            .await
            .ok()?;
        (rows.len() == 1).then(|| rows.into_iter().next()).flatten()
    })
    .await;
    assert_eq!(
        attr(&found, "data-trace-id").await,
        traffic.debug.to_string()
    );
    assert_eq!(attr(&found, "data-debug").await, "true");
    let text = found.text().await.expect("the row's text");
    assert!(text.contains("debug: abc"), "{text}");
    eprintln!(
        "screenshots: {} and {}",
        list_shot.display(),
        shot.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_works_in_a_real_browser() {
    let chromium = on_path(&["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("Chromium not found on PATH; {INSTALL_HINT}"));
    let chromedriver = on_path(&["chromedriver"])
        .unwrap_or_else(|| panic!("chromedriver not found on PATH; {INSTALL_HINT}"));

    let demo = viewer_app::start(support::collector()).await;
    let traffic = viewer_app::send_traffic(&demo).await;

    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).expect("the test temp dir");
    let profile = Profile(tmp.join(format!(
        "viewer-chromium-{}-{}",
        std::process::id(),
        fastrand_suffix()
    )));
    let driver = Driver::start(&chromedriver, &tmp.join("viewer-chromedriver.log"));
    let run = async {
        let client = connect(&driver, capabilities(&chromium, &profile.0)).await;
        drive(&client, &demo, &traffic).await;
        client.close().await.expect("end the browser session");
    };
    tokio::time::timeout(TEST_BUDGET, run)
        .await
        .unwrap_or_else(|_| panic!("the browser test took longer than {TEST_BUDGET:?}"));
    drop(driver);
    drop(profile);
}

/// A suffix that keeps two runs' profile directories apart.
fn fastrand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
