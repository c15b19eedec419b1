//! `store.postgres.*`: how to reach the database (Kuma's keys), TLS modes, connection URLs.

use super::*;

/// `store.postgres.tls.mode` (`KUMA_STORE_POSTGRES_TLS_MODE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (Kuma's default).
    #[default]
    Disable,
    /// TLS without verifying the server certificate.
    VerifyNone,
    /// TLS; the server certificate must chain to `ca_path`.
    VerifyCa,
    /// TLS; as `VerifyCa`, and the certificate must also name `host`.
    VerifyFull,
}

impl TlsMode {
    /// Kuma's spelling: `disable`, `verifyNone`, `verifyCa`, `verifyFull`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::VerifyNone => "verifyNone",
            TlsMode::VerifyCa => "verifyCa",
            TlsMode::VerifyFull => "verifyFull",
        }
    }

    fn ssl_mode(self) -> PgSslMode {
        match self {
            TlsMode::Disable => PgSslMode::Disable,
            // sqlx accepts any certificate unless the mode is VerifyCa/VerifyFull.
            TlsMode::VerifyNone => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = String;

    /// Kuma's values (`disable`, `verifyNone`, `verifyCa`, `verifyFull`, any case), plus
    /// libpq's `sslmode` spellings (`disable`, `require`, `verify-ca`, `verify-full`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "disable" => Ok(TlsMode::Disable),
            "verifynone" | "require" => Ok(TlsMode::VerifyNone),
            "verifyca" | "verify-ca" => Ok(TlsMode::VerifyCa),
            "verifyfull" | "verify-full" => Ok(TlsMode::VerifyFull),
            _ => Err(format!(
                "unknown PostgreSQL TLS mode \"{s}\" (expected disable, verifyNone, verifyCa or verifyFull)"
            )),
        }
    }
}

/// How to reach the database: Kuma's `store.postgres.*` keys (`KUMA_STORE_POSTGRES_*`).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `host` (default `127.0.0.1`).
    pub host: String,
    /// `port` (default `15432`).
    pub port: u16,
    /// `user` (default `kuma`).
    pub user: String,
    /// `password` (default `kuma`).
    pub password: String,
    /// `dbName` (default `kuma`).
    pub db_name: String,
    /// `tls.mode` (default `disable`).
    pub tls_mode: TlsMode,
    /// `tls.caPath`: CA bundle the server certificate must chain to.
    pub ca_path: Option<PathBuf>,
    /// `tls.certPath`: client certificate (mutual TLS).
    pub cert_path: Option<PathBuf>,
    /// `tls.keyPath`: client key (mutual TLS).
    pub key_path: Option<PathBuf>,
    /// `maxOpenConnections` (default 50).
    pub max_open_connections: u32,
    /// `connectionTimeout` (default 5 s): how long to wait for a connection.
    pub connection_timeout: Duration,
    /// Aerie extension (not a Kuma key): the PostgreSQL schema holding the tables, set as
    /// the connections' `search_path`; `None` uses the server's default (`public`). Must be
    /// a plain lower-case identifier. Tests use one schema each.
    pub schema: Option<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 15432,
            user: "kuma".into(),
            password: "kuma".into(),
            db_name: "kuma".into(),
            tls_mode: TlsMode::Disable,
            ca_path: None,
            cert_path: None,
            key_path: None,
            max_open_connections: 50,
            connection_timeout: Duration::from_secs(5),
            schema: None,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("db_name", &self.db_name)
            .field("tls_mode", &self.tls_mode)
            .field("ca_path", &self.ca_path)
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("max_open_connections", &self.max_open_connections)
            .field("connection_timeout", &self.connection_timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresConfig {
    /// Builds a config from a URL such as `postgres://root@127.0.0.1:5432/test` (mostly for
    /// tests). Parts the URL leaves out keep [`PostgresConfig::default`]'s values, except the
    /// port, which defaults to PostgreSQL's 5432 as in any PostgreSQL URL. Understood query
    /// parameters: `sslmode` (see [`TlsMode::from_str`]), `sslrootcert`, `sslcert`,
    /// `sslkey`, `schema`, `max_connections`, `connect_timeout` (seconds).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Unavailable(format!("invalid PostgreSQL URL: {why}"));
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("must start with postgres:// or postgresql://"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut cfg = PostgresConfig {
            port: 5432,
            ..PostgresConfig::default()
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                cfg.user = percent_decode(user).ok_or_else(|| bad("bad user"))?;
            }
            if let Some(p) = password {
                cfg.password = percent_decode(p).ok_or_else(|| bad("bad password"))?;
            }
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            cfg.host = percent_decode(host).ok_or_else(|| bad("bad host"))?;
        }
        if let Some(p) = port {
            cfg.port = p.parse().map_err(|_| bad("bad port"))?;
        }
        if !path.is_empty() {
            cfg.db_name = percent_decode(path).ok_or_else(|| bad("bad database name"))?;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v).ok_or_else(|| bad("bad query parameter"))?;
            match k {
                "sslmode" => {
                    cfg.tls_mode = match v.as_str() {
                        // libpq's opportunistic modes: Aerie has no "maybe TLS".
                        "allow" | "prefer" => TlsMode::Disable,
                        other => other.parse().map_err(|e: String| bad(&e))?,
                    }
                }
                "sslrootcert" => cfg.ca_path = Some(v.into()),
                "sslcert" => cfg.cert_path = Some(v.into()),
                "sslkey" => cfg.key_path = Some(v.into()),
                "schema" => cfg.schema = Some(v),
                "max_connections" => {
                    cfg.max_open_connections = v.parse().map_err(|_| bad("bad max_connections"))?
                }
                "connect_timeout" => {
                    cfg.connection_timeout =
                        Duration::from_secs(v.parse().map_err(|_| bad("bad connect_timeout"))?)
                }
                _ => {}
            }
        }
        Ok(cfg)
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(super) fn schema_name(&self) -> Result<Option<&str>, StoreError> {
        match self.schema.as_deref() {
            None => Ok(None),
            Some(s)
                if !s.is_empty()
                    && s.len() <= 63
                    && !s.starts_with(|c: char| c.is_ascii_digit())
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                Ok(Some(s))
            }
            Some(s) => Err(StoreError::Unavailable(format!(
                "invalid PostgreSQL schema name \"{s}\": use lower-case letters, digits and _"
            ))),
        }
    }

    pub(super) fn connect_options(
        &self,
        app: &str,
        origin: Option<&str>,
    ) -> Result<PgConnectOptions, StoreError> {
        let mut o = PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.db_name)
            .ssl_mode(self.tls_mode.ssl_mode())
            .application_name(app);
        if let Some(ca) = &self.ca_path {
            o = o.ssl_root_cert(ca);
        }
        if let Some(cert) = &self.cert_path {
            o = o.ssl_client_cert(cert);
        }
        if let Some(key) = &self.key_path {
            o = o.ssl_client_key(key);
        }
        let mut settings = Vec::new();
        if let Some(origin) = origin {
            settings.push(("aerie.origin", origin.to_string()));
        }
        if let Some(schema) = self.schema_name()? {
            settings.push(("search_path", schema.to_string()));
        }
        Ok(o.options(settings))
    }

    /// One connection, with the timeout and the error message operators need.
    pub(super) async fn connect_one(&self, app: &str) -> Result<PgConnection, StoreError> {
        let opts = self.connect_options(app, None)?;
        let fail = |reason: String| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {} as {}: {reason}",
                self.address(),
                self.user
            ))
        };
        match tokio::time::timeout(self.connection_timeout, PgConnection::connect_with(&opts)).await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail(format!(
                "no answer within {}",
                fmt_duration(self.connection_timeout)
            ))),
        }
    }
}

pub(super) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
