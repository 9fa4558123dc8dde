//! The HTTP side's web configuration, in the Prometheus exporter-toolkit file format
//! (`--web-config FILE`), so the sensor fits existing Prometheus deployments:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/shadowtap/tls.crt
//!   key_file: /etc/shadowtap/tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...        # bcrypt hash, as `htpasswd -nBC 10 "" | tr -d ':\n'` prints
//! ```
//!
//! The supported subset is TLS with a certificate and key (PEM) and basic authentication with
//! bcrypt hashes; other keys are rejected with their name rather than silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `tls_server_config`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServer {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// The web configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Serve HTTPS with this certificate.
    pub tls_server_config: Option<TlsServer>,
    /// User name → bcrypt hash; when non-empty every request needs basic authentication.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

impl WebConfig {
    /// Reads the file; relative certificate paths are taken from the file's folder.
    ///
    /// # Errors
    /// A message naming the file and what is wrong.
    pub fn read(path: &Path) -> Result<WebConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: WebConfig = serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(t) = c.tls_server_config.as_mut() {
            t.cert_file = base.join(&t.cert_file);
            t.key_file = base.join(&t.key_file);
        }
        for (user, hash) in &c.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(format!("{}: basic_auth_users.{user}: not a bcrypt hash", path.display()));
            }
        }
        Ok(c)
    }
}

/// Checks `Authorization: Basic …` headers against the configured users. A verified
/// (user, password) pair is remembered by its SHA-256, so that a scrape every few seconds does
/// not pay a bcrypt verification each time.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<Vec<[u8; 32]>>,
}

/// Verified credentials remembered at most.
const MAX_VERIFIED: usize = 16;

impl BasicAuth {
    /// Authentication for `users` (none: every request passes).
    pub fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth { users, verified: Mutex::new(Vec::new()) }
    }

    /// Whether requests need credentials at all.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Does the `Authorization` header value grant access?
    pub fn allows(&self, header: Option<&str>) -> bool {
        use base64::Engine;
        if !self.required() {
            return true;
        }
        let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ")) else { return false };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
        let Ok(text) = String::from_utf8(raw) else { return false };
        let Some((user, pass)) = text.split_once(':') else { return false };
        let Some(hash) = self.users.get(user) else { return false };
        let id: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if self.verified.lock().map(|v| v.contains(&id)).unwrap_or(false) {
            return true;
        }
        let ok = bcrypt::verify(pass, hash).unwrap_or(false);
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                if v.len() >= MAX_VERIFIED {
                    v.remove(0);
                }
                v.push(id);
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn header(user_pass: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
    }

    #[test]
    fn basic_auth_with_bcrypt_hashes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new([("prometheus".to_string(), hash)].into_iter().collect());
        assert!(auth.required());
        assert!(auth.allows(Some(&header("prometheus:s3cret"))));
        assert!(auth.allows(Some(&header("prometheus:s3cret"))), "remembered");
        assert!(!auth.allows(Some(&header("prometheus:wrong"))));
        assert!(!auth.allows(Some(&header("other:s3cret"))));
        assert!(!auth.allows(None));
        assert!(!auth.allows(Some("Basic !!!")));
        assert!(BasicAuth::new(BTreeMap::new()).allows(None));
    }

    #[test]
    fn reads_the_exporter_toolkit_format() {
        let dir = std::env::temp_dir().join(format!("shadowtap-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("web.yml");
        std::fs::write(&f, "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\nbasic_auth_users:\n  p: $2y$04$abcdefghijklmnopqrstuu5VqzM3NOuBq8EBnTl9pEHHT0R4fYUfC\n").unwrap();
        let c = WebConfig::read(&f).unwrap();
        assert_eq!(c.tls_server_config.unwrap().cert_file, dir.join("a.crt"));
        std::fs::write(&f, "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: x\n").unwrap();
        assert!(WebConfig::read(&f).unwrap_err().contains("client_auth_type"));
        std::fs::write(&f, "basic_auth_users:\n  p: plain\n").unwrap();
        assert!(WebConfig::read(&f).unwrap_err().contains("not a bcrypt hash"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
