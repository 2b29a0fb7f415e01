use super::*;
use proptest::prelude::*;
use rampart_contract::{Direction, Level, Metric, Trigger};
use std::collections::HashMap;

/// A fresh directory under a temporary one that is removed when the guard drops
/// (`tempfile`); the directory itself does not exist yet.
fn temp_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::Builder::new().prefix("rampart-store-").tempdir().unwrap();
    let dir = scratch.path().join(name);
    (scratch, dir)
}

/// An inbound attack on host `target` with the engine's id, started at `start`.
fn typed_attack(engine_id: u64, target: &str, start: EventTime) -> Attack {
    let trigger = Trigger::new(Level::Host, Metric::Pps, 10, 5, start);
    let mut attack =
        Attack::new(AttackId(engine_id), Target::Host(target.parse().unwrap()), Direction::Inbound, trigger);
    attack.peak_pps = 10;
    attack
}

fn event(kind: EventKind, engine_id: u64, target: &str) -> NewEvent {
    NewEvent { kind, attack: typed_attack(engine_id, target, EventTime::ZERO) }
}

fn host(target: &str) -> Target {
    Target::Host(target.parse().unwrap())
}

#[test]
fn records_and_reads_back_with_rewritten_ids() {
    let (_scratch, dir) = temp_dir("basic");
    let mut store = Store::open(&dir).unwrap();
    assert_eq!(store.run(), 1);
    let stored = store
        .record(
            &[event(EventKind::Onset, 7, "198.51.100.1"), event(EventKind::Onset, 9, "198.51.100.2")],
            100,
        )
        .unwrap();
    assert_eq!(stored.iter().map(|e| e.attack_id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(stored[0].attack.id, AttackId(1));
    assert_eq!(stored[0].attack.target, host("198.51.100.1"));
    assert_eq!((stored[1].attack.id, stored[1].attack.peak_pps), (AttackId(2), 10));
    let stored = store.record(&[event(EventKind::End, 7, "198.51.100.1")], 200).unwrap();
    assert_eq!(stored[0].attack_id, 1);
    assert_eq!(stored[0].seq, 3);
    let attacks = store.attacks().unwrap();
    assert_eq!(attacks.len(), 2);
    assert_eq!(attacks[0].status, Status::Ended);
    assert_eq!((attacks[0].events, attacks[0].first_recorded, attacks[0].last_recorded), (2, 100, 200));
    assert_eq!(attacks[1].status, Status::Ongoing);
    assert_eq!(attacks[1].engine_id, 9);
    assert_eq!(attacks[0].attack, stored[0].attack, "the latest state is the last event's attack");
    let events = store.events(1).unwrap();
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Onset, EventKind::End]);
    assert!(events.iter().all(|e| e.attack.id == AttackId(1)));
    assert!(store.attack(3).unwrap().is_none());
}

#[test]
fn survives_reopen_and_keeps_ids_unique_across_runs() {
    let (_scratch, dir) = temp_dir("reopen");
    {
        let mut store = Store::open(&dir).unwrap();
        store.record(&[event(EventKind::Onset, 1, "192.0.2.1")], 5).unwrap();
        // Dropped with the attack still ongoing: as if the daemon died.
    }
    let mut store = Store::open(&dir).unwrap();
    assert_eq!(store.run(), 2);
    let first = store.attack(1).unwrap().unwrap();
    assert_eq!(first.status, Status::Interrupted);
    assert_eq!(first.attack.target, host("192.0.2.1"));
    // The new engine numbers from 1 again: a new store id.
    let stored = store.record(&[event(EventKind::Onset, 1, "192.0.2.9")], 6).unwrap();
    assert_eq!(stored[0].attack_id, 2);
    assert_eq!(store.attack(2).unwrap().unwrap().run, 2);
    drop(store);
    let reader = StoreReader::open(&dir).unwrap();
    assert_eq!(reader.attacks().unwrap().len(), 2);
    assert_eq!(reader.events(2).unwrap().len(), 1);
}

#[test]
fn reader_reports_a_missing_store() {
    let (_scratch, dir) = temp_dir("missing");
    let error = StoreReader::open(&dir).unwrap_err();
    assert!(matches!(error, StoreError::Missing { .. }), "{error}");
}

#[test]
fn unwritable_directory_is_a_directory_error() {
    let error = Store::open(Path::new("/proc/rampart-store-test")).unwrap_err();
    assert!(matches!(error, StoreError::Directory { .. }), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of runs and events, recorded in batches of up to two: store ids unique per
    /// (run, engine id), every event kept, no id-map entry left for an ended attack. The engine
    /// never reuses an id within a run, so events after an id's end are left out.
    #[test]
    fn ids_are_unique_across_runs(runs in prop::collection::vec(prop::collection::vec((0u64..4, 0u8..3), 0..6), 1..4)) {
        let (_scratch, dir) = temp_dir(&format!("prop-{}", runs.len()));
        let mut expected_events = 0;
        let mut seen: HashMap<(u64, u64), u64> = HashMap::new();
        for run in &runs {
            let mut store = Store::open(&dir).unwrap();
            let mut ended = std::collections::HashSet::new();
            let mut live = std::collections::HashSet::new();
            let events: Vec<NewEvent> = run.iter().filter_map(|&(id, kind)| {
                let kind = [EventKind::Onset, EventKind::Update, EventKind::End][usize::from(kind)];
                if ended.contains(&id) {
                    return None;
                }
                if kind == EventKind::End {
                    ended.insert(id);
                    live.remove(&id);
                } else {
                    live.insert(id);
                }
                Some(event(kind, id, "203.0.113.1"))
            }).collect();
            for batch in events.chunks(2) {
                for stored in store.record(batch, 1).unwrap() {
                    let engine_id = store.attack(stored.attack_id).unwrap().unwrap().engine_id;
                    let id = *seen.entry((store.run(), engine_id)).or_insert(stored.attack_id);
                    prop_assert_eq!(id, stored.attack_id);
                }
            }
            prop_assert_eq!(live_rows(&store), live.len() as u64);
            let (counted, kept) = recount(&store);
            prop_assert_eq!(counted, kept);
            expected_events += events.len() as u64;
        }
        let reader = StoreReader::open(&dir).unwrap();
        let attacks = reader.attacks().unwrap();
        prop_assert_eq!(attacks.len(), seen.len());
        prop_assert_eq!(attacks.iter().map(|a| a.events).sum::<u64>(), expected_events);
    }
}

/// Rows of the (run, engine id) → store id map.
fn live_rows(store: &Store) -> u64 {
    let txn = store.db.begin_read().unwrap();
    txn.open_table(LIVE).unwrap().len().unwrap()
}

/// Child half of `abort_loses_nothing_committed`: records, then dies without any cleanup.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("RAMPART_STORE_CRASH_DIR") else { return };
    let mut store = Store::open(Path::new(&dir)).unwrap();
    store.record(&[event(EventKind::Onset, 1, "192.0.2.77")], 1).unwrap();
    store.record(&[event(EventKind::Update, 1, "192.0.2.77")], 2).unwrap();
    std::process::abort();
}

/// A process that aborts right after `record` returned loses nothing: the re-run test binary
/// (filtered to `crash_child`) writes and aborts; this process reopens and reads back.
#[test]
fn abort_loses_nothing_committed() {
    let (_scratch, dir) = temp_dir("abort");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tests::crash_child", "--test-threads", "1"])
        .env("RAMPART_STORE_CRASH_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die");
    let mut store = Store::open(&dir).unwrap();
    assert_eq!(store.run(), 2);
    let attack = store.attack(1).unwrap().expect("the committed attack");
    assert_eq!(
        (attack.status, attack.events, attack.last_event),
        (Status::Interrupted, 2, EventKind::Update)
    );
    assert_eq!(attack.attack.target, host("192.0.2.77"));
    assert_eq!(store.record(&[event(EventKind::Onset, 1, "192.0.2.78")], 3).unwrap()[0].attack_id, 2);
}

const SEC: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * SEC;
/// 2025-12-01 20:00:00 UTC.
const T0: u64 = 1_764_619_200 * SEC;

fn attack_at(kind: EventKind, engine_id: u64, target: &str, start: EventTime) -> NewEvent {
    NewEvent { kind, attack: typed_attack(engine_id, target, start) }
}

/// Counts rows of the index and event tables for one attack.
fn rows_of(store: &Store, id: u64) -> (u64, u64) {
    let txn = store.db.begin_read().unwrap();
    let index = txn.open_table(ATTACK_EVENTS).unwrap();
    let keys: Vec<u64> =
        index.range((id, 0)..=(id, u64::MAX)).unwrap().map(|e| e.unwrap().0.value().1).collect();
    let events = txn.open_table(EVENTS).unwrap();
    let present = keys.iter().filter(|&&seq| events.get(seq).unwrap().is_some()).count() as u64;
    (keys.len() as u64, present)
}

/// The payload counter against a full recount.
fn recount(store: &Store) -> (u64, u64) {
    let txn = store.db.begin_write().unwrap();
    let (counted, kept) = {
        let t = Tables::open(&txn).unwrap();
        (upgrade_scan(&t).unwrap() + t.live.len().unwrap() * LIVE_ROW, t.counter("bytes").unwrap())
    };
    txn.abort().unwrap();
    (counted, kept)
}

#[test]
fn age_retention_deletes_old_attacks_with_their_events() {
    let (_scratch, dir) = temp_dir("age");
    let retention = Retention { max_age: Some(std::time::Duration::from_secs(86_400)), max_bytes: None };
    // Recorded without retention, so that `maintain` is what deletes.
    let mut store = Store::open_with(&dir, Retention::UNLIMITED).unwrap();
    store
        .record(&[event(EventKind::Onset, 1, "192.0.2.1"), event(EventKind::Onset, 2, "192.0.2.2")], T0)
        .unwrap();
    store.record(&[event(EventKind::Update, 1, "192.0.2.1")], T0 + SEC).unwrap();
    store.record(&[event(EventKind::End, 1, "192.0.2.1")], T0 + 2 * SEC).unwrap();
    store.record(&[event(EventKind::Onset, 3, "192.0.2.3")], T0 + 2 * DAY).unwrap();
    store.record(&[event(EventKind::End, 3, "192.0.2.3")], T0 + 2 * DAY + SEC).unwrap();
    assert_eq!(rows_of(&store, 1), (3, 3));
    store.set_retention(retention);
    let report = store.maintain(T0 + 2 * DAY + 2 * SEC).unwrap();
    assert_eq!((report.pruned_attacks, report.pruned_events, report.more), (1, 3, false), "{report}");
    assert!(store.attack(1).unwrap().is_none());
    assert_eq!(rows_of(&store, 1), (0, 0));
    // Attack 2 is as old, but still ongoing: kept.
    assert_eq!(store.attack(2).unwrap().unwrap().status, Status::Ongoing);
    assert!(store.attack(3).unwrap().is_some());
    assert_eq!(recount(&store).0, recount(&store).1);
    // Nothing more to do.
    assert_eq!(store.maintain(T0 + 2 * DAY + 3 * SEC).unwrap(), Maintenance::default());
    // `record` applies age retention too: attack 2 ends now (recent), attack 3 gets old.
    store.record(&[event(EventKind::End, 2, "192.0.2.2")], T0 + 4 * DAY).unwrap();
    assert!(store.attack(3).unwrap().is_none());
    assert!(store.attack(2).unwrap().is_some());
    assert_eq!(store.stats().unwrap().events, 2);
}

#[test]
fn size_retention_keeps_the_newest_and_ids_go_on() {
    let (_scratch, dir) = temp_dir("size");
    let retention = Retention { max_age: None, max_bytes: Some(256 << 10) };
    let target = retention.payload_target().unwrap();
    let mut store = Store::open_with(&dir, retention).unwrap();
    for n in 1..=300u64 {
        // About 900 bytes of JSON: three rows of it per attack.
        let attack = typed_attack(n, "198.51.100.7", EventTime::ZERO);
        store
            .record(
                &[
                    NewEvent { kind: EventKind::Onset, attack: attack.clone() },
                    NewEvent { kind: EventKind::End, attack },
                ],
                n,
            )
            .unwrap();
        let stats = store.stats().unwrap();
        assert!(stats.payload_bytes <= target, "after attack {n}: {stats:?} over {target}");
    }
    let (counted, kept) = recount(&store);
    assert_eq!(counted, kept);
    let ids: Vec<u64> = store.attacks().unwrap().iter().map(|a| a.id).collect();
    assert!(ids.len() > 20 && ids.len() < 300, "{}", ids.len());
    // The newest, contiguous up to the last one.
    assert_eq!(ids, ((301 - ids.len() as u64)..=300).collect::<Vec<_>>());
    drop(store);
    let mut store = Store::open_with(&dir, retention).unwrap();
    let stored = store.record(&[event(EventKind::Onset, 1, "198.51.100.8")], 301).unwrap();
    assert_eq!(stored[0].attack_id, 301);
    assert_eq!(stored[0].seq, 601);
}

#[test]
fn a_long_attack_is_pruned_over_several_chunks() {
    let (_scratch, dir) = temp_dir("chunks");
    let mut store = Store::open_with(&dir, Retention::UNLIMITED).unwrap();
    let updates: Vec<NewEvent> = (0..500).map(|_| event(EventKind::Update, 1, "192.0.2.1")).collect();
    for n in 0..20 {
        store.record(&updates, T0 + n).unwrap();
    }
    store
        .record(&[event(EventKind::End, 1, "192.0.2.1"), event(EventKind::Onset, 2, "192.0.2.2")], T0 + 20)
        .unwrap();
    assert_eq!(rows_of(&store, 1), (10_001, 10_001));
    let retention = Retention { max_age: Some(std::time::Duration::from_secs(86_400)), max_bytes: None };
    // One step: at most its budget, and the attack row stays until its last event is gone.
    let txn = store.db.begin_write().unwrap();
    {
        let mut t = Tables::open(&txn).unwrap();
        let mut bytes = t.counter("bytes").unwrap();
        let step = retention::prune_step(&mut t, &mut bytes, &retention, T0 + 2 * DAY, 4096).unwrap();
        assert_eq!((step.attacks, step.events, step.done), (0, 4096, false));
        t.meta.insert("bytes", bytes).unwrap();
    }
    txn.commit().unwrap();
    assert_eq!(rows_of(&store, 1), (10_001 - 4096, 10_001 - 4096));
    assert!(store.attack(1).unwrap().is_some());
    store.set_retention(retention);
    // `maintain` stops at its time budget (debug builds are slow): call it until it is done.
    let (mut attacks, mut events) = (0, 0);
    loop {
        let report = store.maintain(T0 + 2 * DAY).unwrap();
        attacks += report.pruned_attacks;
        events += report.pruned_events;
        if !report.more {
            break;
        }
    }
    assert_eq!((attacks, events), (1, 10_001 - 4096));
    assert!(store.attack(1).unwrap().is_none());
    assert!(store.attack(2).unwrap().is_some(), "ongoing");
    assert_eq!(recount(&store).0, recount(&store).1);
}

#[test]
fn interrupted_attacks_are_named_once() {
    let (_scratch, dir) = temp_dir("interrupted");
    {
        let mut store = Store::open(&dir).unwrap();
        assert!(store.interrupted().is_empty());
        store
            .record(
                &[
                    attack_at(
                        EventKind::Onset,
                        1,
                        "198.51.100.10",
                        EventTime::from_unix_micros(1_764_619_200_500_000),
                    ),
                    attack_at(EventKind::Onset, 2, "198.51.100.11", EventTime::from_unix_secs(1_764_619_260)),
                ],
                T0,
            )
            .unwrap();
        store
            .record(
                &[attack_at(EventKind::End, 2, "198.51.100.11", EventTime::from_unix_secs(1_764_619_260))],
                T0 + SEC,
            )
            .unwrap();
        assert_eq!(live_rows(&store), 1);
    }
    let store = Store::open(&dir).unwrap();
    let lines: Vec<String> = store.interrupted().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["attack 1 on 198.51.100.10 (since 2025-12-01T20:00:00.500Z) was interrupted by the previous stop"]
    );
    assert_eq!(store.interrupted()[0].run, 1);
    assert_eq!(live_rows(&store), 0);
    assert_eq!(recount(&store).0, recount(&store).1);
    drop(store);
    assert!(Store::open(&dir).unwrap().interrupted().is_empty(), "named by the first restart only");
}

/// A store written before `live` and the byte counter existed is upgraded on open.
#[test]
fn version_1_stores_are_upgraded() {
    let (_scratch, dir) = temp_dir("upgrade");
    {
        let mut store = Store::open(&dir).unwrap();
        store
            .record(&[event(EventKind::Onset, 1, "192.0.2.1"), event(EventKind::Onset, 2, "192.0.2.2")], 1)
            .unwrap();
        store.record(&[event(EventKind::End, 2, "192.0.2.2")], 2).unwrap();
        // Back to version 1: no schema, no byte count, no live table.
        let txn = store.db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.remove("schema").unwrap();
            meta.remove("bytes").unwrap();
        }
        txn.delete_table(LIVE).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.interrupted().iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
    assert_eq!(store.attack(2).unwrap().unwrap().status, Status::Ended);
    let (counted, kept) = recount(&store);
    assert!(kept > 0);
    assert_eq!(counted, kept);
}

#[test]
fn listing_pages_newest_first_and_streams() {
    let (_scratch, dir) = temp_dir("list");
    let mut store = Store::open(&dir).unwrap();
    for n in 1..=10u64 {
        store.record(&[event(EventKind::Onset, n, "203.0.113.5")], T0 + n * SEC).unwrap();
    }
    let reader = StoreReader::open(&dir).unwrap();
    let ids = |page: &AttackPage| page.attacks.iter().map(|a| a.id).collect::<Vec<_>>();
    let page = reader.list(None, 3).unwrap();
    assert_eq!((ids(&page), page.next), (vec![10, 9, 8], Some(8)));
    let page = reader.list(page.next, 3).unwrap();
    assert_eq!((ids(&page), page.next), (vec![7, 6, 5], Some(5)));
    let page = reader.list(Some(4), 3).unwrap();
    assert_eq!((ids(&page), page.next), (vec![3, 2, 1], None));
    let page = reader.list(None, 100).unwrap();
    assert_eq!((page.attacks.len(), page.next), (10, None));
    assert_eq!(reader.list(Some(1), 5).unwrap(), AttackPage { attacks: Vec::new(), next: None });
    assert_eq!(reader.list(None, 0).unwrap().attacks.len(), 0);
    let streamed: Vec<u64> = reader.iter(3..=5, Order::OldestFirst).unwrap().map(|a| a.unwrap().id).collect();
    assert_eq!(streamed, [3, 4, 5]);
    let streamed: Vec<u64> = reader.iter(8.., Order::NewestFirst).unwrap().map(|a| a.unwrap().id).collect();
    assert_eq!(streamed, [10, 9, 8]);
    assert_eq!(reader.first_since(T0 + 7 * SEC).unwrap(), Some(7));
    assert_eq!(reader.first_since(T0 + 7 * SEC - 1).unwrap(), Some(7));
    assert_eq!(reader.first_since(0).unwrap(), Some(1));
    assert_eq!(reader.first_since(T0 + 11 * SEC).unwrap(), None);
    assert_eq!(reader.first_of_latest(None, 3).unwrap(), Some(8));
    assert_eq!(reader.first_of_latest(Some(8), 3).unwrap(), Some(5));
    assert_eq!(reader.first_of_latest(None, 50).unwrap(), Some(1));
    assert_eq!(reader.first_of_latest(Some(1), 50).unwrap(), None);
    assert_eq!(reader.first_of_latest(None, 0).unwrap(), None);
    // A listing is one snapshot: what the writer adds meanwhile is not in it.
    let mut iter = reader.iter(.., Order::OldestFirst).unwrap();
    store.record(&[event(EventKind::Onset, 11, "203.0.113.5")], T0 + 11 * SEC).unwrap();
    assert_eq!(iter.by_ref().count(), 10);
    assert_eq!(reader.stats().unwrap().attacks, 11);
}

#[test]
fn an_empty_store_lists_nothing() {
    let (_scratch, dir) = temp_dir("empty");
    drop(Store::open(&dir).unwrap());
    let reader = StoreReader::open(&dir).unwrap();
    assert_eq!(reader.list(None, 10).unwrap(), AttackPage { attacks: Vec::new(), next: None });
    assert_eq!(reader.first_since(0).unwrap(), None);
    assert_eq!(reader.stats().unwrap().attacks, 0);
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_store_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (_scratch, dir) = temp_dir("private");
    let store = Store::open(&dir).unwrap();
    assert!(store.warnings().is_empty(), "{:?}", store.warnings());
    assert_eq!((mode(&dir), mode(store.path())), (0o700, 0o600));
    let path = store.path().to_owned();
    drop(store);
    // As an earlier version left them.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(&dir).unwrap();
    let warnings = store.warnings().join("\n");
    assert_eq!(store.warnings().len(), 2, "{warnings}");
    assert!(warnings.contains("data directory") && warnings.contains("0755"), "{warnings}");
    assert!(warnings.contains("rampart.redb") && warnings.contains("0644"), "{warnings}");
    assert_eq!((mode(&dir), mode(&path)), (0o700, 0o600));
}

#[test]
fn the_id_map_is_bounded_even_if_attacks_never_end() {
    let (_scratch, dir) = temp_dir("bounded");
    let mut store = Store::open(&dir).unwrap();
    store.max_live = 3;
    for n in 1..=5 {
        store.record(&[event(EventKind::Onset, n, "192.0.2.1")], n).unwrap();
    }
    assert_eq!(live_rows(&store), 3);
    let status = |id| store.attack(id).unwrap().unwrap().status;
    assert_eq!(
        [status(1), status(2), status(3)],
        [Status::Interrupted, Status::Interrupted, Status::Ongoing]
    );
    // Still mapped: an update of engine attack 5 goes to its store id.
    assert_eq!(store.record(&[event(EventKind::Update, 5, "192.0.2.1")], 6).unwrap()[0].attack_id, 5);
    assert_eq!(recount(&store).0, recount(&store).1);
}

/// Rewrites attack `id`'s row and event `seq`'s row as an older Rampart wrote them (no
/// `schema_version`, the attack untyped), keeping the byte counter right.
fn write_old_rows(store: &Store, id: u64, seq: u64) {
    let attack = br#"{"id":1,"run":1,"engine_id":1,"status":"ongoing","last_event":"onset","events":1,
        "first_recorded":1764619200000000000,"last_recorded":1764619200000000000,
        "attack":{"id":1,"target":"192.0.2.1","start":1764619200.0}}"#;
    let event = br#"{"seq":1,"attack_id":1,"kind":"onset","recorded":1764619200000000000,
        "attack":{"id":1,"target":"192.0.2.1","start":1764619200.0}}"#;
    let txn = store.db.begin_write().unwrap();
    {
        let mut t = Tables::open(&txn).unwrap();
        let mut bytes = t.counter("bytes").unwrap();
        let old = t.attacks.insert(id, attack.as_slice()).unwrap().unwrap().value().len();
        bytes = bytes + attack.len() as u64 - old as u64;
        let old = t.events.insert(seq, event.as_slice()).unwrap().unwrap().value().len();
        bytes = bytes + event.len() as u64 - old as u64;
        t.meta.insert("bytes", bytes).unwrap();
    }
    txn.commit().unwrap();
}

/// A record of another version (an older Rampart's): reading it says so and what to do,
/// opening for writing goes on with a warning, and retention deletes it.
#[test]
fn records_of_another_version_are_named_and_pruned() {
    let (_scratch, dir) = temp_dir("old-record");
    let mut store = Store::open_with(&dir, Retention::UNLIMITED).unwrap();
    store.record(&[event(EventKind::Onset, 1, "192.0.2.1")], T0).unwrap();
    write_old_rows(&store, 1, 1);
    assert_eq!(recount(&store).0, recount(&store).1);
    drop(store);
    let reader = StoreReader::open(&dir).unwrap();
    let error = reader.attack(1).unwrap_err();
    assert!(matches!(error, StoreError::NotVersion1 { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("not a version-1 record") && text.contains("rampart.redb aside"), "{text}");
    assert!(text.contains("missing field `schema_version`"), "{text}");
    assert!(matches!(reader.list(None, 10).unwrap_err(), StoreError::NotVersion1 { .. }));
    assert!(matches!(reader.events(1).unwrap_err(), StoreError::NotVersion1 { .. }));
    drop(reader);
    // The old attack was ongoing: the next run cannot mark it, and says why.
    let mut store = Store::open_with(&dir, Retention::UNLIMITED).unwrap();
    assert!(store.interrupted().is_empty());
    let warnings = store.warnings().join("\n");
    assert_eq!(store.warnings().len(), 1, "{warnings}");
    assert!(warnings.contains("attack 1 in") && warnings.contains("not a version-1 record"), "{warnings}");
    assert_eq!(store.record(&[event(EventKind::Onset, 1, "192.0.2.2")], T0 + SEC).unwrap()[0].attack_id, 2);
    // Retention counts the unreadable row as old.
    store.set_retention(Retention { max_age: Some(std::time::Duration::from_secs(86_400)), max_bytes: None });
    let report = store.maintain(T0 + 2 * SEC).unwrap();
    assert_eq!((report.pruned_attacks, report.pruned_events), (1, 1), "{report}");
    let ids: Vec<u64> = store.attacks().unwrap().iter().map(|a| a.id).collect();
    assert_eq!(ids, [2]);
    assert_eq!(recount(&store).0, recount(&store).1);
}

/// Records carry `schema_version` first, and the attack's `id` is the store id.
#[test]
fn records_are_versioned_json() {
    let (_scratch, dir) = temp_dir("versioned");
    let mut store = Store::open(&dir).unwrap();
    let stored = store.record(&[event(EventKind::Onset, 42, "192.0.2.1")], T0).unwrap();
    let json = serde_json::to_string(&stored[0]).unwrap();
    assert!(json.starts_with(r#"{"schema_version":1,"seq":1,"attack_id":1,"kind":"onset","#), "{json}");
    assert!(json.contains(r#""attack":{"id":1,"target":{"host":"192.0.2.1"}"#), "{json}");
    let attack = store.attack(1).unwrap().unwrap();
    let json = serde_json::to_string(&attack).unwrap();
    assert!(json.starts_with(r#"{"schema_version":1,"id":1,"run":1,"engine_id":42,"#), "{json}");
    let detail = AttackDetail::new(attack, store.events(1).unwrap());
    let json = serde_json::to_string(&detail).unwrap();
    assert_eq!(serde_json::from_str::<AttackDetail>(&json).unwrap(), detail);
}

#[test]
fn published_schemas_are_current() {
    use rampart_contract::schema::{check_published, generate};
    let dir = env!("CARGO_MANIFEST_DIR");
    check_published(dir, "stored-attack", &generate::<StoredAttack>()).unwrap();
    check_published(dir, "attack-detail", &generate::<AttackDetail>()).unwrap();
}
