//! The web page in a real browser: `browser/page.mjs` drives Debian's
//! chromium through playwright-core against a real hub, with a sign-in link
//! made by the binary (see that script for what it checks). Needs
//! `npm ci` in `browser/` and `chromium` (.ci/run installs both).

use std::path::Path;

use crate::support::{Home, TestHub, ferry, ferry_bin, run};

#[tokio::test]
async fn the_web_page_signs_in_shows_uploads_live_and_moves_files_both_ways() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "run `npm ci` in {} first (.ci/run does)",
        browser.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "apt-get install chromium"
    );
    for tls in [false, true] {
        let hub = TestHub::start_with(|c| c.tls = tls).await;
        let home = Home::new();
        let made = run(ferry(&home, &hub).args(["--name", "alice", "web"])).await;
        assert_eq!(made.code, 0, "{}", made.stderr);
        let link = made.stdout.lines().last().unwrap().to_owned();
        let scheme = if tls { "https" } else { "http" };
        assert!(
            link.starts_with(&format!("{scheme}://")) && link.contains("#signin=ferry_"),
            "{link}"
        );
        let work = tempfile::tempdir().unwrap();
        // The README's screenshot is this page (refreshed by setting the variable).
        let screenshot = std::env::var("FERRY_SCREENSHOT").ok().filter(|_| !tls);
        let flags = if tls { "[]" } else { "[\"--plaintext\"]" };
        let ran = run(tokio::process::Command::new("node")
            .arg(browser.join("page.mjs"))
            .current_dir(&browser)
            .env("FERRY_LINK", &link)
            .env("FERRY_WORK", work.path())
            .env("FERRY_BIN", ferry_bin())
            .env("FERRY_HUB", hub.addr.to_string())
            .env("FERRY_FLAGS", flags)
            .env("FERRY_CLIENT_HOME", home.path())
            .env("FERRY_SCREENSHOT", screenshot.unwrap_or_default())
            .kill_on_drop(true))
        .await;
        assert_eq!(ran.code, 0, "tls {tls}: {}{}", ran.stdout, ran.stderr);
        let listed = run(ferry(&home, &hub).args(["--name", "alice", "--json", "ls"])).await;
        assert!(listed.stdout.contains("picked.bin"), "{}", listed.stdout);
        assert_eq!(hub.leftovers(), 0);
        hub.stop().await;
    }
}
