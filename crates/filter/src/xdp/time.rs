//! Expiry in the program's clock: the maps hold CLOCK_BOOTTIME nanoseconds (the clock
//! `bpf_ktime_get_boot_ns` reads, which keeps counting through suspend), decisions hold wall
//! time. Pure conversion; the driver reads both clocks once per reconcile.

use rampart_contract::EventTime;

/// The boot-clock deadline for `expires` (0: never), given the wall time `now` and the boot
/// clock `boot_now_ns` read at the same moment. An expiry already past maps to `boot_now_ns`
/// (expired at once; 0 would mean never).
pub fn boot_deadline(expires: Option<EventTime>, now: EventTime, boot_now_ns: u64) -> u64 {
    match expires {
        None => 0,
        Some(e) => {
            let left_ns = e.unix_micros().saturating_sub(now.unix_micros()).saturating_mul(1_000);
            boot_now_ns.saturating_add(left_ns).max(1)
        }
    }
}

/// CLOCK_BOOTTIME now, from `/proc/uptime` (the same clock, to 10 ms: plenty for expiries
/// in seconds, and no `unsafe` clock call).
pub fn boot_now_ns() -> std::io::Result<u64> {
    let text = std::fs::read_to_string("/proc/uptime")?;
    parse_uptime(&text)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "unreadable /proc/uptime"))
}

fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, "0"));
    let secs: u64 = secs.parse().ok()?;
    let frac = format!("{frac:0<9}");
    let nanos: u64 = frac.get(..9)?.parse().ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_boot_clock() {
        let now = EventTime::from_unix_secs(1_000);
        assert_eq!(boot_deadline(None, now, 5), 0);
        assert_eq!(boot_deadline(Some(EventTime::from_unix_secs(1_002)), now, 5), 2_000_000_005);
        assert_eq!(boot_deadline(Some(EventTime::from_unix_secs(10)), now, 5), 5);
        assert_eq!(boot_deadline(Some(EventTime::from_unix_secs(10)), now, 0), 1);
        assert_eq!(parse_uptime("12345.67 999.00\n"), Some(12_345_670_000_000));
        assert_eq!(parse_uptime("x"), None);
        assert!(boot_now_ns().unwrap() > 0);
    }
}
