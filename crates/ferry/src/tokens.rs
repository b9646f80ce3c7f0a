//! `ferry token`: API tokens for HTTP clients. The secret is printed once,
//! on the last line (so `$(ferry token create | tail -n1)` takes it), with
//! how to use it before.

use anyhow::{Context, Result};
use ferry_protocol::TokenInfo;
use serde_json::json;

use crate::cli::TokenAction;
use crate::manage::when;
use crate::output::shown;
use crate::session::Session;

/// `ferry token …`.
pub(crate) async fn token(session: &mut Session, action: TokenAction) -> Result<()> {
    let json = session.settings.json;
    match action {
        TokenAction::Create { label, expires } => {
            let expires_at = expires.map(|secs| {
                chrono::Utc::now()
                    .timestamp()
                    .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
            });
            let created = session
                .ready()
                .await?
                .create_token(&label, expires_at)
                .await;
            let (info, secret) = session.check(created)?;
            if json {
                let mut row = token_json(&info);
                row["token"] = json!(secret.to_string());
                println!("{row}");
                return Ok(());
            }
            let addr = session.addr().context("no hub address")?.to_owned();
            let scheme = if session.settings.tls {
                "https"
            } else {
                "http"
            };
            println!(
                "Token {} ({}), until {}. It acts as you; keep it secret. Use it as",
                info.id,
                if label.is_empty() {
                    "no label"
                } else {
                    label.as_str()
                },
                expires_at.map_or_else(|| "removed".to_owned(), |at| when(Some(at)))
            );
            // The hub's own certificate, which curl can check against the
            // copy the hub keeps as PEM (rather than skip the check, -k).
            let verify = if session.settings.tls {
                "--cacert cert.pem "
            } else {
                ""
            };
            println!(
                "  curl {verify}-H \"Authorization: Bearer $TOKEN\" {scheme}://{addr}/api/v1/files"
            );
            if session.settings.tls {
                println!(
                    "(cert.pem: the hub's DATA/tls/cert.pem, from its operator; or -k to skip the check)"
                );
            }
            println!(
                "or as the password for your handle in a WebDAV client ({scheme}://{addr}/dav/)."
            );
            println!("{secret}");
        }
        TokenAction::Ls => {
            let tokens = session.ready().await?.tokens().await;
            let tokens = session.check(tokens)?;
            if json {
                let rows: Vec<_> = tokens.iter().map(token_json).collect();
                println!("{}", serde_json::Value::Array(rows));
            } else if tokens.is_empty() {
                println!("No tokens (make one with `ferry token create`).");
            } else {
                println!("{:<10}  {:<16}  {:<16}  label", "id", "created", "expires");
                for token in &tokens {
                    println!(
                        "{:<10}  {:<16}  {:<16}  {}",
                        token.id,
                        when(Some(token.created_at)),
                        token
                            .expires_at
                            .map_or_else(|| "never".into(), |at| when(Some(at))),
                        shown(&token.label)
                    );
                }
            }
        }
        TokenAction::Rm { id } => {
            let removed = session.ready().await?.remove_token(&id).await;
            session.check(removed)?;
            println!("Removed token {}; it no longer works.", shown(&id));
        }
    }
    Ok(())
}

/// `ferry web`: the link, on the last line.
pub(crate) async fn web_link(session: &mut Session) -> Result<()> {
    let made = session.ready().await?.web_link().await;
    let (code, expires_at) = session.check(made)?;
    let addr = session.addr().context("no hub address")?.to_owned();
    let scheme = if session.settings.tls {
        "https"
    } else {
        "http"
    };
    let link = format!("{scheme}://{addr}/#signin={code}");
    if session.settings.json {
        println!("{}", json!({ "link": link, "expires": expires_at }));
        return Ok(());
    }
    println!(
        "Open this link in your browser to sign in as you (it works once, until {}, and replaces any link you had before):",
        when(Some(expires_at))
    );
    if session.settings.tls {
        println!("(the hub's certificate is its own: the browser asks you to accept it once)");
    }
    println!("{link}");
    Ok(())
}

fn token_json(token: &TokenInfo) -> serde_json::Value {
    json!({
        "id": token.id,
        "label": token.label,
        "created": token.created_at,
        "expires": token.expires_at,
    })
}
