//! Reading the loaded program back: what each rule dropped, and the benchmark's hooks
//! (BPF_PROG_TEST_RUN through the filter and through the LPM-trie comparison).

use std::time::Duration;

use ipnet::IpNet;
use libbpf_rs::{MapCore, MapFlags};
use rampart_contract::DecisionId;

use super::*;

impl XdpFilter {
    /// What each rule dropped.
    pub fn counters(&self) -> Result<Vec<(RuleKey, Counters)>, XdpError> {
        let stats = find_map(&self.object, "rule_stats")?;
        let mut out = Vec::new();
        for (key, slot) in self.rule_ids.iter() {
            let per_cpu = stats
                .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
                .map_err(bpf_error(format!("reading counters of rule {slot}")))?
                .unwrap_or_default();
            out.push((*key, Counters::sum(&per_cpu)));
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// The rule slot holding `decision`, if it is in the maps.
    pub fn slot_of(&self, decision: DecisionId) -> Option<u32> {
        self.rule_ids.get(&RuleKey::Decision(decision))
    }

    /// What the rule for `decision` dropped (zero when it has none).
    pub fn decision_counters(&self, decision: DecisionId) -> Result<Counters, XdpError> {
        Ok(self
            .counters()?
            .into_iter()
            .find(|(k, _)| *k == RuleKey::Decision(decision))
            .map_or_else(Counters::default, |(_, c)| c))
    }

    /// Runs the program once per `repeat` over `packet` with BPF_PROG_TEST_RUN: its verdict
    /// (`XDP_DROP` = 1, `XDP_PASS` = 2) and the kernel's average time per run.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<(u32, Duration), XdpError> {
        run(&find_program(&self.object, PROGRAM)?, packet, repeat)
    }

    /// Runs the program once over `packet`: its verdict and the frame as the program left it
    /// (rewritten for `XDP_TX`).
    pub fn test_run_output(&self, packet: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let prog = find_program(&self.object, PROGRAM)?;
        let mut out = vec![0u8; packet.len() + 256];
        let input =
            ProgramInput { data_in: Some(packet), data_out: Some(&mut out), ..ProgramInput::default() };
        let result = prog.test_run(input).map_err(bpf_error("BPF_PROG_TEST_RUN"))?;
        let (verdict, len) = (result.return_value, result.data.map_or(0, |d| d.len()));
        out.truncate(len);
        Ok((verdict, out))
    }

    /// The same through the LPM-trie comparison program.
    pub fn test_run_lpm(&self, packet: &[u8], repeat: u32) -> Result<(u32, Duration), XdpError> {
        run(&find_program(&self.object, LPM_PROGRAM)?, packet, repeat)
    }

    /// The same through a program that only returns `XDP_PASS` (the harness's own cost).
    pub fn test_run_noop(&self, packet: &[u8], repeat: u32) -> Result<(u32, Duration), XdpError> {
        run(&find_program(&self.object, NOOP_PROGRAM)?, packet, repeat)
    }

    /// Fills the comparison's LPM tries (benchmark only; rule slots as given).
    pub fn load_lpm(&self, prefixes: &[(IpNet, u32)]) -> Result<(), XdpError> {
        let (v4, v6): (Vec<_>, Vec<_>) = prefixes.iter().partition(|(n, _)| n.addr().is_ipv4());
        for (name, list) in [("lpm_v4", v4), ("lpm_v6", v6)] {
            let map = find_map(&self.object, name)?;
            let entries: Vec<(Vec<u8>, Vec<u8>)> =
                list.iter().map(|(n, r)| (layout::lpm_key(*n), r.to_ne_bytes().to_vec())).collect();
            if update_all(&map, &entries).is_err() {
                // Older kernels have no batch updates for the trie.
                for (k, v) in &entries {
                    map.update(k, v, MapFlags::ANY).map_err(bpf_error(format!("writing {name}")))?;
                }
            }
        }
        Ok(())
    }

    /// Writes rule values directly (benchmark only: the comparison program's rules).
    pub fn write_rules(&mut self, rules: &[(u32, RuleValue)]) -> Result<usize, XdpError> {
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            rules.iter().map(|(s, v)| (s.to_ne_bytes().to_vec(), v.encode().to_vec())).collect();
        update_all(&find_map(&self.object, "rules")?, &entries)
    }
}
