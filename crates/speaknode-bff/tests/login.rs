//! `speaknode-bff login` as an operator runs it, against a real OpenID provider (npm
//! `oidc-provider` on loopback): the test reads the printed URL and plays the browser.

#[path = "oidc/harness.rs"]
mod oidc;

use std::process::Stdio;
use std::time::Duration;

use oidc::{CLIENT_ID, CLIENT_SECRET, Provider, RESOURCE, SCOPE, TempDir, stored_refresh_token};
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const BINARY: &str = env!("CARGO_BIN_EXE_speaknode-bff");

fn config_file(dir: &TempDir, issuer: &str) -> std::path::PathBuf {
    let path = dir.0.join("bff.toml");
    let toml = format!(
        r#"
        [upstream]
        issuer = "{issuer}"
        api_base = "http://127.0.0.1:9"
        client_id = "{CLIENT_ID}"
        client_secret = "{CLIENT_SECRET}"
        mode = "refresh_token"
        refresh_token_file = "{}"
        resource = "{RESOURCE}"
        scope = "{SCOPE}"
        "#,
        dir.0.join("refresh-token.json").display()
    );
    std::fs::write(&path, toml).expect("write the config");
    path
}

#[tokio::test]
async fn login_stores_a_private_refresh_token_and_prints_no_secret() {
    let idp = Provider::start().await;
    let dir = TempDir::new();
    let config = config_file(&dir, &idp.issuer);
    let mut login = tokio::process::Command::new(BINARY)
        .args(["login", "--config"])
        .arg(&config)
        .env_remove("SPEAKNODE_BFF_CLIENT_SECRET")
        .env_remove("SPEAKNODE_BFF_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run speaknode-bff login");
    let mut stdout = BufReader::new(login.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("the URL in time")
        .expect("stdout")
        .expect("a line with the URL");
    assert!(url.starts_with(&format!("{}/auth?", idp.issuer)), "{url}");
    for parameter in [
        "code_challenge_method=S256",
        "state=",
        "resource=",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A",
    ] {
        assert!(url.contains(parameter), "{parameter} missing: {url}");
    }

    let page = idp.authorize(&url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let status = tokio::time::timeout(Duration::from_secs(30), login.wait())
        .await
        .expect("login ends")
        .expect("exit status");
    let mut rest = String::new();
    while let Ok(Some(line)) = stdout.next_line().await {
        rest.push_str(&line);
    }
    let mut stderr = String::new();
    login
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("stderr");
    assert!(status.success(), "login failed: {stderr}");

    let path = dir.0.join("refresh-token.json");
    let token = stored_refresh_token(&path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for output in [&rest, &stderr] {
        assert!(!output.contains(&token), "the refresh token was printed");
        assert!(
            !output.contains(CLIENT_SECRET),
            "the client secret was printed"
        );
    }
    assert!(stderr.contains("Stored the refresh token"), "{stderr}");

    // The token works: the provider rotates it for the BFF's client.
    let (status, body) = idp.refresh_directly(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
