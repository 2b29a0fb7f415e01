//! Which route a request takes, and the request targets refused before routing.
//!
//! Routes match on the host and on the path prefix at segment boundaries (`/admin` matches
//! `/admin` and `/admin/x`, not `/administrator`). A path that an origin could read as
//! another path than the one matched (dot segments, encoded dots, slashes or backslashes,
//! `;` parameters on a segment) is refused, so a public route can never lead to an internal
//! one behind the origin's own normalization.

use crate::config::Route;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// Not starting with `/` (absolute-form targets are split before this).
    NotAbsolute,
    /// A `.` or `..` segment, plain or percent-encoded.
    DotSegment,
    /// An encoded `/`, `\`, `%` or a raw `\`, or a control byte.
    AmbiguousEncoding,
    /// A `;` path parameter.
    Parameter,
}

/// Check a request path (without the query).
pub fn check_path(path: &str) -> Result<(), PathProblem> {
    if !path.starts_with('/') {
        return Err(PathProblem::NotAbsolute);
    }
    if path.contains(';') {
        return Err(PathProblem::Parameter);
    }
    if path.bytes().any(|b| b == b'\\' || b.is_ascii_control()) {
        return Err(PathProblem::AmbiguousEncoding);
    }
    // No allocation: this runs on every request.
    let bytes = path.as_bytes();
    // %2f and %5c are slashes, %25 would encode a second round (%252e).
    for (i, _) in path.match_indices('%') {
        if let Some(&[a, b]) = bytes.get(i + 1..i + 3)
            && matches!(
                [a, b.to_ascii_lowercase()],
                [b'2', b'f'] | [b'5', b'c'] | [b'2', b'5'] | [b'0', b'0']
            )
        {
            return Err(PathProblem::AmbiguousEncoding);
        }
    }
    if bytes.split(|b| *b == b'/').any(is_dot_segment) {
        return Err(PathProblem::DotSegment);
    }
    Ok(())
}

/// `.` or `..`, each dot possibly written `%2e` (any case).
fn is_dot_segment(segment: &[u8]) -> bool {
    let (mut dots, mut i) = (0, 0);
    while i < segment.len() {
        if segment[i] == b'.' {
            i += 1;
        } else if segment.get(i..i + 3).is_some_and(|p| p.eq_ignore_ascii_case(b"%2e")) {
            i += 3;
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// The host of a request, lower case, without port.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h)
    };
    without_port.to_ascii_lowercase()
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// The first route (routes are ordered most specific first) matching `host` and `path`.
pub fn find_route<'a>(routes: &'a [Route], host: Option<&str>, path: &str) -> Option<(usize, &'a Route)> {
    routes.iter().enumerate().find(|(_, route)| {
        let host_ok = match (&route.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want == got,
            (Some(_), None) => false,
        };
        host_ok && prefix_matches(&route.path_prefix, path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(name: &str, host: Option<&str>, prefix: &str) -> Route {
        Route {
            name: name.into(),
            host: host.map(str::to_owned),
            path_prefix: prefix.into(),
            upstream: 0,
            rate: None,
            internal: false,
            challenge: Default::default(),
        }
    }

    #[test]
    fn paths() {
        for ok in ["/", "/a/b", "/a.b/c..d", "/%41", "/a/.well-known/x"] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for (bad, problem) in [
            ("/a/../internal", PathProblem::DotSegment),
            ("/a/%2e%2e/internal", PathProblem::DotSegment),
            ("/a/.%2E/internal", PathProblem::DotSegment),
            ("/./x", PathProblem::DotSegment),
            ("/a/%252e%252e/x", PathProblem::AmbiguousEncoding),
            ("/a%2finternal", PathProblem::AmbiguousEncoding),
            ("/a\\..\\x", PathProblem::AmbiguousEncoding),
            ("/public;/../internal", PathProblem::Parameter),
            ("x", PathProblem::NotAbsolute),
        ] {
            assert_eq!(check_path(bad), Err(problem), "{bad}");
        }
    }

    #[test]
    fn hosts_and_routes() {
        assert_eq!(normalize_host("Example.ORG:8080"), "example.org");
        assert_eq!(normalize_host("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(normalize_host("example.org."), "example.org");
        let routes = [route("admin", Some("intra"), "/admin"), route("any", None, "/")];
        assert_eq!(find_route(&routes, Some("intra"), "/admin/x").unwrap().1.name, "admin");
        assert_eq!(find_route(&routes, Some("intra"), "/administrator").unwrap().1.name, "any");
        assert_eq!(find_route(&routes, Some("other"), "/admin").unwrap().1.name, "any");
        assert_eq!(find_route(&routes, None, "/admin").unwrap().1.name, "any");
        assert!(find_route(&routes[..1], Some("intra"), "/").is_none());
    }

    /// The check as first written (allocating), kept as the reference for the one in use.
    fn check_path_reference(path: &str) -> Result<(), PathProblem> {
        if !path.starts_with('/') {
            return Err(PathProblem::NotAbsolute);
        }
        if path.contains(';') {
            return Err(PathProblem::Parameter);
        }
        if path.bytes().any(|b| b == b'\\' || b.is_ascii_control()) {
            return Err(PathProblem::AmbiguousEncoding);
        }
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%25") || lower.contains("%00") {
            return Err(PathProblem::AmbiguousEncoding);
        }
        for segment in lower.split('/') {
            let decoded = segment.replace("%2e", ".");
            if decoded == "." || decoded == ".." {
                return Err(PathProblem::DotSegment);
            }
        }
        Ok(())
    }

    proptest! {
        /// The allocation-free check decides as the reference does.
        #[test]
        fn path_check_matches_the_reference(path in "/?[a-fA-F0-9%./;\\\\]{0,24}") {
            prop_assert_eq!(check_path(&path), check_path_reference(&path));
        }

        /// Any path: no panic; an accepted path has no dot segment in any decoding we refuse.
        #[test]
        fn any_path(path in "/[a-zA-Z0-9%./;\\\\]{0,40}") {
            if check_path(&path).is_ok() {
                prop_assert!(!path.split('/').any(|s| s == ".." || s == "."));
            }
            let _ = normalize_host(&path);
        }
    }
}
