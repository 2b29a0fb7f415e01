//! The XDP driver: loads the program (reusing pinned maps), attaches it, and reconciles its
//! maps with a [`FilterPlan`], writing only what changed, in batches.

use std::collections::BTreeSet;

use foldhash::HashMap;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use libbpf_rs::{Map, MapCore, MapFlags, Object, ObjectBuilder, ProgramInput, Xdp, XdpFlags};
use rampart_contract::DecisionId;
use rampart_contract::EventTime;

use super::ids::{RuleKey, SlotIds};
use super::maps::{BATCH, bpf_error, delete_all, update_all, zero_percpu};
use super::status::{attached_here, interface_index, program_name};
use super::swap::{Generation, TABLES};
use super::syncookies::{set_rodata_u32, syncookie_helpers};
use super::time::boot_deadline;
use super::{Options, ReconcileReport, XdpError};
use crate::dir248::Dir248;
use crate::layout::{
    self, COUNTERS_SIZE, Counters, DST_ENTRY_SIZE, PREFIX_KEY_SIZE, RuleValue, SIG_MATCH_SIZE,
};
use crate::plan::{FilterPlan, RuleAction, SynMode};

/// An IPv4 prefix and its rule slot.
pub(super) type Ipv4Rule = (Ipv4Net, u32);

/// The compiled program (built by build.rs with clang).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rampart.bpf.o"));

/// Expiries this close to the one written are the same expiry (see [`RuleValue::same_within`]).
const DEADLINE_SLACK_NS: u64 = 100_000_000;

#[path = "delta.rs"]
mod delta;
#[path = "readback.rs"]
mod readback;
#[path = "sources.rs"]
mod sources;
#[path = "testrun.rs"]
mod testrun;
#[path = "v6.rs"]
mod v6;
pub use testrun::{LpmTries, TestRunner};

/// The main program's name in the object (and its pin file).
pub const PROGRAM: &str = "xdp_rampart";
/// The benchmark's comparison over the kernel LPM trie.
const LPM_PROGRAM: &str = "xdp_lpm";
/// The benchmark's zero (BPF_PROG_TEST_RUN's own cost).
const NOOP_PROGRAM: &str = "xdp_noop";

/// What was last written to the maps, so a reconcile writes only differences.
#[derive(Default)]
struct Written {
    rules: HashMap<u32, RuleValue>,
    /// The live generation's source tables.
    src: SourceWritten,
    /// The standby generation's (what the next full reload finds there).
    standby: SourceWritten,
    dsts: [HashMap<[u8; PREFIX_KEY_SIZE], [u8; DST_ENTRY_SIZE]>; 2],
    dst_lengths: [BTreeSet<u8>; 2],
    sigs: HashMap<u32, [u8; SIG_MATCH_SIZE]>,
}

/// What the source tables of one generation hold.
#[derive(Default)]
struct SourceWritten {
    /// What the maps hold is not known (found pinned, or a write to them failed): read back
    /// before the generation is filled by a full reload, never changed in place.
    unknown: bool,
    dir: Option<Dir248>,
    /// The IPv4 prefixes `dir` was built from (an unchanged list skips the rebuild).
    v4_input: Vec<(Ipv4Net, u32)>,
    v4_hosts: HashMap<[u8; 4], u32>,
    /// Pinned maps were reused: the first reconcile rewrites the whole IPv4 table.
    tbl24_unknown: bool,
    /// IPv6 entries below /32 and from /32 on, each set with its lengths entry.
    v6: [HashMap<[u8; PREFIX_KEY_SIZE], u32>; 2],
    v6_lengths: [BTreeSet<u8>; 2],
    /// The Bloom filter words as written (`None`: unknown, rewritten whole).
    v6_filter: Option<Vec<u64>>,
    /// The length masks (two words a slot) as written (`None`: unknown, rewritten whole).
    v6_masks: Option<Vec<u64>>,
}

impl SourceWritten {
    /// What a new generation's maps hold: nothing (arrays zeroed, hashes empty).
    fn empty() -> Self {
        SourceWritten {
            v6_filter: Some(vec![0; layout::V6_FILTER_WORDS]),
            v6_masks: Some(vec![0; 2 * layout::V6_MASK_SLOTS]),
            ..SourceWritten::default()
        }
    }

    /// What maps of unknown content hold.
    fn unknown() -> Self {
        SourceWritten { unknown: true, tbl24_unknown: true, ..SourceWritten::default() }
    }
}

/// A loaded XDP filter.
pub struct XdpFilter {
    object: Object,
    options: Options,
    rule_ids: SlotIds<RuleKey>,
    sig_ids: SlotIds<DecisionId>,
    written: Written,
    /// The live generation of the source tables, and the standby one (both for as long as
    /// the filter runs: a full reload fills the standby and flips them).
    live: Generation,
    standby: Generation,
    cpus: usize,
    /// The plan last written in full or by a delta (`None` after a failure: the next
    /// reconcile is a full one).
    last_plan: Option<FilterPlan>,
    /// Whether the program was loaded with the SYN cookie helpers, or why not.
    syn_cookies: Result<(), &'static str>,
    /// Why cookie guards fell back to a per-source rate at the last full reconcile.
    cookie_fallback: Option<String>,
}

impl std::fmt::Debug for XdpFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpFilter").field("options", &self.options).finish_non_exhaustive()
    }
}

impl XdpFilter {
    /// Loads the program with `options`' map sizes; with a pin directory, maps already pinned
    /// there are reused (their rules keep dropping throughout) and new ones are pinned.
    pub fn open(options: Options) -> Result<Self, XdpError> {
        let mut open =
            ObjectBuilder::default().open_memory(OBJECT).map_err(bpf_error("opening the XDP object"))?;
        let caps = options.capacity;
        let mut reused = false;
        if let Some(dir) = &options.pin_dir {
            if !super::on_bpffs(dir) {
                return Err(XdpError::NotBpffs(dir.clone()));
            }
            std::fs::create_dir_all(dir).map_err(|source| XdpError::Io { path: dir.clone(), source })?;
        }
        let syn_cookies = if !options.syn_cookies {
            Err("turned off in the loader's options")
        } else if syncookie_helpers() {
            Ok(())
        } else {
            Err("this kernel has no bpf_tcp_raw_gen_syncookie helpers for XDP")
        };
        // The source tables' inner map templates, sized here (kept until the outer maps exist).
        let mut templates = Vec::new();
        for mut map in open.maps_mut() {
            let name = map.name().to_string_lossy().into_owned();
            if let Some(table) = TABLES.iter().find(|t| t.name() == name) {
                let template = table.template(&caps)?;
                map.set_inner_map_fd(template.as_fd())
                    .map_err(bpf_error(format!("inner map template of {name}")))?;
                templates.push(template);
            }
            if name.ends_with(".rodata") {
                // The program's constants: set per load, never pinned.
                if syn_cookies.is_ok() {
                    set_rodata_u32(&mut map, 1)?;
                }
                continue;
            }
            let size = match name.as_str() {
                "rules" | "rule_stats" => Some(caps.rules),
                "dsts" => Some(caps.destinations),
                "sig_matches" => Some(caps.signatures),
                "buckets" => Some(caps.buckets),
                "lpm_v4" => Some(caps.lpm_v4),
                "lpm_v6" => Some(caps.lpm_v6),
                _ => None,
            };
            if let Some(n) = size {
                map.set_max_entries(n.max(1)).map_err(bpf_error(format!("sizing map {name}")))?;
            }
            if let Some(dir) = &options.pin_dir {
                let path = dir.join(&name);
                reused |= path.exists();
                map.set_pin_path(&path).map_err(bpf_error(format!("pin path {}", path.display())))?;
            }
        }
        let object = open.load().map_err(bpf_error(
            "loading the XDP program (a pinned map of another size or layout cannot be reused: \
             `rampart filter detach --purge` removes them)",
        ))?;
        drop(templates);
        let (live, standby) = sources::generations(&object, &caps)?;
        if let Some(dir) = &options.pin_dir {
            for mut prog in object.progs_mut() {
                if prog.name() != PROGRAM {
                    continue;
                }
                let path = dir.join(PROGRAM);
                if path.exists() {
                    std::fs::remove_file(&path)
                        .map_err(|source| XdpError::Io { path: path.clone(), source })?;
                }
                prog.pin(&path).map_err(bpf_error(format!("pinning the program at {}", path.display())))?;
            }
        }
        let cpus = libbpf_rs::num_possible_cpus().map_err(bpf_error("counting CPUs"))?;
        let mut filter = XdpFilter {
            object,
            rule_ids: SlotIds::new(caps.rules.saturating_sub(1).max(1)),
            sig_ids: SlotIds::new(caps.signatures.saturating_sub(1).max(1)),
            options,
            written: Written::default(),
            cpus,
            last_plan: None,
            syn_cookies,
            cookie_fallback: None,
            live,
            standby,
        };
        if reused {
            filter.restore()?;
        } else {
            filter.start_empty()?;
        }
        Ok(filter)
    }

    /// Reads back what pinned maps hold: which decision owns which rule slot and signature
    /// slot, the IPv6 and destination entries (so stale ones get deleted).
    fn restore(&mut self) -> Result<(), XdpError> {
        let mut decisions: HashMap<u32, u64> = HashMap::default();
        {
            let rules = find_map(&self.object, "rules")?;
            let high = read_high_water(&find_map(&self.object, "meta")?)?;
            for (slot, value) in read_rules(&rules, high)? {
                let Some(rule) = RuleValue::decode(&value) else { continue };
                if rule.action == layout::ACTION_NONE {
                    continue;
                }
                self.written.rules.insert(slot, rule);
                if rule.decision != 0 {
                    decisions.insert(slot, rule.decision);
                    self.rule_ids.restore(RuleKey::Decision(DecisionId(rule.decision)), slot);
                } else {
                    // A SYN guard: its key is not recorded in the map; the reconcile that
                    // follows gives it a slot again, this one is marked taken until then.
                    self.rule_ids.restore(RuleKey::SynGuard(orphan_key(slot)), slot);
                }
            }
        }
        self.rule_ids.finish_restore();
        {
            let sigs = find_map(&self.object, "sig_matches")?;
            let iter = sigs
                .lookup_batch(BATCH as u32, MapFlags::ANY, MapFlags::ANY)
                .map_err(bpf_error("reading signatures"))?;
            for (key, value) in iter {
                let (Some(slot), Some(rule)) = (le_u32(&key), le_u32(&value)) else { continue };
                if let Some(&decision) = decisions.get(&rule) {
                    self.sig_ids.restore(DecisionId(decision), slot);
                    let mut enc = [0u8; SIG_MATCH_SIZE];
                    enc[..80].copy_from_slice(&value[..80]);
                    self.written.sigs.insert(slot, enc);
                }
            }
        }
        self.sig_ids.finish_restore();
        // The source tables keep dropping as they are; the first reconcile fills the standby
        // generation (read back first: an interrupted reload may have left entries in it)
        // and flips to it.
        self.written.src = SourceWritten::unknown();
        self.written.standby = SourceWritten::unknown();
        for key in find_map(&self.object, "dsts")?.keys() {
            let Ok(k) = <[u8; PREFIX_KEY_SIZE]>::try_from(key.as_slice()) else { continue };
            let family = usize::from(k[0] == 6);
            self.written.dsts[family].insert(k, [0xff; DST_ENTRY_SIZE]);
            self.written.dst_lengths[family].insert(k[1]);
        }
        Ok(())
    }

    /// Attaches to `interface` (in this network namespace), natively, generically or the
    /// first that works; returns the mode used. Refuses to replace another XDP program.
    pub fn attach(&self, interface: &str, mode: super::AttachMode) -> Result<&'static str, XdpError> {
        let ifindex = interface_index(interface)?;
        let prog = find_program(&self.object, PROGRAM)?;
        let xdp = Xdp::new(prog.as_fd());
        if let Ok(existing) = xdp.query(ifindex as i32, XdpFlags::NONE) {
            let id = existing.prog_id;
            if id != 0 && program_name(id).as_deref() != Some(PROGRAM) {
                return Err(XdpError::Bpf {
                    what: format!("attaching to {interface}"),
                    source: format!(
                        "another XDP program (id {id}) is attached there; Rampart does not replace it"
                    )
                    .into(),
                });
            }
        }
        let try_mode = |flags: XdpFlags, name: &'static str| {
            // Replace a Rampart program of the other mode first (the kernel allows one mode).
            let _ = xdp.detach(
                ifindex as i32,
                if name == "native" { XdpFlags::SKB_MODE } else { XdpFlags::DRV_MODE },
            );
            xdp.attach(ifindex as i32, flags).map(|()| name)
        };
        let result = match mode {
            super::AttachMode::Native => try_mode(XdpFlags::DRV_MODE, "native"),
            super::AttachMode::Generic => try_mode(XdpFlags::SKB_MODE, "generic"),
            super::AttachMode::Auto => {
                try_mode(XdpFlags::DRV_MODE, "native").or_else(|_| try_mode(XdpFlags::SKB_MODE, "generic"))
            }
        };
        result.map_err(bpf_error(format!("attaching to {interface}")))
    }

    /// Whether this filter's program is attached to `interface`.
    pub fn attached_to(&self, interface: &str) -> Result<Option<&'static str>, XdpError> {
        let rules = find_map(&self.object, "rules")?;
        let id = rules.info().map_err(bpf_error("map info"))?.info.id;
        attached_here(interface_index(interface)?, id)
    }

    /// Makes the maps say what `plan` says at `now` (`boot_now_ns`: the boot clock read at the
    /// same moment as `now`, see [`super::time`]).
    pub fn reconcile(
        &mut self,
        plan: &FilterPlan,
        now: EventTime,
        boot_now_ns: u64,
    ) -> Result<ReconcileReport, XdpError> {
        self.reconcile_with(plan, now, boot_now_ns, false)
    }

    /// [`Self::reconcile`] as a full reload whatever changed: the source tables are filled
    /// anew off to the side and swapped in (`rampart filter apply` of a whole new set).
    pub fn reload(
        &mut self,
        plan: &FilterPlan,
        now: EventTime,
        boot_now_ns: u64,
    ) -> Result<ReconcileReport, XdpError> {
        self.reconcile_with(plan, now, boot_now_ns, true)
    }

    fn reconcile_with(
        &mut self,
        plan: &FilterPlan,
        now: EventTime,
        boot_now_ns: u64,
        force_swap: bool,
    ) -> Result<ReconcileReport, XdpError> {
        let result = self.reconcile_plan(plan, now, boot_now_ns, force_swap);
        if result.is_err() {
            // A write in place may have stopped half way: the live record is no longer sure.
            self.written.src.unknown = true;
        }
        result
    }

    fn reconcile_plan(
        &mut self,
        plan: &FilterPlan,
        now: EventTime,
        boot_now_ns: u64,
        force_swap: bool,
    ) -> Result<ReconcileReport, XdpError> {
        let last = self.last_plan.take();
        // The standby generation filled and flipped when the live one is unknown (a restart, a
        // failed write) or when most of it changes.
        let mut swap = force_swap || !self.v4_table_known() || last.is_none();
        if !swap && let Some(mut last) = last {
            match self.source_delta(&last, plan, now, boot_now_ns)? {
                delta::Delta::Applied(report) => {
                    // Into the last plan's allocations: a fresh copy of a million rules costs
                    // more than the delta.
                    let FilterPlan { v4, v6, signatures, syn_guards, skipped } = &mut last;
                    v4.clone_from(&plan.v4);
                    v6.clone_from(&plan.v6);
                    signatures.clone_from(&plan.signatures);
                    syn_guards.clone_from(&plan.syn_guards);
                    skipped.clone_from(&plan.skipped);
                    self.last_plan = Some(last);
                    return Ok(report);
                }
                delta::Delta::Full { large } => swap = large,
            }
        }
        let mut report = ReconcileReport {
            rules: plan.rules().count() + plan.syn_guards.len(),
            v4_prefixes: plan.v4.len(),
            v6_prefixes: plan.v6.len(),
            signatures: plan.signatures.len(),
            syn_guards: plan.syn_guards.len(),
            ..ReconcileReport::default()
        };

        // 1. Slots.
        let mut keys: Vec<RuleKey> = plan.rules().map(|r| RuleKey::Decision(r.decision)).collect();
        keys.extend(plan.syn_guards.iter().map(|g| RuleKey::SynGuard(g.destination)));
        let assignment = self.rule_ids.assign(&keys).map_err(|e| XdpError::Full {
            what: "rules",
            wanted: e.wanted,
            capacity: e.capacity,
        })?;
        let sig_keys: Vec<DecisionId> = plan.signatures.iter().map(|s| s.rule.decision).collect();
        self.sig_ids.assign(&sig_keys).map_err(|e| XdpError::Full {
            what: "signatures",
            wanted: e.wanted,
            capacity: e.capacity,
        })?;
        let slot = |ids: &SlotIds<RuleKey>, key: RuleKey| ids.get(&key).unwrap_or(0);

        // 2. Rules, then counters of reused slots.
        let mut desired: Vec<(u32, RuleValue)> = Vec::with_capacity(keys.len());
        for spec in plan.rules() {
            let value =
                RuleValue::new(spec.action, spec.decision.0, boot_deadline(spec.expires, now, boot_now_ns));
            desired.push((slot(&self.rule_ids, RuleKey::Decision(spec.decision)), value));
        }
        for g in &plan.syn_guards {
            let value = RuleValue::new(
                RuleAction::RatePackets(g.per_source_pps),
                0,
                boot_deadline(g.expires, now, boot_now_ns),
            );
            desired.push((slot(&self.rule_ids, RuleKey::SynGuard(g.destination)), value));
        }
        // Deadlines derive from two clocks read once per reconcile (the boot clock to 10 ms):
        // the same expiry read again is not a change.
        desired.retain(|(s, v)| {
            self.written.rules.get(s).is_none_or(|held| !held.same_within(v, DEADLINE_SLACK_NS))
        });
        self.commit_rules(desired, &assignment.reused, &mut report)?;

        // 3. IPv4 sources: groups before the /24 slots that point at them.
        let (hosts, v4): (Vec<Ipv4Rule>, Vec<Ipv4Rule>) = plan
            .v4
            .iter()
            .filter_map(|p| match p.source {
                IpNet::V4(n) => Some((n, slot(&self.rule_ids, RuleKey::Decision(p.rule.decision)))),
                IpNet::V6(_) => None,
            })
            .partition(|(n, _)| n.prefix_len() == 32);
        let hosts: HashMap<[u8; 4], u32> = hosts.into_iter().map(|(n, s)| (n.addr().octets(), s)).collect();
        if swap {
            self.swap_sources(&hosts, &v4, plan, &mut report)?;
        } else {
            self.write_sources(&hosts, &v4, plan, false, &mut report)?;
        }

        // 5. Signatures and SYN guards per destination.
        let mut sig_writes = Vec::new();
        let mut dst_sigs: HashMap<IpNet, (Vec<u32>, u32, bool)> = HashMap::default();
        let mut live_sigs = BTreeSet::new();
        for s in &plan.signatures {
            let sig_slot = self.sig_ids.get(&s.rule.decision).unwrap_or(0);
            live_sigs.insert(sig_slot);
            let enc = layout::sig_match(slot(&self.rule_ids, RuleKey::Decision(s.rule.decision)), &s.matcher);
            if self.written.sigs.get(&sig_slot) != Some(&enc) {
                sig_writes.push((sig_slot.to_ne_bytes().to_vec(), enc.to_vec()));
                self.written.sigs.insert(sig_slot, enc);
            }
            for d in &s.destinations {
                dst_sigs.entry(*d).or_default().0.push(sig_slot);
            }
        }
        self.written.sigs.retain(|s, _| live_sigs.contains(s));
        let cookies = if plan.syn_guards.iter().any(|g| g.mode == SynMode::Cookies) {
            report.syn_cookie_fallback = super::syn_cookie_problem(self.syn_cookies);
            report.syn_cookie_fallback.is_none()
        } else {
            false
        };
        self.cookie_fallback.clone_from(&report.syn_cookie_fallback);
        for g in &plan.syn_guards {
            let entry = dst_sigs.entry(g.destination).or_default();
            entry.1 = slot(&self.rule_ids, RuleKey::SynGuard(g.destination));
            entry.2 = cookies && g.mode == SynMode::Cookies;
        }
        report.elements_written += update_all(&find_map(&self.object, "sig_matches")?, &sig_writes)?;
        let mut by_family: [HashMap<[u8; PREFIX_KEY_SIZE], [u8; DST_ENTRY_SIZE]>; 2] = Default::default();
        let mut lengths: [BTreeSet<u8>; 2] = Default::default();
        for (net, (sigs, syn, cookies)) in &dst_sigs {
            let family = usize::from(net.addr().is_ipv6());
            by_family[family].insert(layout::prefix_key(*net), layout::dst_entry(sigs, *syn, *cookies));
            lengths[family].insert(net.prefix_len());
        }
        for family in 0..2 {
            let wanted = std::mem::take(&mut lengths[family]);
            report.elements_written +=
                self.sync_hash("dsts", "dst_lengths", family as u32, &by_family[family], wanted, |w| {
                    (&mut w.dsts[family], &mut w.dst_lengths[family])
                })?;
        }

        self.release_rules(&assignment.released, &mut report)?;
        self.last_plan = Some(plan.clone());
        Ok(report)
    }

    /// The IPv6 source tables from `plan`: lengths widened to old and new while entries
    /// change; the Bloom filter gains bits before entries are added and loses them after they
    /// are deleted.
    /// Writes `rules` (zeroing the counters of the `reused` slots first), then the slots' high
    /// water mark, and remembers what was written.
    fn commit_rules(
        &mut self,
        rules: Vec<(u32, RuleValue)>,
        reused: &[u32],
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        let writes: Vec<(Vec<u8>, Vec<u8>)> =
            rules.iter().map(|(s, v)| (s.to_ne_bytes().to_vec(), v.encode().to_vec())).collect();
        let stats = find_map(&self.object, "rule_stats")?;
        report.elements_written += zero_percpu(&stats, reused, COUNTERS_SIZE, self.cpus)?;
        report.elements_written += update_all(&find_map(&self.object, "rules")?, &writes)?;
        let high = u64::from(self.rule_ids.high_water());
        find_map(&self.object, "meta")?
            .update(&0u32.to_ne_bytes(), &high.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_error("writing meta"))?;
        for (s, v) in rules {
            self.written.rules.insert(s, v);
        }
        Ok(())
    }

    /// Released rules match nothing once no table points at them: cleared last.
    fn release_rules(&mut self, released: &[u32], report: &mut ReconcileReport) -> Result<(), XdpError> {
        let releases: Vec<(Vec<u8>, Vec<u8>)> = released
            .iter()
            .map(|s| (s.to_ne_bytes().to_vec(), RuleValue::default().encode().to_vec()))
            .collect();
        report.elements_written += update_all(&find_map(&self.object, "rules")?, &releases)?;
        for s in released {
            self.written.rules.remove(s);
        }
        report.released = released.len();
        Ok(())
    }

    /// Whether the IPv4 table's image is what the maps hold (a delta can apply to it).
    fn v4_table_known(&self) -> bool {
        self.written.src.dir.is_some() && !self.written.src.tbl24_unknown && !self.written.src.unknown
    }

    /// Applies a delta to the IPv4 table image and writes what changed.
    fn write_v4_delta(
        &mut self,
        removed: &[Ipv4Net],
        added: &[(Ipv4Net, u32)],
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        if removed.is_empty() && added.is_empty() {
            return Ok(());
        }
        let Some(dir) = self.written.src.dir.as_mut() else { return Ok(()) };
        let changes = dir.update(removed, added)?;
        let mut gone: Vec<Ipv4Net> = removed.iter().chain(added.iter().map(|(n, _)| n)).copied().collect();
        gone.sort_unstable();
        let mut fresh = added.to_vec();
        fresh.sort_unstable_by_key(|(n, _)| *n);
        // The input list, kept sorted: the old one without what changed (a walk beside the
        // sorted changes, not a hash lookup per prefix held), merged with the new.
        let held = std::mem::take(&mut self.written.src.v4_input);
        let mut merged = Vec::with_capacity(held.len() + fresh.len());
        let mut gone = gone.into_iter().peekable();
        let kept = held.into_iter().filter(|(n, _)| {
            while gone.next_if(|g| g < n).is_some() {}
            gone.peek() != Some(n)
        });
        let mut fresh = fresh.into_iter().peekable();
        for item in kept {
            while let Some(f) = fresh.next_if(|f| f.0 < item.0) {
                merged.push(f);
            }
            merged.push(item);
        }
        merged.extend(fresh);
        self.written.src.v4_input = merged;
        self.write_v4_changes(changes.groups, changes.blocks, report)
    }

    /// Brings a per-length hash (and its lengths entry `lengths_index`) to `wanted`: lengths
    /// widened first, stale entries deleted, the others written, lengths narrowed.
    fn sync_hash<V: Copy + PartialEq + AsBytes>(
        &mut self,
        map: &str,
        lengths_map: &str,
        lengths_index: u32,
        wanted: &HashMap<[u8; PREFIX_KEY_SIZE], V>,
        wanted_lengths: BTreeSet<u8>,
        state: impl Fn(&mut Written) -> (&mut HashMap<[u8; PREFIX_KEY_SIZE], V>, &mut BTreeSet<u8>),
    ) -> Result<usize, XdpError> {
        let mut written = 0;
        let (lengths, hash) = (self.map_named(lengths_map)?, self.map_named(map)?);
        let (held, held_lengths) = state(&mut self.written);
        let union: BTreeSet<u8> = held_lengths.union(&wanted_lengths).copied().collect();
        let upserts: Vec<(Vec<u8>, Vec<u8>)> = wanted
            .iter()
            .filter(|(k, v)| held.get(*k) != Some(v))
            .map(|(k, v)| (k.to_vec(), v.as_bytes()))
            .collect();
        let stale: Vec<Vec<u8>> =
            held.keys().filter(|k| !wanted.contains_key(*k)).map(|k| k.to_vec()).collect();
        let widen = union != *held_lengths;
        let narrow = union != wanted_lengths;
        let index = lengths_index.to_ne_bytes();
        {
            if widen {
                lengths
                    .update(&index, &layout::lengths(union.iter().copied()), MapFlags::ANY)
                    .map_err(bpf_error(format!("writing {lengths_map}")))?;
                written += 1;
            }
            // Stale ones first, as for the hosts: room in a full hash for the new ones.
            written += delete_all(&hash, &stale)?;
            written += update_all(&hash, &upserts)?;
            if narrow || widen {
                lengths
                    .update(&index, &layout::lengths(wanted_lengths.iter().copied()), MapFlags::ANY)
                    .map_err(bpf_error(format!("writing {lengths_map}")))?;
                written += 1;
            }
        }
        let (held, held_lengths) = state(&mut self.written);
        *held = wanted.clone();
        *held_lengths = wanted_lengths;
        Ok(written)
    }

    /// The pin directory, if any.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.options.pin_dir.as_deref()
    }

    /// Whether the loaded program answers SYNs with cookies where a guard asks for them, or
    /// why not.
    pub fn syn_cookies(&self) -> Result<(), &'static str> {
        self.syn_cookies
    }
}

pub(super) fn find_map<'a>(object: &'a Object, name: &str) -> Result<Map<'a>, XdpError> {
    object.maps().find(|m| m.name() == name).ok_or_else(|| XdpError::Bpf {
        what: format!("map {name}"),
        source: "missing from the XDP object".into(),
    })
}

fn find_program<'a>(object: &'a Object, name: &str) -> Result<libbpf_rs::ProgramMut<'a>, XdpError> {
    object.progs_mut().find(|p| p.name() == name).ok_or_else(|| XdpError::Bpf {
        what: format!("program {name}"),
        source: "missing from the XDP object".into(),
    })
}

fn run(prog: &libbpf_rs::ProgramMut<'_>, packet: &[u8], repeat: u32) -> Result<(u32, Duration), XdpError> {
    let input = ProgramInput { data_in: Some(packet), repeat, ..ProgramInput::default() };
    let out = prog.test_run(input).map_err(bpf_error("BPF_PROG_TEST_RUN"))?;
    Ok((out.return_value, out.duration))
}

/// The highest rule slot ever used plus one, from the `meta` map.
pub(super) fn read_high_water<M: MapCore>(meta: &M) -> Result<u32, XdpError> {
    let v = meta
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(bpf_error("reading meta"))?
        .unwrap_or_default();
    Ok(v.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_ne_bytes).min(u64::from(u32::MAX))
        as u32)
}

/// Rule slots 1..high with their raw values (slots the program never used are skipped).
pub(super) fn read_rules<M: MapCore>(rules: &M, high: u32) -> Result<Vec<(u32, Vec<u8>)>, XdpError> {
    let mut out = Vec::new();
    for slot in 1..high.min(rules.max_entries()) {
        if let Some(v) = rules
            .lookup(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_error(format!("reading rule {slot}")))?
        {
            out.push((slot, v));
        }
    }
    Ok(out)
}

fn le_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// A placeholder key for a restored SYN guard slot (never a real destination: /0 of the
/// documentation range with the slot in the address keeps keys distinct).
fn orphan_key(slot: u32) -> IpNet {
    IpNet::V6(
        ipnet::Ipv6Net::new(
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, (slot >> 16) as u16, slot as u16),
            128,
        )
        .unwrap_or_default(),
    )
}

/// Map values as bytes.
trait AsBytes {
    fn as_bytes(&self) -> Vec<u8>;
}

impl AsBytes for u32 {
    fn as_bytes(&self) -> Vec<u8> {
        self.to_ne_bytes().to_vec()
    }
}

impl AsBytes for [u8; DST_ENTRY_SIZE] {
    fn as_bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
}
