//! The HTTP side of the WinRM emulator (`POST /wsman`): injected failures, Basic and NTLM
//! authentication with the 401s Windows gives, sealed and plaintext bodies, the SOAP content type,
//! and handing each envelope to `soap.rs` and `shell.rs` — the answer held first for `w:TimedOut`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;

use super::ntlm::{ENCRYPTED_CONTENT_TYPE, NegotiateLeg, negotiate_leg, seal, unseal, with_conn};
use super::shell::dispatch;
use super::soap::{Reply, Request, SOAP_CONTENT_TYPE};
use super::state::{EmulatorAuth, Shared, WinRmEmulatorConfig, recorded};
use super::tls::Peer;

// ---------------------------------------------------------------------------------------------
// HTTP handling.

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fail = shared.rec.update(|s| {
        if s.fail_next > 0 {
            s.fail_next -= 1;
            let status = s.fail_status;
            s.requests.push(recorded(None, None, None, status, None));
            Some(status)
        } else {
            None
        }
    });
    if let Some(status) = fail {
        return empty(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if shared
        .forget_ntlm
        .swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        shared
            .ntlm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
    let auth = *shared.auth.lock().unwrap_or_else(|p| p.into_inner());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("");
    let (scheme, token) = authorization
        .split_once(' ')
        .map(|(a, b)| (a, b.trim()))
        .unwrap_or((authorization, ""));

    if auth.negotiate && scheme.eq_ignore_ascii_case("negotiate") {
        match negotiate_leg(&shared, peer, token) {
            NegotiateLeg::Challenge(tok) => {
                shared
                    .rec
                    .update(|s| s.requests.push(recorded(None, None, None, 401, None)));
                return Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header(
                        header::WWW_AUTHENTICATE,
                        format!(
                            "Negotiate {}",
                            base64::engine::general_purpose::STANDARD.encode(tok)
                        ),
                    )
                    .header(header::CONTENT_LENGTH, "0")
                    .body(Body::empty())
                    .expect("static response");
            }
            NegotiateLeg::Denied => return unauthorized(&shared, auth),
            NegotiateLeg::Authenticated => {
                shared.rec.update(|s| s.ntlm_logons += 1);
                if body.is_empty() {
                    // pywinrm and triage-bot send the authenticate message with no body.
                    shared
                        .rec
                        .update(|s| s.requests.push(recorded(None, None, None, 200, None)));
                    return empty(StatusCode::OK);
                }
            }
        }
    } else if scheme.eq_ignore_ascii_case("basic") {
        if !auth.basic || !auth.allow_unencrypted || !basic_ok(&shared.cfg, token) {
            return unauthorized(&shared, auth);
        }
        return serve_plain(&shared, &headers, &body).await;
    }

    // No (usable) Authorization header: only a connection authenticated with NTLM may go on.
    let authenticated = shared
        .ntlm
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&peer)
        .is_some_and(|c| c.authenticated);
    if !authenticated || !auth.negotiate {
        return unauthorized(&shared, auth);
    }
    let sealed = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("multipart/encrypted")
                && ct.contains("protocol=\"application/http-spnego-session-encrypted\"")
        });
    if !sealed {
        if !auth.allow_unencrypted {
            // AllowUnencrypted=false: Windows keeps answering 401 (hashicorp/packer#6205).
            return unauthorized(&shared, auth);
        }
        return serve_plain(&shared, &headers, &body).await;
    }
    let plain = match with_conn(&shared, peer, |c| unseal(&mut c.ntlm, &body)) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "winrm emulator: cannot unseal a request");
            shared
                .rec
                .update(|s| s.requests.push(recorded(None, None, None, 400, None)));
            return empty(StatusCode::BAD_REQUEST);
        }
        None => return unauthorized(&shared, auth),
    };
    shared.rec.update(|s| s.sealed_requests += 1);
    let host = host_of(&headers);
    let (status, xml, hold) = process(&shared, &String::from_utf8_lossy(&plain), &host, true);
    let sealed_body = match with_conn(&shared, peer, |c| seal(&mut c.ntlm, xml.as_bytes())) {
        Some(Ok(b)) => b,
        _ => return empty(StatusCode::INTERNAL_SERVER_ERROR),
    };
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ENCRYPTED_CONTENT_TYPE)
        .body(Body::from(sealed_body))
        .expect("static response")
}

fn host_of(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

fn unauthorized(shared: &Shared, auth: EmulatorAuth) -> Response {
    shared.rec.update(|s| {
        s.auth_failures += 1;
        s.requests.push(recorded(None, None, None, 401, None));
    });
    let mut b = Response::builder().status(StatusCode::UNAUTHORIZED);
    if auth.negotiate {
        b = b.header(header::WWW_AUTHENTICATE, "Negotiate");
    }
    if auth.basic {
        b = b.header(header::WWW_AUTHENTICATE, r#"Basic realm="WSMAN""#);
    }
    b.header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("static response")
}

/// A plaintext SOAP request (Basic, or NTLM with AllowUnencrypted=true).
async fn serve_plain(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Response {
    if !soap_content_type(headers) {
        shared
            .rec
            .update(|s| s.requests.push(recorded(None, None, None, 415, None)));
        return empty(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let host = host_of(headers);
    let (status, xml, hold) = process(shared, &String::from_utf8_lossy(body), &host, false);
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    soap(status, xml)
}

/// Parses, validates and dispatches one SOAP request; returns the status, the answer and how
/// long to hold it (the `w:TimedOut` case).
fn process(
    shared: &Shared,
    text: &str,
    host: &str,
    sealed: bool,
) -> (StatusCode, String, Option<Duration>) {
    let outcome = match Request::parse(text) {
        Ok(req) => shared.rec.update(|s| {
            let reply = dispatch(&shared.cfg, s, &req, host);
            if let Some(last) = s.requests.last_mut() {
                last.sealed = sealed;
            }
            reply
        }),
        Err(fault) => {
            let reply = Reply::Fault(*fault);
            shared.rec.update(|s| {
                let mut r = recorded(None, None, None, 500, reply.wsman_code());
                r.sealed = sealed;
                s.requests.push(r);
            });
            reply
        }
    };
    let machine = &shared.cfg.host_name;
    match outcome {
        Reply::Ok(xml) => (StatusCode::OK, xml, None),
        Reply::Fault(f) => (StatusCode::INTERNAL_SERVER_ERROR, f.render(machine), None),
        Reply::TimedOut { fault, hold } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            fault.render(machine),
            Some(hold),
        ),
    }
}

fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, "0")
        .body(Body::empty())
        .expect("static response")
}

fn soap(status: StatusCode, xml: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, SOAP_CONTENT_TYPE)
        .body(Body::from(xml))
        .expect("static response")
}

fn basic_ok(cfg: &WinRmEmulatorConfig, token: &str) -> bool {
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, pass)) = decoded.split_once(':') else {
        return false;
    };
    user.eq_ignore_ascii_case(&cfg.username) && pass == cfg.password
}

/// `application/soap+xml`, with a UTF-8 charset when one is given.
fn soap_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/soap+xml") {
        return false;
    }
    parts.all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}
