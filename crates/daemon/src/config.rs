//! Daemon settings: the `[inputs]`, `[store]` and `[outputs]` tables of the configuration file.
//! The file is parsed once (with the span of every value); the rest of it is the detection
//! configuration, validated by `rampart_detect` from the same document, so every error names
//! the exact line and column of the value.

use std::path::PathBuf;
use std::time::Duration;

use rampart_detect::DetectConfig;
use rampart_detect::config::{Document, line_col};
use rampart_ingest::inputs::{parse_bits_per_second, parse_prefix};
use rampart_ingest::{ExporterConfig, InputConfig, InterfaceConfig, ListenOn};
use rampart_store::Retention;
use rampart_telemetry::plausibility::is_loopback;
use serde::Deserialize;
use toml::Spanned;

use crate::webhook::{Secret, parse_url};

/// Tables of the configuration file that belong to the daemon, not to detection.
pub const DAEMON_TABLES: [&str; 7] = ["inputs", "store", "outputs", "mitigation", "bgp", "filter", "shield"];

/// Everything `rampart run` needs besides detection.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Sockets, trusted exporters, plausibility caps, receive buffer.
    pub inputs: InputConfig,
    /// Interfaces captured through AF_PACKET rings (mirror / SPAN ports), besides the sockets.
    pub interfaces: Vec<InterfaceConfig>,
    /// How often the engine is advanced by the wall clock.
    pub advance_interval: Duration,
    pub data_dir: PathBuf,
    /// Prometheus endpoint; `None` = off.
    pub metrics: Option<std::net::SocketAddr>,
    pub webhook: Option<url::Url>,
    pub webhook_queue: usize,
    pub webhook_attempts: u32,
    /// PEM CAs trusted for an https webhook (instead of the built-in roots).
    pub webhook_ca_file: Option<PathBuf>,
    /// `Authorization` header, given in the file itself; or read from a file at start.
    pub webhook_authorization: Option<Secret>,
    pub webhook_authorization_file: Option<PathBuf>,
    /// HMAC-SHA256 key file for the signature header.
    pub webhook_secret_file: Option<PathBuf>,
    /// Print events as JSON lines on standard output.
    pub stdout: bool,
    /// How long and how much the attack store keeps.
    pub retention: Retention,
    /// `[mitigation]`: decisions from attacks (dry run unless told otherwise); `None`: off.
    pub mitigation: Option<rampart_mitigate::MitigationConfig>,
    /// `[bgp]`: the speaker that announces decisions as FlowSpec and RTBH routes; needs
    /// `[mitigation]`.
    pub bgp: Option<rampart_bgp::config::SpeakerConfig>,
    /// `[filter]`: the host filter (XDP, nftables fallback) enforcing the decisions; needs
    /// `[mitigation]`.
    pub filter: Option<crate::filter::FilterSettings>,
    /// `[shield]`: the HTTP shield run inside the daemon, its bans fed by the mitigator.
    pub shield: Option<crate::shield::ShieldSettings>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            inputs: InputConfig::default(),
            interfaces: Vec::new(),
            advance_interval: Duration::from_millis(100),
            data_dir: PathBuf::from("rampart-data"),
            metrics: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9108))),
            webhook: None,
            webhook_queue: 1024,
            webhook_attempts: 6,
            webhook_ca_file: None,
            webhook_authorization: None,
            webhook_authorization_file: None,
            webhook_secret_file: None,
            stdout: true,
            retention: Retention::default(),
            mitigation: None,
            bgp: None,
            filter: None,
            shield: None,
        }
    }
}

/// Why the configuration file was rejected: one line, with file, line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunConfigError {
    /// A daemon value is unusable, at a known place in the file.
    #[error("{file}:{line}:{column}: `{key}`: {message}")]
    InvalidAt { file: String, line: usize, column: usize, key: String, message: String },
    /// The detection part was rejected.
    #[error(transparent)]
    Detect(#[from] rampart_detect::ConfigError),
}

#[derive(Debug, Default, Deserialize)]
struct FileToml {
    inputs: Option<InputsToml>,
    store: Option<StoreToml>,
    outputs: Option<OutputsToml>,
    mitigation: Option<rampart_mitigate::config::MitigationToml>,
    bgp: Option<rampart_bgp::config::SpeakerConfig>,
    filter: Option<crate::filter::FilterToml>,
    shield: Option<crate::shield::ShieldToml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputsToml {
    sflow: Option<Spanned<String>>,
    netflow: Option<Spanned<String>>,
    ipfix: Option<Spanned<String>>,
    /// Address the inputs given as a bare port listen on (default: loopback).
    listen: Option<Spanned<String>>,
    receive_buffer: Option<usize>,
    advance_ms: Option<u64>,
    /// Default caps per exporter.
    max_exporter_bps: Option<Spanned<Speed>>,
    max_exporter_pps: Option<Spanned<u64>>,
    max_sampling_rate: Option<Spanned<u32>>,
    exporter: Option<Vec<Spanned<ExporterToml>>>,
    /// Interfaces to capture: names, or tables with settings.
    interface: Option<Vec<Spanned<InterfaceToml>>>,
}

/// `interface = ["eth1"]`, or `[[inputs.interface]]` tables with settings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InterfaceToml {
    Name(String),
    Table(InterfaceTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceTable {
    name: String,
    /// Capture threads, one AF_PACKET ring each in one fanout group.
    threads: Option<usize>,
    /// Ring memory per thread, MiB.
    ring_mb: Option<usize>,
    /// Keep one packet in N.
    sample: Option<u32>,
    /// Fanout group id (default: one the kernel picks).
    fanout_group: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExporterToml {
    address: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    sampling: Option<Spanned<u32>>,
    interface_speed: Option<Spanned<Speed>>,
}

/// Bits per second: a number, or a string such as "10G".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Speed {
    Bits(u64),
    Text(String),
}

impl Speed {
    fn bits(&self) -> Result<u64, String> {
        match self {
            Speed::Bits(0) => Err("must be at least 1 bit/s".into()),
            Speed::Bits(bits) => Ok(*bits),
            Speed::Text(text) => parse_bits_per_second(text),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreToml {
    data_dir: Option<PathBuf>,
    retention_days: Option<u64>,
    max_size_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputsToml {
    metrics: Option<String>,
    webhook: Option<String>,
    webhook_queue: Option<usize>,
    webhook_attempts: Option<u32>,
    webhook_ca_file: Option<PathBuf>,
    webhook_authorization: Option<String>,
    webhook_authorization_file: Option<PathBuf>,
    webhook_secret_file: Option<PathBuf>,
    stdout: Option<bool>,
}

/// Parses a whole configuration file: the daemon tables and the detection configuration.
pub fn parse(text: &str, file: &str) -> Result<(DaemonConfig, DetectConfig), RunConfigError> {
    let doc = Document::parse(text, file)?;
    let raw: FileToml = doc.deserialize()?;
    let invalid = |key: &str, message: String| RunConfigError::Detect(doc.invalid(key, message));
    let mut config = DaemonConfig::default();
    if let Some(inputs) = raw.inputs {
        let at = |key: &str, span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            RunConfigError::InvalidAt { file: file.to_owned(), line, column, key: key.to_owned(), message }
        };
        config.interfaces = parse_interfaces(&inputs, &at)?;
        // Interfaces alone: no flow socket unless one is listed.
        let sockets_listed = [&inputs.sflow, &inputs.netflow, &inputs.ipfix].iter().any(|i| i.is_some());
        if !config.interfaces.is_empty() && !sockets_listed {
            (config.inputs.sflow, config.inputs.netflow, config.inputs.ipfix) = (None, None, None);
        }
        parse_inputs(&inputs, &mut config.inputs, &at)?;
        if let Some(bytes) = inputs.receive_buffer {
            config.inputs.receive_buffer = bytes;
        }
        if let Some(ms) = inputs.advance_ms {
            if !(10..=1000).contains(&ms) {
                return Err(invalid("inputs.advance_ms", format!("{ms} is not 10 to 1000")));
            }
            config.advance_interval = Duration::from_millis(ms);
        }
    }
    if let Some(store) = raw.store {
        if let Some(dir) = store.data_dir {
            config.data_dir = dir;
        }
        if store.retention_days.is_some() || store.max_size_mb.is_some() {
            let default = Retention::default();
            let days = store.retention_days.unwrap_or(default.max_age.map_or(0, |a| a.as_secs() / 86_400));
            let mb = store.max_size_mb.unwrap_or(default.max_bytes.map_or(0, |b| b >> 20));
            let key =
                if store.retention_days.is_some() { "store.retention_days" } else { "store.max_size_mb" };
            config.retention = Retention::from_config(days, mb).map_err(|e| invalid(key, format!("{e}")))?;
        }
    }
    if let Some(outputs) = raw.outputs {
        if let Some(metrics) = outputs.metrics {
            config.metrics =
                parse_optional_addr(&metrics).map_err(|message| invalid("outputs.metrics", message))?;
        }
        if let Some(url) = outputs.webhook {
            config.webhook = Some(parse_url(&url).map_err(|message| invalid("outputs.webhook", message))?);
        }
        if let Some(queue) = outputs.webhook_queue {
            if queue == 0 {
                return Err(invalid("outputs.webhook_queue", "must be at least 1".into()));
            }
            config.webhook_queue = queue;
        }
        if let Some(attempts) = outputs.webhook_attempts {
            if !(1..=20).contains(&attempts) {
                return Err(invalid("outputs.webhook_attempts", format!("{attempts} is not 1 to 20")));
            }
            config.webhook_attempts = attempts;
        }
        if outputs.webhook_authorization.is_some() && outputs.webhook_authorization_file.is_some() {
            let message = "give webhook_authorization or webhook_authorization_file, not both".to_owned();
            return Err(invalid("outputs.webhook_authorization", message));
        }
        // The value itself never goes into a message.
        config.webhook_authorization = outputs.webhook_authorization.map(|v| Secret::new(v.into_bytes()));
        config.webhook_authorization_file = outputs.webhook_authorization_file;
        config.webhook_ca_file = outputs.webhook_ca_file;
        config.webhook_secret_file = outputs.webhook_secret_file;
        if let Some(stdout) = outputs.stdout {
            config.stdout = stdout;
        }
    }
    let detect = DetectConfig::from_document(&doc.without_tables(&DAEMON_TABLES))?;
    if let Some(mitigation) = raw.mitigation.filter(|m| m.enabled()) {
        let mut resolved = mitigation
            .resolve(&detect.protected)
            .map_err(|e| invalid(&format!("mitigation.{}", e.key), e.message))?;
        // Never filtered whatever the allowlist says: the exporters (the routers telling us
        // about the traffic), the BGP peers (the peering links) and the address the daemon
        // listens on.
        let own = config
            .inputs
            .exporters
            .iter()
            .map(|e| e.prefix.trunc())
            .chain(raw.bgp.iter().flat_map(|b| b.peers.iter().map(|p| ipnet::IpNet::from(p.address))))
            .chain(config.inputs.listen.filter(|ip| !ip.is_unspecified()).map(ipnet::IpNet::from));
        for prefix in own {
            if !resolved.guards.allowlist.contains(&prefix) {
                resolved.guards.allowlist.push(prefix);
            }
        }
        config.mitigation = Some(resolved);
    }
    if let Some(bgp) = raw.bgp {
        if config.mitigation.is_none() {
            return Err(invalid(
                "bgp",
                "the speaker announces mitigation's decisions: add a [mitigation] table".into(),
            ));
        }
        config.bgp = Some(bgp);
    }
    if let Some(filter) = raw.filter {
        if config.mitigation.is_none() {
            return Err(invalid(
                "filter",
                "the host filter enforces mitigation's decisions: add a [mitigation] table".into(),
            ));
        }
        let settings = filter.resolve().map_err(|e| invalid(&format!("filter.{}", e.key), e.message))?;
        config.filter = Some(settings);
    }
    if let Some(shield) = raw.shield {
        config.shield = Some(shield.resolve().map_err(|(key, message)| invalid(&key, message))?);
    }
    Ok((config, detect))
}

/// Most capture threads per interface: more than cores only thrashes.
pub const MAX_CAPTURE_THREADS: usize = 64;

/// `[inputs] interface`: the interfaces to capture, each once.
fn parse_interfaces(
    inputs: &InputsToml,
    at: &dyn Fn(&str, std::ops::Range<usize>, String) -> RunConfigError,
) -> Result<Vec<InterfaceConfig>, RunConfigError> {
    let mut out: Vec<InterfaceConfig> = Vec::new();
    for entry in inputs.interface.iter().flatten() {
        let span = entry.span();
        let config = match entry.get_ref() {
            InterfaceToml::Name(name) => InterfaceConfig::new(name.clone()),
            InterfaceToml::Table(table) => {
                let mut config = InterfaceConfig::new(table.name.clone());
                if let Some(threads) = table.threads {
                    if !(1..=MAX_CAPTURE_THREADS).contains(&threads) {
                        let message = format!("threads = {threads} is not 1 to {MAX_CAPTURE_THREADS}");
                        return Err(at("inputs.interface.threads", span, message));
                    }
                    config.threads = threads;
                }
                config.ring_bytes = match table.ring_mb {
                    Some(mb @ 1..=4096) => mb << 20,
                    Some(mb) => {
                        return Err(at("inputs.interface.ring_mb", span, format!("{mb} is not 1 to 4096")));
                    }
                    None => (64 << 20) / config.threads,
                };
                if let Some(sample) = table.sample {
                    if sample == 0 {
                        return Err(at("inputs.interface.sample", span, "must be at least 1".into()));
                    }
                    config.sample_one_in = sample;
                }
                config.fanout_group = table.fanout_group;
                config
            }
        };
        if let Err(message) = rampart_ingest::interface::check_name(&config.name) {
            return Err(at("inputs.interface", span, message));
        }
        if out.iter().any(|c| c.name == config.name) {
            return Err(at("inputs.interface", span, format!("{} is listed twice", config.name)));
        }
        out.push(config);
    }
    Ok(out)
}

/// The `[inputs]` sockets, exporters and caps into `config`; errors through `at` (key, span,
/// message).
fn parse_inputs(
    inputs: &InputsToml,
    config: &mut InputConfig,
    at: &dyn Fn(&str, std::ops::Range<usize>, String) -> RunConfigError,
) -> Result<(), RunConfigError> {
    let listed = [&inputs.sflow, &inputs.netflow, &inputs.ipfix];
    // Listing any input means: exactly the listed ones.
    if listed.iter().any(|i| i.is_some()) {
        let listen = |key: &str, value: &Option<Spanned<String>>| -> Result<_, RunConfigError> {
            match value {
                None => Ok(None),
                Some(v) if v.get_ref() == "off" => Ok(None),
                Some(v) => v
                    .get_ref()
                    .parse::<ListenOn>()
                    .map(Some)
                    .map_err(|message| at(&format!("inputs.{key}"), v.span(), message)),
            }
        };
        config.sflow = listen("sflow", &inputs.sflow)?;
        config.netflow = listen("netflow", &inputs.netflow)?;
        config.ipfix = listen("ipfix", &inputs.ipfix)?;
    }
    if let Some(listen) = &inputs.listen {
        let ip = listen.get_ref().parse::<std::net::IpAddr>().map_err(|_| {
            at(
                "inputs.listen",
                listen.span(),
                format!(
                    "{:?} is not an IP address (e.g. \"0.0.0.0\", \"::\", \"192.0.2.10\")",
                    listen.get_ref()
                ),
            )
        })?;
        config.listen = Some(ip);
    }
    if let Some(bps) = &inputs.max_exporter_bps {
        config.limits.max_bps =
            bps.get_ref().bits().map_err(|m| at("inputs.max_exporter_bps", bps.span(), m))?;
    }
    if let Some(pps) = &inputs.max_exporter_pps {
        if *pps.get_ref() == 0 {
            return Err(at("inputs.max_exporter_pps", pps.span(), "must be at least 1".into()));
        }
        config.limits.max_pps = *pps.get_ref();
    }
    if let Some(rate) = &inputs.max_sampling_rate {
        if *rate.get_ref() == 0 {
            return Err(at("inputs.max_sampling_rate", rate.span(), "must be at least 1".into()));
        }
        config.limits.max_sampling_rate = *rate.get_ref();
    }
    for entry in inputs.exporter.iter().flatten() {
        let exporter = entry.get_ref();
        let prefix = match (&exporter.address, &exporter.prefix) {
            (Some(address), None) => {
                address.get_ref().parse::<std::net::IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                    at(
                        "inputs.exporter.address",
                        address.span(),
                        format!("{:?} is not an IP address", address.get_ref()),
                    )
                })?
            }
            (None, Some(prefix)) => parse_prefix(prefix.get_ref())
                .map_err(|message| at("inputs.exporter.prefix", prefix.span(), message))?,
            _ => {
                return Err(at(
                    "inputs.exporter",
                    entry.span(),
                    "give exactly one of `address` (an exporter) or `prefix` (a range of them)".into(),
                ));
            }
        };
        let sampling = match &exporter.sampling {
            Some(rate) if !(1..=config.limits.max_sampling_rate).contains(rate.get_ref()) => {
                return Err(at(
                    "inputs.exporter.sampling",
                    rate.span(),
                    format!(
                        "{} is not 1 to {} (max_sampling_rate)",
                        rate.get_ref(),
                        config.limits.max_sampling_rate
                    ),
                ));
            }
            other => other.as_ref().map(|r| *r.get_ref()),
        };
        let interface_speed = exporter
            .interface_speed
            .as_ref()
            .map(|speed| {
                speed.get_ref().bits().map_err(|m| at("inputs.exporter.interface_speed", speed.span(), m))
            })
            .transpose()?;
        config.exporters.push(ExporterConfig { prefix, sampling, interface_speed });
    }
    if config.exporters.is_empty() {
        // Listening beyond loopback is a choice that needs someone to listen to.
        if let Some(listen) = &inputs.listen
            && !is_loopback(config.listen.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])))
        {
            return Err(at(
                "inputs.listen",
                listen.span(),
                format!(
                    "listening on {} accepts datagrams from the network: add at least one [[inputs.exporter]] (address = \"...\" or prefix = \"...\") naming who may send flows",
                    listen.get_ref()
                ),
            ));
        }
        for (key, value) in [("sflow", &inputs.sflow), ("netflow", &inputs.netflow), ("ipfix", &inputs.ipfix)]
        {
            if let Some(v) = value
                && let Ok(ListenOn::Addr(addr)) = v.get_ref().parse::<ListenOn>()
                && !is_loopback(addr.ip())
            {
                return Err(at(
                    &format!("inputs.{key}"),
                    v.span(),
                    format!(
                        "listening on {addr} accepts datagrams from the network: add at least one [[inputs.exporter]] (address = \"...\" or prefix = \"...\") naming who may send flows"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `off`, HOST:PORT, [IPV6]:PORT, or a bare PORT on 127.0.0.1 (metrics are unauthenticated:
/// listening beyond loopback is an explicit choice).
pub fn parse_optional_addr(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))));
    }
    text.parse().map(Some).map_err(|_| format!("{text:?} is not HOST:PORT, [IPV6]:PORT, a port or `off`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
protected = ["198.51.100.0/24"]

[inputs]
sflow = "127.0.0.1:16343"
advance_ms = 50

[thresholds]
udp_pps = 1000

[store]
data_dir = "/var/lib/rampart"

[outputs]
metrics = "off"
webhook = "http://127.0.0.1:8080/hook"
webhook_attempts = 3
"#;

    #[test]
    fn splits_daemon_and_detection_tables() {
        let (daemon, detect) = parse(FILE, "r.toml").unwrap();
        assert_eq!(daemon.inputs.sflow, Some(ListenOn::Addr("127.0.0.1:16343".parse().unwrap())));
        assert_eq!((daemon.inputs.netflow, daemon.inputs.ipfix), (None, None));
        assert_eq!(daemon.advance_interval, Duration::from_millis(50));
        assert_eq!(daemon.data_dir, PathBuf::from("/var/lib/rampart"));
        assert_eq!(daemon.metrics, None);
        assert_eq!(daemon.webhook.as_ref().and_then(|w| w.port()), Some(8080));
        assert_eq!(daemon.webhook_attempts, 3);
        assert_eq!(detect.thresholds.udp_pps, 1000);
        assert_eq!(detect.protected.len(), 1);
    }

    #[test]
    fn exporters_listen_and_caps() {
        let text = r#"
[inputs]
listen = "0.0.0.0"
max_exporter_bps = "100G"
max_exporter_pps = 50000000

[[inputs.exporter]]
address = "192.0.2.1"
sampling = 1000
interface_speed = "10G"

[[inputs.exporter]]
prefix = "2001:db8::/64"
interface_speed = 40000000000
"#;
        let (daemon, _) = parse(text, "r.toml").unwrap();
        let inputs = &daemon.inputs;
        assert_eq!(inputs.listen, Some("0.0.0.0".parse().unwrap()));
        assert_eq!(inputs.limits.max_bps, 100_000_000_000);
        assert_eq!(inputs.limits.max_pps, 50_000_000);
        assert_eq!(inputs.exporters.len(), 2);
        assert_eq!(inputs.exporters[0].prefix.to_string(), "192.0.2.1/32");
        assert_eq!(inputs.exporters[0].sampling, Some(1000));
        assert_eq!(inputs.exporters[0].interface_speed, Some(10_000_000_000));
        assert_eq!(inputs.exporters[1].interface_speed, Some(40_000_000_000));
        inputs.validate().unwrap();
        // Defaults listen on loopback only, all three inputs, both families.
        let (daemon, _) = parse("", "r.toml").unwrap();
        assert!(daemon.inputs.addresses().iter().all(|(_, a)| a.ip().is_loopback()));
        assert_eq!(daemon.inputs.addresses().len(), 6);
    }

    #[test]
    fn exporter_errors_name_line_column_and_key() {
        let error = |text: &str| parse(text, "r.toml").unwrap_err().to_string();
        let e = error("[inputs]\nlisten = \"0.0.0.0\"\n");
        assert!(e.starts_with("r.toml:2:10: `inputs.listen`") && e.contains("[[inputs.exporter]]"), "{e}");
        let e = error("[inputs]\nnetflow = \"[::]:2055\"\n");
        assert!(e.starts_with("r.toml:2:11: `inputs.netflow`") && e.contains("exporter"), "{e}");
        let e = error("[inputs]\nlisten = \"everywhere\"\n");
        assert!(e.starts_with("r.toml:2:10: `inputs.listen`"), "{e}");
        let e = error("[[inputs.exporter]]\naddress = \"192.0.2.300\"\n");
        assert!(e.starts_with("r.toml:2:11: `inputs.exporter.address`"), "{e}");
        let e = error("[[inputs.exporter]]\nprefix = \"192.0.2.0/33\"\n");
        assert!(e.starts_with("r.toml:2:10: `inputs.exporter.prefix`"), "{e}");
        let e = error("[[inputs.exporter]]\naddress = \"192.0.2.1\"\nsampling = 0\n");
        assert!(e.starts_with("r.toml:3:12: `inputs.exporter.sampling`"), "{e}");
        let e = error("[[inputs.exporter]]\naddress = \"192.0.2.1\"\ninterface_speed = \"10X\"\n");
        assert!(e.starts_with("r.toml:3:19: `inputs.exporter.interface_speed`"), "{e}");
        let e = error("\n[[inputs.exporter]]\nsampling = 10\n");
        assert!(e.starts_with("r.toml:") && e.contains("exactly one of `address`"), "{e}");
        let e = error("[[inputs.exporter]]\naddress = \"192.0.2.1\"\nrate = 10\n");
        assert!(e.starts_with("r.toml:3:") && e.contains("rate"), "{e}");
    }

    #[test]
    fn bgp_needs_mitigation_and_its_peers_are_never_filtered() {
        let peer = "[bgp]\nlocal_as = 64512\nrouter_id = \"192.0.2.1\"\n[[bgp.peers]]\nname = \"r1\"\naddress = \"192.0.2.9\"\npeer_as = 64513\n\
                    families = [\"ipv4_flowspec\", \"ipv6_flowspec\", \"ipv4_unicast\", \"ipv6_unicast\"]\n\
                    rule_budget = 1000\nblackhole_next_hop_v4 = \"192.0.2.66\"\ncommunities = [\"64500:666\"]\n";
        let error = parse(peer, "r.toml").unwrap_err().to_string();
        assert!(error.contains("bgp") && error.contains("[mitigation]"), "{error}");
        let (daemon, _) =
            parse(&format!("protected = [\"198.51.100.0/24\"]\n[mitigation]\n{peer}"), "r.toml").unwrap();
        assert_eq!(daemon.bgp.unwrap().peers[0].name, "r1");
        let allowlist: Vec<String> =
            daemon.mitigation.unwrap().guards.allowlist.iter().map(ToString::to_string).collect();
        assert!(allowlist.contains(&"192.0.2.9/32".to_string()), "{allowlist:?}");
    }

    #[test]
    fn the_filter_needs_mitigation_and_its_errors_name_line_and_key() {
        let filter = "[filter]\ninterfaces = [\"eth0=generic\"]\n";
        let error = parse(filter, "r.toml").unwrap_err().to_string();
        assert!(error.contains("filter") && error.contains("[mitigation]"), "{error}");
        let (daemon, _) =
            parse(&format!("protected = [\"198.51.100.0/24\"]\n[mitigation]\n{filter}"), "r.toml").unwrap();
        let settings = daemon.filter.unwrap();
        assert_eq!(settings.interfaces[0].0, "eth0");
        let error =
            parse("protected = [\"198.51.100.0/24\"]\n[mitigation]\n[filter]\nmode = \"fast\"\n", "r.toml")
                .unwrap_err()
                .to_string();
        assert!(error.starts_with("r.toml:4:") && error.contains("filter.mode"), "{error}");
    }

    #[test]
    fn mitigation_is_off_without_its_table_and_dry_run_with_it() {
        let (daemon, _) = parse("protected = [\"198.51.100.0/24\"]\n", "r.toml").unwrap();
        assert_eq!(daemon.mitigation, None);
        let text = "protected = [\"198.51.100.0/24\"]\n[mitigation]\nallowlist = [\"198.51.100.53\"]\n\
                    [mitigation.group.dns]\nladder = [\"notify\"]\n";
        let (daemon, _) = parse(text, "r.toml").unwrap();
        let mitigation = daemon.mitigation.unwrap();
        assert!(mitigation.dry_run);
        assert_eq!(
            mitigation.guards.protected[0].to_string(),
            "198.51.100.0/24",
            "detection's protected networks"
        );
        assert_eq!(mitigation.groups["dns"].ladder, [rampart_mitigate::Rung::Notify]);
        let text = "protected = [\"198.51.100.0/24\"]\n[inputs]\nlisten = \"198.51.100.2\"\n\
                    [[inputs.exporter]]\naddress = \"198.51.100.1\"\n[mitigation]\n";
        let (daemon, _) = parse(text, "r.toml").unwrap();
        let allowlist: Vec<String> =
            daemon.mitigation.unwrap().guards.allowlist.iter().map(ToString::to_string).collect();
        assert_eq!(allowlist, ["198.51.100.1/32", "198.51.100.2/32"], "exporters and our own address");
        let (daemon, _) = parse("[mitigation]\nenabled = false\n", "r.toml").unwrap();
        assert_eq!(daemon.mitigation, None);
        let error = parse("[mitigation]\nmin_prefix_v4 = 2\n", "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:2:") && error.contains("mitigation.min_prefix_v4"), "{error}");
        let error = parse("[mitigation]\nladder = 1\n", "r.toml").unwrap_err().to_string();
        assert!(error.contains("ladder"), "{error}");
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let (daemon, detect) = parse("", "r.toml").unwrap();
        assert_eq!(daemon, DaemonConfig::default());
        assert_eq!(detect, DetectConfig::default());
    }

    #[test]
    fn a_value_that_also_appears_earlier_is_located_at_its_own_key() {
        // Searching the text for the value would name line 1 (the comment).
        let text = "# webhook = \"ftp://example.net/\"\n[outputs]\nwebhook = \"ftp://example.net/\"\n";
        let error = parse(text, "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:3:11: `outputs.webhook`"), "{error}");
        let text = "[thresholds]\nudp_pps = 5\n[outputs]\nwebhook_queue = 0\n";
        let error = parse(text, "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:4:17: `outputs.webhook_queue`"), "{error}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "[inputs]\nsflow = \"127.0.0.1:6343\"\nbogus = 1\n";
        let error = parse(text, "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:3:"), "{error}");
        assert!(error.contains("bogus"), "{error}");
        let text = "[outputs]\nwebhook = \"ftp://example.net/\"\n";
        let error = parse(text, "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:2:11: `outputs.webhook`"), "{error}");
        // Detection errors name their place in the same file.
        let text = "[inputs]\nsflow = \"6343\"\n\n[thresholds]\nnope = 1\n";
        let error = parse(text, "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:5:"), "{error}");
        let text = "[inputs]\nsflow = \"nowhere\"\n";
        let error = parse(text, "r.toml").unwrap_err().to_string();
        assert!(error.starts_with("r.toml:2:9: `inputs.sflow`"), "{error}");
    }

    #[test]
    fn webhook_keys_parse_and_the_authorization_stays_hidden() {
        let text = "[outputs]\nwebhook = \"https://[::1]:8443/h\"\nwebhook_ca_file = \"/etc/ca.pem\"\n\
                    webhook_authorization = \"Bearer sekrit\"\nwebhook_secret_file = \"/etc/key\"\n";
        let (daemon, _) = parse(text, "r.toml").unwrap();
        assert_eq!(daemon.webhook.as_ref().map(url::Url::as_str), Some("https://[::1]:8443/h"));
        assert_eq!(daemon.webhook_ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(daemon.webhook_secret_file, Some(PathBuf::from("/etc/key")));
        assert_eq!(daemon.webhook_authorization.as_ref().map(Secret::expose), Some(&b"Bearer sekrit"[..]));
        assert!(!format!("{daemon:?}").contains("sekrit"));
        let both = format!("{text}webhook_authorization_file = \"/etc/auth\"\n");
        let error = parse(&both, "r.toml").unwrap_err().to_string();
        assert!(
            error.starts_with("r.toml:4:25: `outputs.webhook_authorization`") && error.contains("not both"),
            "{error}"
        );
        assert!(!error.contains("sekrit"), "{error}");
    }

    #[test]
    fn the_example_file_parses() {
        let detection = include_str!("../../../config/rampart.example.toml");
        let daemon = include_str!("../../../config/daemon.example.toml");
        parse(detection, "rampart.example.toml").unwrap();
        // Tables after the top-level keys (`protected`), as TOML requires.
        let (config, detect) = parse(&format!("{detection}\n{daemon}"), "rampart.toml").unwrap();
        assert_eq!(config, DaemonConfig::default());
        assert_eq!(detect, parse(detection, "x").unwrap().1);
    }

    #[test]
    fn interfaces_by_name_or_table() {
        let (daemon, _) = parse("[inputs]\ninterface = [\"eth1\", \"eth2\"]\n", "r.toml").unwrap();
        let names: Vec<_> = daemon.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth1", "eth2"]);
        // Interfaces alone: no flow socket.
        assert!(daemon.inputs.addresses().is_empty());
        assert!(daemon.interfaces.iter().all(|i| i.sample_one_in == 1));

        let text = "[inputs]\nsflow = \"6343\"\n[[inputs.interface]]\nname = \"span0\"\nthreads = 2\nring_mb = 16\nsample = 10\nfanout_group = 77\n";
        let (daemon, _) = parse(text, "r.toml").unwrap();
        let span = &daemon.interfaces[0];
        assert_eq!((span.name.as_str(), span.threads, span.ring_bytes), ("span0", 2, 16 << 20));
        assert_eq!((span.sample_one_in, span.fanout_group), (10, Some(77)));
        assert_eq!(daemon.inputs.sflow, Some(ListenOn::Port(6343)));
        assert_eq!((daemon.inputs.netflow, daemon.inputs.ipfix), (None, None));
    }

    #[test]
    fn interface_errors_name_the_key() {
        let error = |text: &str| parse(text, "r.toml").unwrap_err().to_string();
        let twice = error("[inputs]\ninterface = [\"eth1\", \"eth1\"]\n");
        assert!(twice.contains("inputs.interface") && twice.contains("listed twice"), "{twice}");
        let bad = error("[inputs]\ninterface = [\"a/b\"]\n");
        assert!(bad.contains("r.toml:2:") && bad.contains("not an interface name"), "{bad}");
        let threads = error("[inputs]\n[[inputs.interface]]\nname = \"eth1\"\nthreads = 0\n");
        assert!(threads.contains("inputs.interface.threads"), "{threads}");
        let sample = error("[inputs]\n[[inputs.interface]]\nname = \"eth1\"\nsample = 0\n");
        assert!(sample.contains("inputs.interface.sample"), "{sample}");
    }
}
