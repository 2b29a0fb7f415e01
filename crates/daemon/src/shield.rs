//! The HTTP shield inside `rampart run` (`[shield]`): the daemon starts it from its own
//! configuration file and pushes the mitigator's decisions into its ban table as an actuator,
//! so an address or prefix ban (automatic, or `rampart ban`) is refused at the next connection
//! or request, without the once-a-second store poll of a standalone `rampart shield
//! --decisions DIR`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rampart_contract::{Decision, DecisionId};
use rampart_mitigate::{Actuator, ActuatorError, Applied};
use rampart_shield::{BanTable, Shield};
use serde::Deserialize;
use tokio::sync::watch;

use crate::{DaemonError, setup};

/// `[shield]` as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShieldToml {
    /// The shield's configuration file (docs/shield.md).
    pub config: PathBuf,
    /// Seconds open connections get to finish at shutdown.
    #[serde(default = "default_drain_secs")]
    pub drain_secs: u64,
}

fn default_drain_secs() -> u64 {
    10
}

/// `[shield]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShieldSettings {
    /// The shield's configuration file, read at start.
    pub config: PathBuf,
    /// How long shutdown waits for open connections.
    pub drain: Duration,
}

impl ShieldToml {
    /// The settings, or (key, message).
    pub fn resolve(self) -> Result<ShieldSettings, (String, String)> {
        if self.config.as_os_str().is_empty() {
            return Err(("shield.config".into(), "name the shield's configuration file".into()));
        }
        if self.drain_secs > 3600 {
            return Err(("shield.drain_secs".into(), format!("{} is over an hour", self.drain_secs)));
        }
        Ok(ShieldSettings { config: self.config, drain: Duration::from_secs(self.drain_secs) })
    }
}

/// The mitigator's decisions into the shield's ban table, one call at a time (the table keeps
/// only address and prefix `Discard` decisions; a lock and a vector copy, no I/O).
#[derive(Debug)]
pub struct ShieldActuator {
    bans: Arc<BanTable>,
}

impl ShieldActuator {
    /// An actuator feeding `bans`.
    pub fn new(bans: Arc<BanTable>) -> ShieldActuator {
        ShieldActuator { bans }
    }
}

impl Actuator for ShieldActuator {
    fn name(&self) -> &str {
        "shield"
    }

    fn apply(&mut self, applied: &Applied<'_>) -> Result<(), ActuatorError> {
        self.bans.apply(applied.decision, applied.dry_run);
        Ok(())
    }

    fn withdraw(&mut self, id: DecisionId, _dry_run: bool) -> Result<(), ActuatorError> {
        self.bans.withdraw(id);
        Ok(())
    }

    fn reconcile(&mut self, active: &[Decision]) -> Result<(), ActuatorError> {
        self.bans.reconcile(active);
        Ok(())
    }
}

/// The shield's file, following the daemon's threat level (`<data dir>/threat-level`, written
/// by the daemon) unless its `[origin] threat_file` names another file.
fn read(file: &Path, data_dir: &Path) -> Result<rampart_shield::Config, rampart_shield::ConfigError> {
    let mut config = rampart_shield::Config::from_file(file)?;
    if config.protection.threat_file.is_none() {
        config.protection.threat_file = Some(crate::threat::path(data_dir));
    }
    Ok(config)
}

/// A shield bound and ready: its listeners are taken, its task not yet started.
#[derive(Debug)]
pub struct Bound {
    shield: Shield,
    drain: Duration,
}

/// Read the shield's configuration and bind its listeners (a bad file or a busy port is an
/// error at start, naming the file or the address).
pub async fn bind(
    settings: &ShieldSettings,
    bans: Arc<BanTable>,
    data_dir: &Path,
) -> Result<Bound, DaemonError> {
    let config = read(&settings.config, data_dir).map_err(|e| setup!("shield: {e}"))?;
    let shield = Shield::bind(config, bans).await.map_err(|e| setup!("shield: {e}"))?;
    Ok(Bound { shield, drain: settings.drain })
}

impl Bound {
    /// Serve until `stop` turns true, then drain.
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        for address in self.shield.local_addrs() {
            eprintln!("shield listening on {address}");
        }
        if let Some(address) = self.shield.metrics_addr() {
            eprintln!("shield metrics on http://{address}/metrics");
        }
        let drain = self.drain;
        tokio::spawn(self.shield.run(
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            },
            drain,
        ))
    }

    /// How long the shield drains at shutdown.
    pub fn drain(&self) -> Duration {
        self.drain
    }

    /// What re-reads the shield's file on SIGHUP (`Reload`), taken before the shield starts.
    pub fn reload_handle(&self, settings: &ShieldSettings, data_dir: &Path) -> Reload {
        Reload {
            reloader: self.shield.reloader(),
            config: settings.config.clone(),
            data_dir: data_dir.to_owned(),
        }
    }
}

/// The shield's file re-read and applied while it runs: routes, upstreams, rate limits,
/// challenges and the access log change at once; listeners, `[limits]` and `[flood]` need a
/// restart, and a file that does not parse leaves the running configuration in place.
#[derive(Debug, Clone)]
pub struct Reload {
    reloader: rampart_shield::Reloader,
    config: PathBuf,
    data_dir: PathBuf,
}

impl Reload {
    /// Re-read the file and apply it; the message says what happened, naming the file.
    pub fn apply(&self) -> Result<String, String> {
        let config = read(&self.config, &self.data_dir)
            .map_err(|e| format!("shield: kept the running configuration, {}: {e}", self.config.display()))?;
        self.reloader
            .reload(config)
            .map(|()| format!("shield: reloaded {}", self.config.display()))
            .map_err(|e| format!("shield: kept the running configuration of {}: {e}", self.config.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_and_checked() {
        let (daemon, _) = crate::config::parse("[shield]\nconfig = \"shield.toml\"\n", "r.toml").unwrap();
        let shield = daemon.shield.unwrap();
        assert_eq!(shield.config, PathBuf::from("shield.toml"));
        assert_eq!(shield.drain, Duration::from_secs(10));
        let error = crate::config::parse("[shield]\nconfig = \"s.toml\"\ndrain_secs = 7200\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("shield.drain_secs"), "{error}");
        let error = crate::config::parse("[shield]\nconfg = \"s.toml\"\n", "r.toml").unwrap_err().to_string();
        assert!(error.contains("confg") || error.contains("shield"), "{error}");
        assert!(crate::config::parse("", "r.toml").unwrap().0.shield.is_none());
    }
}
