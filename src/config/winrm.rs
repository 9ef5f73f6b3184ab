//! WinRM settings: how the runner reaches a Windows host (`WINRM_*`), and the transport and TLS
//! choices the WinRM client takes from them.

use std::collections::HashMap;
use std::net::IpAddr;
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
    /// `{host}` is replaced by the alert's host name, `{ip}` by the address chosen from its
    /// `host.ip` (see [`Self::ip_networks`]).
    pub endpoint_template: String,
    /// Which of the alert's `host.ip` addresses `{ip}` takes: the first inside one of these
    /// networks (`WINRM_IP_NETWORKS`, CIDR list); when empty, the first IPv4 address.
    pub ip_networks: Vec<IpNetwork>,
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
        let winrm_password = if needs_winrm {
            env.secret("WINRM_PASSWORD", "that account's password")?
        } else {
            env.secret_opt("WINRM_PASSWORD")?.unwrap_or_default()
        };
        Ok(WinRmSettings {
            endpoint_template: env.or("WINRM_ENDPOINT_TEMPLATE", "http://{host}:5985/wsman"),
            ip_networks: env
                .list("WINRM_IP_NETWORKS")
                .iter()
                .map(|n| IpNetwork::parse(n).map_err(|p| err("WINRM_IP_NETWORKS", p)))
                .collect::<Result<_, _>>()?,
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

    /// The WS-Management endpoint for a host: its `WINRM_HOST_MAP` entry, else the template with
    /// `{host}` and `{ip}` filled in from the alert (`ips`: its `host.ip` values).
    pub fn endpoint_for(&self, host: &str, ips: &[String]) -> Result<String, String> {
        if let Some(mapped) = self.host_map.get(&host.to_ascii_lowercase()) {
            return Ok(mapped.clone());
        }
        let mut endpoint = self.endpoint_template.replace("{host}", host);
        if endpoint.contains("{ip}") {
            let ip = self.pick_ip(ips).ok_or_else(|| {
                let within = if self.ip_networks.is_empty() {
                    " IPv4".to_string()
                } else {
                    " within WINRM_IP_NETWORKS".to_string()
                };
                format!(
                    "WINRM_ENDPOINT_TEMPLATE uses {{ip}}, but the alert carries no{within} host.ip for {host}"
                )
            })?;
            let shown = match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            endpoint = endpoint.replace("{ip}", &shown);
        }
        Ok(endpoint)
    }

    /// The address `{ip}` takes from the alert's `host.ip` values.
    pub fn pick_ip(&self, ips: &[String]) -> Option<IpAddr> {
        let parsed = ips.iter().filter_map(|ip| ip.trim().parse::<IpAddr>().ok());
        if self.ip_networks.is_empty() {
            parsed.into_iter().find(IpAddr::is_ipv4)
        } else {
            parsed
                .into_iter()
                .find(|ip| self.ip_networks.iter().any(|n| n.contains(*ip)))
        }
    }
}

/// An IP network in CIDR form (`10.20.0.0/16`, `fd00::/8`); a bare address is a /32 (/128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("expected a network such as 10.20.0.0/16, got {text:?}");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}
