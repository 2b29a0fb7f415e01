use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashMap;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn event(kind: EventKind, engine_id: u64, target: &str) -> NewEvent {
    NewEvent { kind, attack: json!({"id": engine_id, "target": target, "peak_pps": 10}) }
}

#[test]
fn records_and_reads_back_with_rewritten_ids() {
    let dir = temp_dir("basic");
    let mut store = Store::open(&dir).unwrap();
    assert_eq!(store.run(), 1);
    let stored = store
        .record(
            &[event(EventKind::Onset, 7, "198.51.100.1"), event(EventKind::Onset, 9, "198.51.100.2")],
            100,
        )
        .unwrap();
    assert_eq!(stored.iter().map(|e| e.attack_id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(stored[0].attack["id"], 1);
    assert_eq!(stored[0].attack["target"], "198.51.100.1");
    let stored = store.record(&[event(EventKind::End, 7, "198.51.100.1")], 200).unwrap();
    assert_eq!(stored[0].attack_id, 1);
    assert_eq!(stored[0].seq, 3);
    let attacks = store.attacks().unwrap();
    assert_eq!(attacks.len(), 2);
    assert_eq!(attacks[0].status, Status::Ended);
    assert_eq!((attacks[0].events, attacks[0].first_recorded, attacks[0].last_recorded), (2, 100, 200));
    assert_eq!(attacks[1].status, Status::Ongoing);
    assert_eq!(attacks[1].engine_id, 9);
    let events = store.events(1).unwrap();
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Onset, EventKind::End]);
    assert!(store.attack(3).unwrap().is_none());
    assert!(store.record(&[NewEvent { kind: EventKind::Onset, attack: json!({"x": 1}) }], 1).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn survives_reopen_and_keeps_ids_unique_across_runs() {
    let dir = temp_dir("reopen");
    {
        let mut store = Store::open(&dir).unwrap();
        store.record(&[event(EventKind::Onset, 1, "192.0.2.1")], 5).unwrap();
        // Dropped with the attack still ongoing: as if the daemon died.
    }
    let mut store = Store::open(&dir).unwrap();
    assert_eq!(store.run(), 2);
    let first = store.attack(1).unwrap().unwrap();
    assert_eq!(first.status, Status::Interrupted);
    assert_eq!(first.attack["target"], "192.0.2.1");
    // The new engine numbers from 1 again: a new store id.
    let stored = store.record(&[event(EventKind::Onset, 1, "192.0.2.9")], 6).unwrap();
    assert_eq!(stored[0].attack_id, 2);
    assert_eq!(store.attack(2).unwrap().unwrap().run, 2);
    drop(store);
    let reader = StoreReader::open(&dir).unwrap();
    assert_eq!(reader.attacks().unwrap().len(), 2);
    assert_eq!(reader.events(2).unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reader_reports_a_missing_store() {
    let dir = temp_dir("missing");
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
        let dir = temp_dir(&format!("prop-{}", runs.len()));
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
            expected_events += events.len() as u64;
        }
        let reader = StoreReader::open(&dir).unwrap();
        let attacks = reader.attacks().unwrap();
        prop_assert_eq!(attacks.len(), seen.len());
        prop_assert_eq!(attacks.iter().map(|a| a.events).sum::<u64>(), expected_events);
        let _ = std::fs::remove_dir_all(&dir);
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
    let dir = temp_dir("abort");
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
    assert_eq!(attack.attack["target"], "192.0.2.77");
    assert_eq!(store.record(&[event(EventKind::Onset, 1, "192.0.2.78")], 3).unwrap()[0].attack_id, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

