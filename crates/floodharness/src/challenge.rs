//! What a browser without JavaScript does with a challenge page: a `<meta http-equiv="refresh"
//! content="0; url=...">` tag or a redirect sends it to another URL on the same site, with the
//! cookies it just got. Pure parsing, bounded by the input.

/// Where a challenge sends the browser, and after how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// Seconds the page asks to wait (browsers honour it; the harness caps it).
    pub delay_secs: u32,
    /// The request target to fetch next: a path with optional query, always starting with `/`.
    pub target: String,
}

/// Finds the first meta refresh in an HTML page and resolves its URL against `current` (the
/// path of the page). `None` without a refresh tag or with a URL the harness would not follow.
pub fn meta_refresh(html: &str, current: &str) -> Option<Refresh> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("<meta") {
        let start = from + found + "<meta".len();
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let tag = &html[start..end];
        let lower_tag = &lower[start..end];
        from = end;
        let Some(equiv) = attribute(tag, lower_tag, "http-equiv") else { continue };
        if !equiv.eq_ignore_ascii_case("refresh") {
            continue;
        }
        let content = attribute(tag, lower_tag, "content")?;
        return parse_content(&unescape(content), current);
    }
    None
}

/// Resolves a `Location` header (or refresh URL) against the current path.
pub fn resolve(location: &str, current: &str) -> Option<String> {
    let location = location.trim();
    let path =
        if let Some(rest) = location.strip_prefix("http://").or_else(|| location.strip_prefix("https://")) {
            // Absolute: keep the path; the harness only ever sends to its own loopback target.
            match rest.find('/') {
                Some(slash) => rest[slash..].to_owned(),
                None => "/".to_owned(),
            }
        } else if location.starts_with("//") {
            return None;
        } else if location.starts_with('/') {
            location.to_owned()
        } else if location.is_empty() {
            current.to_owned()
        } else {
            let base = current.split('?').next().unwrap_or("/");
            let directory = &base[..base.rfind('/').map_or(0, |s| s + 1)];
            let directory = if directory.is_empty() { "/" } else { directory };
            format!("{directory}{location}")
        };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') || path.len() > 8192 {
        return None;
    }
    Some(path)
}

/// The value of `name="..."` (or single-quoted, or bare) in a tag's attribute text.
fn attribute<'a>(tag: &'a str, lower_tag: &str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(found) = lower_tag[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let before_ok = at == 0 || lower_tag.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower_tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value_start = from + (lower_tag[from..].len() - rest.len()) + 1;
        let value = tag[value_start..].trim_start();
        let offset = tag.len() - value.len();
        return Some(match value.as_bytes().first() {
            Some(&quote @ (b'"' | b'\'')) => {
                let inner = &tag[offset + 1..];
                &inner[..inner.find(quote as char).unwrap_or(inner.len())]
            }
            _ => &value[..value.find(|c: char| c.is_ascii_whitespace()).unwrap_or(value.len())],
        });
    }
    None
}

/// `content="5; url=/next"` (also `URL='...'`, or a delay alone, which reloads the page).
fn parse_content(content: &str, current: &str) -> Option<Refresh> {
    let content = content.trim();
    let digits = content.bytes().take_while(u8::is_ascii_digit).count();
    let delay_secs = content[..digits].parse::<u32>().unwrap_or(0);
    let rest = content[digits..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ';' || c == ',');
    let url = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("url") {
        let after = rest[3..].trim_start();
        after.strip_prefix('=').unwrap_or(after).trim()
    } else {
        rest
    };
    let url = url.trim_matches(|c| c == '"' || c == '\'');
    Some(Refresh { delay_secs, target: resolve(url, current)? })
}

fn unescape(text: &str) -> String {
    text.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'").replace("&#x2F;", "/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target(html: &str) -> Option<String> {
        meta_refresh(html, "/article/7?x=1").map(|r| r.target)
    }

    #[test]
    fn finds_the_usual_forms() {
        let page = r#"<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=/.rampart/check?t=abc&amp;r=%2Farticle%2F7"></head></html>"#;
        assert_eq!(
            meta_refresh(page, "/"),
            Some(Refresh { delay_secs: 0, target: "/.rampart/check?t=abc&r=%2Farticle%2F7".into() })
        );
        assert_eq!(target(r#"<META HTTP-EQUIV="Refresh" CONTENT="2;URL='/ok'">"#).as_deref(), Some("/ok"));
        assert_eq!(
            target("<meta http-equiv=refresh content='1; url=next'>").as_deref(),
            Some("/article/next")
        );
        assert_eq!(
            target(r#"<meta content="0;url=http://127.0.0.1:8080/p?q" http-equiv="refresh"/>"#).as_deref(),
            Some("/p?q")
        );
        assert_eq!(target(r#"<meta http-equiv="refresh" content="3">"#).as_deref(), Some("/article/7?x=1"));
        assert_eq!(
            meta_refresh(r#"<meta http-equiv="refresh" content="5; url=/a">"#, "/").map(|r| r.delay_secs),
            Some(5)
        );
    }

    #[test]
    fn ignores_what_is_not_a_refresh() {
        assert_eq!(target("<html>no meta</html>"), None);
        assert_eq!(target(r#"<meta name="refresh" content="0; url=/x">"#), None);
        assert_eq!(target(r#"<meta data-http-equiv="refresh" content="0; url=/x">"#), None);
        assert_eq!(target(r#"<meta http-equiv="refresh" content="0; url=//evil.example/x">"#), None);
    }

    #[test]
    fn resolves_locations() {
        assert_eq!(resolve("/a?b", "/c").as_deref(), Some("/a?b"));
        assert_eq!(resolve("https://host/x", "/c").as_deref(), Some("/x"));
        assert_eq!(resolve("http://host", "/c").as_deref(), Some("/"));
        assert_eq!(resolve("d", "/c/e").as_deref(), Some("/c/d"));
        assert_eq!(resolve("d", "").as_deref(), Some("/d"));
        assert_eq!(resolve("/a b", "/").as_deref(), None);
    }

    proptest! {
        #[test]
        fn any_page_is_safe(page in ".{0,400}", current in "/[ -~]{0,30}") {
            if let Some(refresh) = meta_refresh(&page, &current) {
                prop_assert!(refresh.target.starts_with('/'));
            }
        }

        #[test]
        fn mutated_tags_are_safe(prefix in "[ -~]{0,20}", url in "[ -~]{0,40}", cut in 0usize..80) {
            let tag = format!(r#"{prefix}<meta http-equiv="refresh" content="0; url={url}">"#);
            let cut = tag.len().min(cut.max(1) * tag.len() / 80);
            let mutated = &tag[..cut];
            if let Some(refresh) = meta_refresh(mutated, "/") {
                prop_assert!(refresh.target.starts_with('/'));
            }
            let _ = meta_refresh(&tag, "/");
        }
    }
}
