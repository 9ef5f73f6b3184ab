//! WinRM settings: how the runner reaches a Windows host (`WINRM_*`), and the transport and TLS
//! choices the WinRM client takes from them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::env::{ConfigError, Env, err};
use crate::secret::Secret;

/// How the client authenticates (winrm.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WinRmAuth {
    /// NTLM (`Negotiate` scheme) with message sealing over HTTP 5985: works on a stock host.
    Ntlm,
    /// HTTP Basic, meant for HTTPS 5986 (local accounts, `Auth/Basic=true`).
    #[default]
    Basic,
}

impl WinRmAuth {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ntlm" | "negotiate" => Some(Self::Ntlm),
            "basic" => Some(Self::Basic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ntlm => "ntlm",
            Self::Basic => "basic",
        }
    }
}

/// Certificate validation for HTTPS endpoints. Validation is on by default against the web PKI
/// roots; `ca_file` adds a PEM bundle (a host's self-signed or an internal CA's certificate);
/// `insecure` turns validation off, which only a lab should do, so it is logged as a warning
/// every time a client is built with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure: bool,
}

#[derive(Debug, Clone)]
pub struct WinRmSettings {
    /// `{host}` is replaced by the alert's host name.
    pub endpoint_template: String,
    /// Host name (case-insensitive) → endpoint URL, overriding the template.
    pub host_map: HashMap<String, String>,
    pub username: String,
    pub password: Secret,
    /// `ntlm` (message sealing over http, the default: what a stock host accepts) or `basic`
    /// (over https).
    pub transport: WinRmAuth,
    /// HTTPS certificate validation: a custom CA file, or the explicit insecure switch.
    pub tls: TlsOptions,
    pub operation_timeout: Duration,
    pub command_timeout: Duration,
    pub max_output_bytes: usize,
}

impl WinRmSettings {
    /// Reads `WINRM_*`. Credentials are required only when some host group runs on WinRM.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        // WinRM credentials are needed only when some host group runs on WinRM.
        let needs_winrm = super::RunnerSettings::lookup_uses_winrm(env.lookup);
        let winrm_password = match env.opt("WINRM_PASSWORD_FILE") {
            Some(path) => Secret::from_file(std::path::Path::new(&path))
                .map_err(|e| err("WINRM_PASSWORD_FILE", e.to_string()))?,
            None if needs_winrm => env.secret(
                "WINRM_PASSWORD",
                "that account's password (or WINRM_PASSWORD_FILE)",
            )?,
            None => Secret::new(env.or("WINRM_PASSWORD", "")),
        };
        Ok(WinRmSettings {
            endpoint_template: env.or("WINRM_ENDPOINT_TEMPLATE", "http://{host}:5985/wsman"),
            host_map: env.map("WINRM_HOST_MAP")?,
            username: if needs_winrm {
                env.required(
                    "WINRM_USERNAME",
                    "the account commands run as (DOMAIN\\user)",
                )?
            } else {
                env.or("WINRM_USERNAME", "")
            },
            password: winrm_password,
            transport: {
                let t = env.or("WINRM_TRANSPORT", "ntlm");
                WinRmAuth::parse(&t).ok_or_else(|| {
                    err(
                        "WINRM_TRANSPORT",
                        format!("expected ntlm or basic, got {t:?}"),
                    )
                })?
            },
            tls: TlsOptions {
                ca_file: env.opt("WINRM_CA_FILE").map(PathBuf::from),
                insecure: env.bool("WINRM_INSECURE", false)?,
            },
            operation_timeout: env.secs("WINRM_OPERATION_TIMEOUT_SECS", 20.0)?,
            command_timeout: env.secs("WINRM_COMMAND_TIMEOUT_SECS", 300.0)?,
            max_output_bytes: env.num(
                "WINRM_MAX_OUTPUT_BYTES",
                1_000_000usize,
                "a number of bytes",
            )?,
        })
    }

    pub fn endpoint_for(&self, host: &str) -> String {
        self.host_map
            .get(&host.to_ascii_lowercase())
            .cloned()
            .unwrap_or_else(|| self.endpoint_template.replace("{host}", host))
    }
}
