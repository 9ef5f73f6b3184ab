//! The shared rules for reading settings: trimming, defaults, numbers, durations, booleans,
//! lists, maps, URLs and credentials — one copy, used by every settings section. Every error
//! names the variable and what was expected, and never echoes a secret or a URL.

use std::collections::HashMap;
use std::time::Duration;

use super::{HttpAuth, TlsOptions};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

/// Reads variables through a lookup function, with the parsing rules every section shares.
pub struct Env<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    pub fn opt(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn or(&self, var: &str, default: &str) -> String {
        self.opt(var).unwrap_or_else(|| default.to_string())
    }

    pub fn required(&self, var: &str, what: &str) -> Result<String, ConfigError> {
        self.opt(var)
            .ok_or_else(|| err(var, format!("is required: {what}")))
    }

    pub fn secret(&self, var: &str, what: &str) -> Result<Secret, ConfigError> {
        self.secret_opt(var)?
            .ok_or_else(|| err(var, format!("is required: {what} (or {var}_FILE)")))
    }

    /// A secret from `{var}_FILE` (its first line: Docker and Kubernetes secrets are files), else
    /// from `var`; `None` when neither is set. Errors name the variable, never the value.
    pub fn secret_opt(&self, var: &str) -> Result<Option<Secret>, ConfigError> {
        let file_var = format!("{var}_FILE");
        match self.opt(&file_var) {
            Some(path) => Secret::from_file(std::path::Path::new(&path))
                .map(Some)
                .map_err(|e| err(&file_var, e.to_string())),
            None => Ok(self.opt(var).map(Secret::new)),
        }
    }

    pub fn url(&self, var: &str, default: Option<&str>) -> Result<String, ConfigError> {
        let v = match default {
            Some(d) => self.or(var, d),
            None => self.required(var, "an http(s) URL")?,
        };
        let parsed = reqwest::Url::parse(&v)
            .map_err(|e| err(var, format!("expected an http(s) URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(err(
                var,
                format!("expected an http(s) URL, got scheme {:?}", parsed.scheme()),
            ));
        }
        // A URL with credentials would end up in error messages and logs.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(err(
                var,
                "must not contain credentials; use the matching _USERNAME/_PASSWORD or _API_KEY variables",
            ));
        }
        Ok(v.trim_end_matches('/').to_string())
    }

    pub fn num<T: std::str::FromStr>(
        &self,
        var: &str,
        default: T,
        what: &str,
    ) -> Result<T, ConfigError> {
        match self.opt(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| err(var, format!("expected {what}, got {v:?}"))),
        }
    }

    pub fn secs(&self, var: &str, default: f64) -> Result<Duration, ConfigError> {
        let v: f64 = self.num(var, default, "a number of seconds")?;
        if !(v.is_finite() && v > 0.0) {
            return Err(err(
                var,
                format!("expected a positive number of seconds, got {v}"),
            ));
        }
        Ok(Duration::from_secs_f64(v))
    }

    pub fn bool(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.opt(var).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(err(var, format!("expected true or false, got {v:?}"))),
        }
    }

    pub fn list(&self, var: &str) -> Vec<String> {
        self.opt(var)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `key=value,key=value`, keys lowercased.
    pub fn map(&self, var: &str) -> Result<HashMap<String, String>, ConfigError> {
        let mut out = HashMap::new();
        for pair in self.list(var) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                err(
                    var,
                    format!("expected key=value pairs separated by commas, got {pair:?}"),
                )
            })?;
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        Ok(out)
    }

    /// `{prefix}_CA_FILE` (PEM, one or more certificates, trusted besides the built-in and the
    /// operating system's roots) and `{prefix}_INSECURE` (no validation: labs only).
    pub fn tls(&self, prefix: &str) -> Result<TlsOptions, ConfigError> {
        let ca_var = format!("{prefix}_CA_FILE");
        let ca_file = self.opt(&ca_var).map(std::path::PathBuf::from);
        if let Some(path) = &ca_file {
            let text = std::fs::read(path)
                .map_err(|e| err(&ca_var, format!("cannot read {}: {e}", path.display())))?;
            if !String::from_utf8_lossy(&text).contains("-----BEGIN CERTIFICATE-----") {
                return Err(err(
                    &ca_var,
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
        }
        Ok(TlsOptions {
            ca_file,
            insecure: self.bool(&format!("{prefix}_INSECURE"), false)?,
        })
    }

    /// API key, or username + password, or nothing.
    pub fn auth(&self, prefix: &str) -> Result<HttpAuth, ConfigError> {
        let key_var = format!("{prefix}_API_KEY");
        let user_var = format!("{prefix}_USERNAME");
        let pass_var = format!("{prefix}_PASSWORD");
        if let Some(k) = self.secret_opt(&key_var)? {
            return Ok(HttpAuth::ApiKey(k));
        }
        match (self.opt(&user_var), self.secret_opt(&pass_var)?) {
            (Some(username), Some(password)) => Ok(HttpAuth::Basic { username, password }),
            (Some(_), None) => Err(err(
                &pass_var,
                format!("is required when {user_var} is set"),
            )),
            (None, Some(_)) => Err(err(
                &user_var,
                format!("is required when {pass_var} is set"),
            )),
            (None, None) => Ok(HttpAuth::None),
        }
    }
}

/// The error for `var`, saying what is wrong with it.
pub fn err(var: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_string(),
        problem: problem.into(),
    }
}
