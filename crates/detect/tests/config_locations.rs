//! Configuration errors name the exact `FILE:LINE:COLUMN` of the offending value, found from the
//! parsed document's spans by the error's key path. The cases are those where searching the
//! text for the key or value (as before) named the wrong line.

use rampart_detect::DetectConfig;
use rampart_detect::config::{ConfigError, Document, Location, line_col};

fn error(text: &str) -> String {
    DetectConfig::from_toml_str(text, "r.toml").unwrap_err().to_string()
}

#[test]
fn the_same_key_name_in_two_tables() {
    // `factor =` first appears inside `baseline_factor = 2.0` (line 4).
    let text = "[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\nbaseline_factor = 2.0\n\
                [baseline]\nfactor = 0.5\n";
    let e = error(text);
    assert!(e.starts_with("r.toml:6:10: `baseline.factor`: must be a finite number above 1"), "{e}");

    // `pps = 0` in a group's inline table, after a comment saying the same.
    let text = "# pps = 0 would flag every packet\nprotected = [\"10.0.0.0/8\"]\n\
                [thresholds]\npps = 100\n[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\n\
                aggregate = { mbps = 5, pps = 0 }\n";
    let e = error(text);
    assert!(e.starts_with("r.toml:8:31: `group.0.aggregate.pps`: must be at least 1"), "{e}");

    // A comment naming the key before its table.
    let e = error("# flow_table = 1000 is too small\n[limits]\nflow_table = 1000\n");
    assert!(e.starts_with("r.toml:3:14: `limits.flow_table`: 1000 must be a power of two"), "{e}");
}

#[test]
fn the_same_value_twice() {
    // A group named like the bad policy of the next one.
    let text = "[[group]]\nname = \"maybe\"\nprefixes = [\"10.0.0.0/8\"]\n\
                [[group]]\nname = \"b\"\nprefixes = [\"10.1.0.0/16\"]\npolicy = \"maybe\"\n";
    let e = error(text);
    assert!(e.starts_with("r.toml:7:10: `group.1.policy`: `maybe` is not a policy"), "{e}");

    // A duplicate group is named where it is defined the second time.
    let text = "[[group]]\nname = \"dns\"\nprefixes = [\"10.0.0.0/8\"]\n\
                [[group]]\nname = \"dns\"\nprefixes = [\"10.1.0.0/16\"]\n";
    let e = error(text);
    assert!(e.starts_with("r.toml:5:8: `group.1.name`: group `dns` is defined twice"), "{e}");

    // The same prefix is fine in one place and outside the protected networks in another.
    let text = "# 192.0.2.0/24 is the lab\nprotected = [\"10.0.0.0/8\"]\n[[group]]\nname = \"lab\"\n\
                prefixes = [\"10.2.0.0/16\", \"192.0.2.0/24\"]\n";
    let e = error(text);
    assert!(
        e.starts_with("r.toml:5:28: `group.0.prefixes.1`: 192.0.2.0/24 is outside every protected"),
        "{e}"
    );
}

#[test]
fn array_elements_inline_tables_and_dotted_keys() {
    let e = error("protected = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n");
    assert!(e.starts_with("r.toml:1:28: `protected.1`: `10.0.0.0/33` is not an IP prefix"), "{e}");
    let e = error("protected = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\",\n]\n");
    assert!(e.starts_with("r.toml:3:3: `protected.1`: `10.0.0.1/8` has host bits set"), "{e}");
    let e = error("thresholds.pps = 5\nthresholds.udp_pps = 0\n");
    assert!(e.starts_with("r.toml:2:22: `thresholds.udp_pps`: must be at least 1"), "{e}");
    let e = error("lifecycle = { onset_secs = 2, quiet_secs = 0 }\n");
    assert!(e.starts_with("r.toml:1:44: `lifecycle.quiet_secs`: 0 is not within"), "{e}");
    let e = error(
        "[[threat.window]]\nlevel = \"high\"\nfrom = \"2026-12-10\"\nuntil = \"2026-12-11\"\n\
         [[threat.window]]\nlevel = \"high\"\nfrom = \"2026-12-10\"\nuntil = \"2026-12-09\"\n",
    );
    assert!(e.starts_with("r.toml:8:9: `threat.window.1.until`: must be after `from`"), "{e}");
    // Columns count characters, not bytes.
    let e = error("[[group]]\nname = \"Zürich\"\nprefixes = [\"10.0.0.0/8\"]\npolicy = \"Zürich\"\n");
    assert!(e.starts_with("r.toml:4:10: `group.0.policy`: `Zürich` is not a policy"), "{e}");
}

#[test]
fn schema_errors_keep_their_place() {
    // Unknown keys in an inline table and in a second table of the same shape.
    let e =
        error("[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/8\"]\nthresholds = { pps = 5, ppps = 6 }\n");
    assert!(e.starts_with("r.toml:4:25: unknown field `ppps`"), "{e}");
    let e = error("[thresholds]\npps = 5\n[outbound]\npps = 6\nsyn = 1\n");
    assert!(e.starts_with("r.toml:5:1: unknown field `syn`"), "{e}");
    let e = error("[limits]\nmax_hosts = -1\n");
    assert!(e.starts_with("r.toml:2:13: "), "{e}");
    let e = error("[limits\n");
    assert!(e.starts_with("r.toml:1:"), "{e}");
}

#[test]
fn the_helpers_locate_any_table() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("ab\ncd", 99), (2, 3));
    // Inside a multi-byte character: the character's own place.
    assert_eq!(line_col("xé", 2), (1, 2));
    assert_eq!(Location::of("a\nb", 2).to_string(), "2:1");

    let text = "[inputs]\nsflow = \"0.0.0.0:6343\"\n[[peer]]\nname = \"x\"\n[[peer]]\nname = \"y\"\n";
    let doc = Document::parse(text, "rampart.toml").unwrap();
    assert_eq!(doc.locate("inputs.sflow"), Location { line: 2, column: 9 });
    assert_eq!(doc.locate("peer.1.name"), Location { line: 6, column: 8 });
    // Missing keys fall back to the nearest part that exists.
    assert_eq!(doc.locate("inputs.netflow").line, doc.locate("inputs").line);
    assert_eq!(doc.locate("nothing.here"), Location { line: 1, column: 1 });
    let ConfigError::Invalid { line, column, key, .. } = doc.invalid("peer.0.name", "taken") else {
        panic!("an Invalid error");
    };
    assert_eq!((line, column, key.as_str()), (4, 8, "peer.0.name"));
    assert!(matches!(Document::parse("a = ", "x.toml"), Err(ConfigError::Parse { line: 1, .. })));
}
