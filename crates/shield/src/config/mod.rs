//! The shield's configuration: the TOML file (`rampart shield --config FILE`) or the quick start
//! (`--listen ADDR --upstream URL`), both checked into one [`Config`] with errors naming the
//! file and key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::challenge::{ChallengeMode, ChallengeSettings};
use crate::gcra::Rate;
use crate::hardening::Hardening;
use crate::origin::{
    CacheSettings, LimitSettings, OriginSettings, ProtectionSettings, SnapshotSettings, ThreatLevel,
};

/// A configuration mistake, naming the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read shield configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("shield configuration {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or refers to something missing.
    #[error("shield configuration: {key}: {message}")]
    Invalid {
        /// The key, as `route[1].upstream`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// A certificate chain and its private key, PEM files; `names` are the SNI names it serves
/// (the first certificate also answers clients that send no or an unknown name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// PEM file with the chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key.
    pub key: PathBuf,
    /// Server names this certificate answers for.
    #[serde(default)]
    pub names: Vec<String>,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Address and port.
    pub address: SocketAddr,
    /// TLS certificates; none means plaintext.
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<CertificateFiles>,
    /// Accept HTTP/2 with prior knowledge on a plaintext listener.
    #[serde(default)]
    pub h2c: bool,
    /// An internal listener: internal routes answer here whatever the client address.
    #[serde(default)]
    pub internal: bool,
    /// Every connection starts with a PROXY protocol header (v1 or v2) from a peer in
    /// `trusted_proxies`; its client address is the connection's.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// Active health checks of an upstream pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path to GET; a 2xx or 3xx answer is healthy.
    #[serde(default = "default_health_path")]
    pub path: String,
    /// Seconds between checks.
    #[serde(default = "default_health_interval")]
    pub interval_secs: f64,
    /// Seconds a check may take.
    #[serde(default = "default_health_timeout")]
    pub timeout_secs: f64,
    /// Failed checks in a row that mark a server down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Passed checks in a row that mark it up again.
    #[serde(default = "default_rise")]
    pub rise: u32,
}

fn default_health_path() -> String {
    "/".into()
}
fn default_health_interval() -> f64 {
    5.0
}
fn default_health_timeout() -> f64 {
    2.0
}
fn default_fall() -> u32 {
    3
}
fn default_rise() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamFile {
    servers: Vec<String>,
    health_check: Option<HealthCheck>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    http2: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    origin: OriginFile,
}

/// `[upstream.NAME.origin]`: the origin's protection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginFile {
    min_concurrency: Option<u32>,
    max_concurrency: Option<u32>,
    initial_concurrency: Option<u32>,
    queue_size: Option<usize>,
    queue_timeout_secs: Option<f64>,
    timeout_secs: Option<f64>,
    #[serde(default)]
    session_cookies: Vec<String>,
    cache: Option<bool>,
    cache_max_entry_bytes: Option<usize>,
    cache_max_bytes: Option<usize>,
    max_stale_secs: Option<f64>,
}

/// `[origin]`: the shield-wide threat level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectionFile {
    #[serde(default)]
    threat_level: ThreatLevel,
    threat_file: Option<PathBuf>,
}

/// `[snapshot]`: the emergency static snapshot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    dir: PathBuf,
    #[serde(default)]
    always: bool,
    at_level: Option<ThreatLevel>,
}

fn origin_settings(key: &str, file: &OriginFile) -> Result<OriginSettings, ConfigError> {
    let defaults = OriginSettings::default();
    let limit_defaults = LimitSettings::default();
    let max = file.max_concurrency.unwrap_or(limit_defaults.max);
    let min = file.min_concurrency.unwrap_or(limit_defaults.min.min(max));
    if max == 0 {
        return Err(invalid(format!("{key}.max_concurrency"), "must be at least 1"));
    }
    if min == 0 || min > max {
        return Err(invalid(
            format!("{key}.min_concurrency"),
            "must be at least 1 and at most max_concurrency",
        ));
    }
    let initial = file.initial_concurrency.unwrap_or(limit_defaults.initial).clamp(min, max);
    let seconds = |name: &str, value: Option<f64>, default: Duration| match value {
        Some(v) => positive_secs(&format!("{key}.{name}"), v),
        None => Ok(default),
    };
    let cache_defaults = CacheSettings::default();
    let cache = if file.cache.unwrap_or(true) {
        Some(CacheSettings {
            max_entry_bytes: file.cache_max_entry_bytes.unwrap_or(cache_defaults.max_entry_bytes),
            max_bytes: file.cache_max_bytes.unwrap_or(cache_defaults.max_bytes),
            max_stale: seconds("max_stale_secs", file.max_stale_secs, cache_defaults.max_stale)?,
        })
    } else {
        None
    };
    for (i, name) in file.session_cookies.iter().enumerate() {
        if name.is_empty() || name.contains([';', '=', ' ']) {
            return Err(invalid(format!("{key}.session_cookies[{i}]"), "not a cookie name"));
        }
    }
    Ok(OriginSettings {
        limit: LimitSettings { min, max, initial, ..limit_defaults },
        queue_size: file.queue_size.unwrap_or(defaults.queue_size),
        queue_timeout: seconds("queue_timeout_secs", file.queue_timeout_secs, defaults.queue_timeout)?,
        timeout: seconds("timeout_secs", file.timeout_secs, defaults.timeout)?,
        session_cookies: file.session_cookies.clone(),
        cache,
    })
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateFile {
    per_second: f64,
    burst: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: Option<String>,
    host: Option<String>,
    #[serde(default = "default_prefix")]
    path_prefix: String,
    upstream: String,
    rate: Option<RateFile>,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    challenge: ChallengeMode,
}

fn default_prefix() -> String {
    "/".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    per_address: Option<RateFile>,
    per_prefix: Option<RateFile>,
    per_v6_48: Option<RateFile>,
    table_capacity: Option<usize>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    trusted_proxies: Vec<IpNet>,
    #[serde(default)]
    internal_networks: Vec<IpNet>,
    metrics: Option<SocketAddr>,
    #[serde(default, rename = "listener")]
    listeners: Vec<Listener>,
    #[serde(default, rename = "upstream")]
    upstreams: BTreeMap<String, UpstreamFile>,
    #[serde(default, rename = "route")]
    routes: Vec<RouteFile>,
    #[serde(default)]
    limits: Hardening,
    #[serde(default)]
    rate_limit: RateLimitFile,
    #[serde(default)]
    flood: crate::flood::FloodConfig,
    #[serde(default)]
    origin: ProtectionFile,
    snapshot: Option<SnapshotFile>,
    #[serde(default)]
    challenge: ChallengeSettings,
    access_log: Option<crate::access_log::AccessLogSettings>,
}

/// How the shield talks TLS to an `https://` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The PEM file whose certificates alone are trusted; none: the system's trust store.
    pub ca_file: Option<PathBuf>,
    /// Its certificates, read when the configuration is loaded (a reload reads it again).
    pub ca_certs: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// Offer HTTP/2 by ALPN (HTTP/1.1 when the origin does not pick it).
    pub http2: bool,
}

/// An upstream pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The pool's name.
    pub name: String,
    /// `host:port` of each server.
    pub servers: Vec<String>,
    /// TLS to every server (`https://` servers), or none: plain HTTP/1.1.
    pub tls: Option<UpstreamTls>,
    /// Active health checks, if any.
    pub health_check: Option<HealthCheck>,
    /// Only routes marked internal may use it.
    pub internal: bool,
    /// Its protection: concurrency limit, queue, stale cache.
    pub origin: OriginSettings,
}

/// A route: requests whose host and path match go to `upstream`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Its name (metrics, logs).
    pub name: String,
    /// Lower-case host without port; `None` matches any host.
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries.
    pub path_prefix: String,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Rate per client address on this route.
    pub rate: Option<Rate>,
    /// Answers only to internal networks or on internal listeners.
    pub internal: bool,
    /// When it challenges clients without a clearance.
    pub challenge: ChallengeMode,
}

/// Rate limits applied to every request before routing.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Per client address.
    pub per_address: Option<Rate>,
    /// Per IPv4 /24 and IPv6 /64.
    pub per_prefix: Option<Rate>,
    /// Per IPv6 /48.
    pub per_v6_48: Option<Rate>,
    /// Keys each limiter holds (fixed memory: 32 bytes a key).
    pub table_capacity: usize,
}

impl Default for RateLimits {
    /// Generous enough that a browser loading a heavy page never notices: a burst of 400
    /// requests, 100 a second sustained, per address; ten times that per /24 or /64.
    fn default() -> Self {
        RateLimits {
            per_address: Some(Rate { per_second: 100.0, burst: 400 }),
            per_prefix: Some(Rate { per_second: 1000.0, burst: 4000 }),
            per_v6_48: Some(Rate { per_second: 4000.0, burst: 16000 }),
            table_capacity: 1 << 20,
        }
    }
}

/// The whole configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listening sockets.
    pub listeners: Vec<Listener>,
    /// Upstream pools.
    pub upstreams: Vec<Upstream>,
    /// Routes, in the order they are tried (most specific first after [`Config::check`]).
    pub routes: Vec<Route>,
    /// Protocol hardening.
    pub hardening: Hardening,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Networks internal routes answer to.
    pub internal_networks: Vec<IpNet>,
    /// Metrics listener.
    pub metrics: Option<SocketAddr>,
    /// The automatic flood defense (`[flood]`).
    pub flood: crate::flood::FloodConfig,
    /// Threat level and static snapshot (`[origin]`, `[snapshot]`).
    pub protection: ProtectionSettings,
    /// The challenge ladder.
    pub challenge: ChallengeSettings,
    /// The structured access log (`[access_log]`), off when absent.
    pub access_log: Option<crate::access_log::AccessLogSettings>,
}

impl Config {
    /// The quick start: one listener, one upstream server, one route for everything, default
    /// hardening and rate limits.
    pub fn quick(listen: SocketAddr, upstream: &str) -> Result<Config, ConfigError> {
        let (https, server) = parse_server(upstream).map_err(|m| invalid("--upstream", m))?;
        let config = Config {
            listeners: vec![Listener {
                address: listen,
                certificates: Vec::new(),
                h2c: true,
                internal: false,
                proxy_protocol: false,
            }],
            upstreams: vec![Upstream {
                name: "default".into(),
                servers: vec![server],
                tls: https.then(|| UpstreamTls { ca_file: None, ca_certs: Vec::new(), http2: false }),
                health_check: None,
                internal: false,
                origin: OriginSettings::default(),
            }],
            routes: vec![Route {
                name: "default".into(),
                host: None,
                path_prefix: "/".into(),
                upstream: 0,
                rate: None,
                internal: false,
                challenge: ChallengeMode::default(),
            }],
            hardening: Hardening::default(),
            rate_limits: RateLimits::default(),
            trusted_proxies: Vec::new(),
            internal_networks: Vec::new(),
            metrics: None,
            flood: crate::flood::FloodConfig::default(),
            protection: ProtectionSettings::default(),
            challenge: ChallengeSettings::default(),
            access_log: None,
        };
        config.check()
    }

    /// Read and check a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parse and check TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        let mut upstreams = Vec::new();
        for (name, pool) in &file.upstreams {
            if pool.servers.is_empty() {
                return Err(invalid(format!("upstream.{name}.servers"), "needs at least one server"));
            }
            let mut servers = Vec::new();
            let mut https = None;
            for (i, server) in pool.servers.iter().enumerate() {
                let key = format!("upstream.{name}.servers[{i}]");
                let (tls, server) = parse_server(server).map_err(|m| invalid(&key, m))?;
                if *https.get_or_insert(tls) != tls {
                    return Err(invalid(key, "every server of a pool must be http:// or every one https://"));
                }
                servers.push(server);
            }
            let tls = upstream_tls(name, pool, https.unwrap_or(false))?;
            if let Some(check) = &pool.health_check {
                let key = format!("upstream.{name}.health_check");
                if !check.path.starts_with('/') {
                    return Err(invalid(format!("{key}.path"), "must start with /"));
                }
                positive_secs(&format!("{key}.interval_secs"), check.interval_secs)?;
                positive_secs(&format!("{key}.timeout_secs"), check.timeout_secs)?;
                if check.fall == 0 || check.rise == 0 {
                    return Err(invalid(key, "fall and rise must be at least 1"));
                }
            }
            upstreams.push(Upstream {
                name: name.clone(),
                servers,
                tls,
                health_check: pool.health_check.clone(),
                internal: pool.internal,
                origin: origin_settings(&format!("upstream.{name}.origin"), &pool.origin)?,
            });
        }
        let mut routes = Vec::new();
        for (i, route) in file.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            let upstream = upstreams.iter().position(|u| u.name == route.upstream).ok_or_else(|| {
                invalid(format!("{key}.upstream"), format!("no [upstream.{}] is configured", route.upstream))
            })?;
            if upstreams[upstream].internal && !route.internal {
                return Err(invalid(
                    format!("{key}.internal"),
                    format!("upstream {} is internal, so the route must be internal too", route.upstream),
                ));
            }
            if !route.path_prefix.starts_with('/') {
                return Err(invalid(format!("{key}.path_prefix"), "must start with /"));
            }
            let rate = route.rate.map(|r| check_rate(&format!("{key}.rate"), r)).transpose()?;
            routes.push(Route {
                name: route.name.clone().unwrap_or_else(|| format!("route{i}")),
                host: route.host.as_ref().map(|h| h.to_ascii_lowercase()),
                path_prefix: route.path_prefix.clone(),
                upstream,
                rate,
                internal: route.internal,
                challenge: route.challenge,
            });
        }
        let defaults = RateLimits::default();
        let limits = &file.rate_limit;
        let rate_limits = if limits.disabled {
            RateLimits {
                per_address: None,
                per_prefix: None,
                per_v6_48: None,
                table_capacity: defaults.table_capacity,
            }
        } else {
            RateLimits {
                per_address: pick_rate("rate_limit.per_address", limits.per_address, defaults.per_address)?,
                per_prefix: pick_rate("rate_limit.per_prefix", limits.per_prefix, defaults.per_prefix)?,
                per_v6_48: pick_rate("rate_limit.per_v6_48", limits.per_v6_48, defaults.per_v6_48)?,
                table_capacity: limits.table_capacity.unwrap_or(defaults.table_capacity),
            }
        };
        Config {
            listeners: file.listeners,
            upstreams,
            routes,
            hardening: file.limits,
            rate_limits,
            trusted_proxies: file.trusted_proxies,
            internal_networks: file.internal_networks,
            metrics: file.metrics,
            flood: file.flood,
            protection: ProtectionSettings {
                threat_level: file.origin.threat_level,
                threat_file: file.origin.threat_file,
                snapshot: file.snapshot.map(|s| SnapshotSettings {
                    dir: s.dir,
                    always: s.always,
                    at_level: s.at_level,
                }),
            },
            challenge: file.challenge,
            access_log: file.access_log,
        }
        .check()
    }

    /// Check what spans sections and order the routes most specific first.
    fn check(mut self) -> Result<Config, ConfigError> {
        if self.listeners.is_empty() {
            return Err(invalid("listener", "at least one [[listener]] is needed"));
        }
        if self.routes.is_empty() {
            return Err(invalid("route", "at least one [[route]] is needed"));
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            for (j, cert) in listener.certificates.iter().enumerate() {
                if j > 0 && cert.names.is_empty() {
                    return Err(invalid(
                        format!("listener[{i}].certificate[{j}].names"),
                        "every certificate after the first needs the names it serves",
                    ));
                }
            }
        }
        if self.rate_limits.table_capacity == 0 {
            return Err(invalid("rate_limit.table_capacity", "must be at least 1"));
        }
        self.hardening.check().map_err(|(key, message)| invalid(format!("limits.{key}"), message))?;
        self.flood.validate().map_err(|(key, message)| invalid(format!("flood.{key}"), message))?;
        if let Some(name) = self.flood.routes.keys().find(|n| !self.routes.iter().any(|r| &r.name == *n)) {
            return Err(invalid(format!("flood.routes.{name}"), "no [[route]] has this name"));
        }
        self.challenge.check().map_err(|(key, message)| invalid(format!("challenge.{key}"), message))?;
        if let Some(log) = &self.access_log {
            log.check().map_err(|(key, message)| invalid(format!("access_log.{key}"), message))?;
        }
        // Host-specific before any-host, then longer prefixes first; stable, so ties keep the
        // file's order.
        self.routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.path_prefix.len())));
        Ok(self)
    }
}

fn positive_secs(key: &str, secs: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid(key, "must be a positive number of seconds"))
}

fn check_rate(key: &str, rate: RateFile) -> Result<Rate, ConfigError> {
    if !(rate.per_second.is_finite() && rate.per_second > 0.0) {
        return Err(invalid(format!("{key}.per_second"), "must be a positive number"));
    }
    if rate.burst == 0 {
        return Err(invalid(format!("{key}.burst"), "must be at least 1"));
    }
    Ok(Rate { per_second: rate.per_second, burst: rate.burst })
}

fn pick_rate(key: &str, given: Option<RateFile>, default: Option<Rate>) -> Result<Option<Rate>, ConfigError> {
    match given {
        Some(rate) => check_rate(key, rate).map(Some),
        None => Ok(default),
    }
}

/// The TLS settings of upstream `name` (`https`: its servers are `https://`), its CA file read.
fn upstream_tls(name: &str, pool: &UpstreamFile, https: bool) -> Result<Option<UpstreamTls>, ConfigError> {
    if !https {
        if pool.ca_file.is_some() || pool.http2 {
            let key = if pool.ca_file.is_some() { "ca_file" } else { "http2" };
            return Err(invalid(format!("upstream.{name}.{key}"), "needs https:// servers"));
        }
        return Ok(None);
    }
    let ca_certs = match &pool.ca_file {
        None => Vec::new(),
        Some(path) => read_ca_file(path).map_err(|m| invalid(format!("upstream.{name}.ca_file"), m))?,
    };
    Ok(Some(UpstreamTls { ca_file: pool.ca_file.clone(), ca_certs, http2: pool.http2 }))
}

/// The certificates of a PEM bundle (at least one).
fn read_ca_file(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// `http://host:port[/]`, `https://host:port[/]` or `host:port` to (`https`, `host:port`).
fn parse_server(text: &str) -> Result<(bool, String), String> {
    let uri: http::Uri = if text.contains("://") { text.parse() } else { format!("http://{text}").parse() }
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            return Err(format!("{text:?}: scheme {other} is not supported (http or https to the origin)"));
        }
        None => return Err(format!("{text:?} has no scheme")),
    };
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("{text:?}: a server is host:port, without a path"));
    }
    let authority = uri.authority().ok_or_else(|| format!("{text:?} has no host"))?;
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((https, format!("{}:{port}", authority.host())))
}

#[cfg(test)]
mod tests;
