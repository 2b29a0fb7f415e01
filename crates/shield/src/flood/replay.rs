//! Warm-up from an access log, one request a line, in either of two formats (told apart by the
//! first character):
//! - the nginx/Apache "combined" format (`%h %l %u %t "%r" %>s %b "%{Referer}i"
//!   "%{User-Agent}i"`, extra fields after it ignored);
//! - JSON lines, one object a line: `client`, `method`, `path` (or nginx's `uri`, a query after
//!   `?` allowed), `query` (or `args`), `status`, `user_agent`, the time as `time_ms` (Unix ms) or
//!   `msec` (nginx's `$msec`, Unix seconds with decimals), and optionally the upstream latency as
//!   `latency_ms` or `request_time` (seconds). nginx writes it with
//!   `log_format rampart escape=json '{"msec":$msec,"client":"$remote_addr","method":"$request_method","uri":"$uri","args":"$args","status":$status,"user_agent":"$http_user_agent","request_time":$request_time}';`
//!
//! A line that does not parse is counted and skipped, never a panic.

use std::net::IpAddr;

/// One access-log line, as far as the baselines need it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The client address.
    pub client: IpAddr,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// The status code.
    pub status: u16,
    /// The User-Agent (`None` when logged as `-`).
    pub user_agent: Option<String>,
    /// The upstream latency in milliseconds, when logged.
    pub latency_ms: Option<f64>,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The first field is not an IP address.
    #[error("the first field is not an IP address")]
    Client,
    /// No `[dd/Mon/yyyy:HH:MM:SS +zzzz]` time.
    #[error("no [dd/Mon/yyyy:HH:MM:SS +zzzz] time")]
    Time,
    /// No quoted request line `"METHOD TARGET PROTOCOL"`.
    #[error("no quoted request line")]
    Request,
    /// No three-digit status.
    #[error("no status code")]
    Status,
    /// A JSON line that is not an object with the fields above.
    #[error("not a JSON access-log object")]
    Json,
}

fn quoted(text: &str) -> Option<(String, &str)> {
    let rest = text.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' => return Some((out, &rest[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `10/Oct/2000:13:55:36 -0700` to Unix milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let (date, zone) = text.split_once(' ').unwrap_or((text, "+0000"));
    let mut parts = date.splitn(4, [':', '/']);
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let rest = parts.next()?;
    let (year, clock) = match parts.next() {
        Some(clock) => (rest, clock),
        None => return None,
    };
    let year: i64 = year.parse().ok()?;
    let mut hms = clock.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let zone = zone.trim();
    let (sign, digits) = match zone.as_bytes().first() {
        Some(b'+') => (1i64, &zone[1..]),
        Some(b'-') => (-1i64, &zone[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset = sign * (digits[..2].parse::<i64>().ok()? * 3600 + digits[2..].parse::<i64>().ok()? * 60);
    let secs =
        days_from_civil(year, month, day) * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s)
            - offset;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// Parse one combined-format line.
pub fn parse_combined(line: &str) -> Result<LogLine, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (client, rest) = line.split_once(' ').ok_or(LineError::Client)?;
    let client: IpAddr = client.parse().map_err(|_| LineError::Client)?;
    let open = rest.find('[').ok_or(LineError::Time)?;
    let close = rest[open..].find(']').ok_or(LineError::Time)? + open;
    let time_ms = parse_time(&rest[open + 1..close]).ok_or(LineError::Time)?;
    let (request, rest) = quoted(&rest[close + 1..]).ok_or(LineError::Request)?;
    let mut words = request.split(' ');
    let (method, target) = match (words.next(), words.next()) {
        (Some(m), Some(t)) if !m.is_empty() && t.starts_with('/') => (m, t),
        _ => return Err(LineError::Request),
    };
    let mut fields = rest.trim_start().splitn(3, ' ');
    let status: u16 = fields
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or(LineError::Status)?;
    let _bytes = fields.next();
    let after = fields.next().unwrap_or("");
    let user_agent =
        quoted(after).and_then(|(_, rest)| quoted(rest)).map(|(ua, _)| ua).filter(|ua| ua != "-");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    Ok(LogLine {
        client,
        time_ms,
        method: method.to_owned(),
        path,
        query,
        status,
        user_agent,
        latency_ms: None,
    })
}

#[derive(serde::Deserialize)]
struct JsonLine {
    client: String,
    method: String,
    #[serde(alias = "uri")]
    path: String,
    #[serde(default, alias = "args")]
    query: Option<String>,
    status: serde_json::Value,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    time_ms: Option<u64>,
    #[serde(default)]
    msec: Option<f64>,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(default)]
    request_time: Option<f64>,
}

/// Parse one JSON access-log line (see the module doc).
pub fn parse_json(line: &str) -> Result<LogLine, LineError> {
    let json: JsonLine = serde_json::from_str(line).map_err(|_| LineError::Json)?;
    let client: IpAddr = json.client.parse().map_err(|_| LineError::Client)?;
    let time_ms = match (json.time_ms, json.msec) {
        (Some(ms), _) => ms,
        (None, Some(secs)) if (0.0..1e11).contains(&secs) => (secs * 1000.0) as u64,
        _ => return Err(LineError::Time),
    };
    // nginx logs numbers as numbers, other tools as strings.
    let status = match &json.status {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .filter(|s| (100..=599).contains(s))
    .ok_or(LineError::Status)?;
    if json.method.is_empty() || !json.path.starts_with('/') {
        return Err(LineError::Request);
    }
    let (path, query) = match json.path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (json.path.clone(), json.query.filter(|q| !q.is_empty())),
    };
    let latency_ms =
        json.latency_ms.or(json.request_time.map(|s| s * 1000.0)).filter(|l| l.is_finite() && *l >= 0.0);
    Ok(LogLine {
        client,
        time_ms,
        method: json.method,
        path,
        query,
        status,
        user_agent: json.user_agent.filter(|u| !u.is_empty() && u != "-"),
        latency_ms,
    })
}

/// Parse a line of either format.
pub fn parse_line(line: &str) -> Result<LogLine, LineError> {
    if line.trim_start().starts_with('{') { parse_json(line) } else { parse_combined(line) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE: &str = r#"192.0.2.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;

    #[test]
    fn parses_the_apache_example() {
        let line = parse_combined(LINE).unwrap();
        assert_eq!(line.client, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(line.time_ms, 971_211_336_000);
        assert_eq!(line.method, "GET");
        assert_eq!(line.path, "/apache_pb.gif");
        assert_eq!(line.query.as_deref(), Some("a=1"));
        assert_eq!(line.status, 200);
        assert_eq!(line.user_agent.as_deref(), Some("Mozilla/4.08 [en] (Win98; I ;Nav)"));
        let nginx =
            r#"2001:db8::5 - - [02/Dec/2026:01:02:03 +0000] "POST /login HTTP/2.0" 503 0 "-" "-" "-""#;
        let line = parse_combined(nginx).unwrap();
        assert_eq!(line.user_agent, None);
        assert_eq!(line.status, 503);
        assert_eq!(parse_combined("garbage"), Err(LineError::Client));
        assert_eq!(
            parse_combined(r#"192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "-" 400 0 "-" "-""#),
            Err(LineError::Request)
        );
    }

    #[test]
    fn parses_json_lines_as_nginx_writes_them() {
        let line = r#"{"msec":1796000000.250,"client":"2001:db8::7","method":"GET","uri":"/search","args":"q=vote","status":200,"user_agent":"Mozilla/5.0","request_time":0.042}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.time_ms, 1_796_000_000_250);
        assert_eq!(parsed.path, "/search");
        assert_eq!(parsed.query.as_deref(), Some("q=vote"));
        assert_eq!(parsed.status, 200);
        assert!((parsed.latency_ms.unwrap() - 42.0).abs() < 1e-9);
        let line = r#"{"time_ms":5,"client":"192.0.2.1","method":"POST","path":"/login?x=1","status":"503"}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!((parsed.status, parsed.query.as_deref(), parsed.user_agent), (503, Some("x=1"), None));
        assert_eq!(parse_line(r#"{"client":"192.0.2.1"}"#), Err(LineError::Json));
        assert_eq!(
            parse_line(r#"{"time_ms":5,"client":"x","method":"GET","path":"/","status":200}"#),
            Err(LineError::Client)
        );
    }

    proptest! {
        #[test]
        fn random_lines_never_panic(line in ".{0,300}") {
            let _ = parse_line(&line);
            let _ = parse_json(&format!("{{{line}"));
        }

        #[test]
        fn mutated_json_lines_never_panic(cut in 0usize..200, insert in ".{0,8}", at in 0usize..200) {
            let mut line = r#"{"msec":1796000000.250,"client":"2001:db8::7","method":"GET","uri":"/s","args":"q","status":200,"request_time":0.04}"#.to_owned();
            let at = line.floor_char_boundary(at.min(line.len()));
            line.insert_str(at, &insert);
            let cut = line.floor_char_boundary(cut.min(line.len()));
            let _ = parse_line(&line[..cut]);
            let _ = parse_line(&line);
        }

        #[test]
        fn mutated_lines_never_panic(cut in 0usize..200, insert in ".{0,8}", at in 0usize..200) {
            let mut line = LINE.to_owned();
            let at = line.floor_char_boundary(at.min(line.len()));
            line.insert_str(at, &insert);
            let cut = line.floor_char_boundary(cut.min(line.len()));
            let _ = parse_combined(&line[..cut]);
            let _ = parse_combined(&line[cut..]);
            let _ = parse_combined(&line);
        }
    }
}
