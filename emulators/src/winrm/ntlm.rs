//! NTLM as a Windows host does it over HTTP (winrm.md §3.2–§3.3), server side through `sspi`'s
//! NTLM acceptor: the handshake legs on one connection's security context, and the
//! `multipart/encrypted` HTTP-SPNEGO-session-encrypted framing of sealed bodies both ways. The
//! contexts themselves live in `Shared` (`state.rs`), one per client address.

use std::net::SocketAddr;

use base64::Engine as _;
use sspi::{
    AuthIdentity, BufferType, CredentialUse, DataRepresentation, EncryptionFlags, Ntlm,
    SecurityBuffer, SecurityBufferRef, SecurityStatus, ServerRequestFlags, Sspi, SspiImpl,
    Username,
};

use super::state::{NtlmConn, Shared};

pub(super) enum NegotiateLeg {
    Challenge(Vec<u8>),
    Authenticated,
    Denied,
}

pub(super) fn with_conn<R>(
    shared: &Shared,
    peer: SocketAddr,
    f: impl FnOnce(&mut NtlmConn) -> R,
) -> Option<R> {
    let mut map = shared.ntlm.lock().unwrap_or_else(|p| p.into_inner());
    map.get_mut(&peer).map(f)
}

/// One leg of the NTLM handshake on this connection: a negotiate message starts a fresh
/// context (also on an already authenticated connection: the client re-authenticates), an
/// authenticate message finishes it.
pub(super) fn negotiate_leg(shared: &Shared, peer: SocketAddr, token: &str) -> NegotiateLeg {
    let Ok(msg) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return NegotiateLeg::Denied;
    };
    let kind = ntlm_message_type(&msg);
    let mut map = shared.ntlm.lock().unwrap_or_else(|p| p.into_inner());
    match kind {
        Some(1) => {
            let identity = AuthIdentity {
                username: match Username::parse(&shared.cfg.username) {
                    Ok(u) => u,
                    Err(_) => return NegotiateLeg::Denied,
                },
                password: shared.cfg.password.clone().into(),
            };
            let mut ntlm = Ntlm::new();
            let Ok(creds) = ntlm
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Inbound)
                .with_auth_data(&identity)
                .execute(&mut ntlm)
            else {
                return NegotiateLeg::Denied;
            };
            let mut conn = NtlmConn {
                ntlm,
                creds: creds.credentials_handle,
                authenticated: false,
            };
            match accept(&mut conn, msg) {
                Ok((_, out)) => {
                    map.insert(peer, conn);
                    NegotiateLeg::Challenge(out)
                }
                Err(_) => NegotiateLeg::Denied,
            }
        }
        Some(3) => {
            let Some(mut conn) = map.remove(&peer) else {
                return NegotiateLeg::Denied;
            };
            // sspi's acceptor checks the password against the user the client names; whether
            // that is our account is the host's business.
            let user_ok = ntlm_user(&msg).is_some_and(|u| {
                let expected = shared
                    .cfg
                    .username
                    .rsplit('\\')
                    .next()
                    .unwrap_or(&shared.cfg.username);
                let got = u.rsplit('\\').next().unwrap_or(&u);
                let got = got.split('@').next().unwrap_or(got);
                got.eq_ignore_ascii_case(expected.split('@').next().unwrap_or(expected))
            });
            if !user_ok {
                return NegotiateLeg::Denied;
            }
            match accept(&mut conn, msg) {
                Ok((status, _)) => {
                    let done = if matches!(
                        status,
                        SecurityStatus::CompleteNeeded | SecurityStatus::CompleteAndContinue
                    ) {
                        conn.ntlm.complete_auth_token(&mut []).is_ok()
                    } else {
                        status == SecurityStatus::Ok
                    };
                    if !done {
                        return NegotiateLeg::Denied;
                    }
                    conn.authenticated = true;
                    map.insert(peer, conn);
                    NegotiateLeg::Authenticated
                }
                Err(_) => NegotiateLeg::Denied,
            }
        }
        _ => NegotiateLeg::Denied,
    }
}

fn accept(conn: &mut NtlmConn, msg: Vec<u8>) -> Result<(SecurityStatus, Vec<u8>), sspi::Error> {
    let mut input = vec![SecurityBuffer::new(msg, BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let builder = conn
        .ntlm
        .accept_security_context()
        .with_credentials_handle(&mut conn.creds)
        .with_context_requirements(ServerRequestFlags::empty())
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output);
    let r = conn
        .ntlm
        .accept_security_context_impl(builder)?
        .resolve_to_result()?;
    Ok((r.status, std::mem::take(&mut output[0].buffer)))
}

/// The NTLMSSP message type (1 negotiate, 2 challenge, 3 authenticate).
fn ntlm_message_type(msg: &[u8]) -> Option<u32> {
    if msg.len() < 12 || &msg[..8] != b"NTLMSSP\0" {
        return None;
    }
    Some(u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]))
}

/// `DOMAIN\user` from an authenticate message (MS-NLMP 2.2.1.3: DomainNameFields at 28,
/// UserNameFields at 36, UTF-16LE when NEGOTIATE_UNICODE is set).
fn ntlm_user(msg: &[u8]) -> Option<String> {
    let field = |at: usize| -> Option<&[u8]> {
        let len = u16::from_le_bytes([*msg.get(at)?, *msg.get(at + 1)?]) as usize;
        let off = u32::from_le_bytes(msg.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        msg.get(off..off + len)
    };
    let flags = u32::from_le_bytes(msg.get(60..64)?.try_into().ok()?);
    let text = |b: &[u8]| -> String {
        if flags & 1 != 0 {
            let units: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    };
    let domain = text(field(28)?);
    let user = text(field(36)?);
    Some(if domain.is_empty() {
        user
    } else {
        format!("{domain}\\{user}")
    })
}

pub(super) const ENCRYPTED_CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

/// Seals `plain` and frames it (MS-WSMV 2.2.9.1.1; written apart from the client's framing so a
/// bug cannot hide on both sides).
pub(super) fn seal(ntlm: &mut Ntlm, plain: &[u8]) -> Result<Vec<u8>, sspi::Error> {
    let mut data = plain.to_vec();
    let mut sig = [0u8; 16];
    let mut bufs = [
        SecurityBufferRef::token_buf(&mut sig),
        SecurityBufferRef::data_buf(&mut data),
    ];
    ntlm.encrypt_message(EncryptionFlags::empty(), &mut bufs)?;
    let mut out = format!(
        "--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={}\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
        plain.len()
    )
    .into_bytes();
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&sig);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"--Encrypted Boundary--\r\n");
    Ok(out)
}

/// Unframes and unseals a request body, checking `Length=` against what was decrypted.
pub(super) fn unseal(ntlm: &mut Ntlm, body: &[u8]) -> Result<Vec<u8>, String> {
    const SEP: &[u8] = b"--Encrypted Boundary\r\n";
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = find(body, SEP, pos) {
        let header_start = h + SEP.len();
        let d = find(body, SEP, header_start).ok_or("no data part")?;
        let header = String::from_utf8_lossy(&body[header_start..d]);
        if !header.contains("\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n") {
            return Err(format!("bad part header {header:?}"));
        }
        let length: usize = header
            .split("Length=")
            .nth(1)
            .and_then(|l| l.trim().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|l| l.parse().ok())
            .ok_or("no Length=")?;
        let data_start = d + SEP.len();
        let octet = b"\tContent-Type: application/octet-stream\r\n";
        let rest = body[data_start..]
            .strip_prefix(&octet[..])
            .ok_or("no octet-stream header")?;
        if rest.len() < 4 {
            return Err("truncated".into());
        }
        let sig_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let rest = &rest[4..];
        if rest.len() < sig_len + length {
            return Err("shorter than Length=".into());
        }
        let mut sig = rest[..sig_len].to_vec();
        let mut data = rest[sig_len..sig_len + length].to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut sig),
            SecurityBufferRef::data_buf(&mut data),
        ];
        ntlm.decrypt_message(&mut bufs).map_err(|e| e.to_string())?;
        let plain = bufs[1].data();
        if plain.len() != length {
            return Err("length mismatch after unsealing".into());
        }
        out.extend_from_slice(plain);
        pos = body.len() - rest[sig_len + length..].len();
    }
    if !body[pos..].starts_with(b"--Encrypted Boundary--") {
        return Err("no closing boundary".into());
    }
    Ok(out)
}
