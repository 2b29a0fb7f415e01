//! Legitimate visitors: each browser has its own 127.10.x.y address, a cookie jar, one
//! keep-alive connection and the header set of a real Firefox or Chrome (values and order),
//! browses several paths with think time, fetches assets, logs in now and then, and follows a
//! no-JavaScript challenge (a redirect or a meta refresh, cookies kept) the way a browser does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::HarnessError;
use crate::challenge::{meta_refresh, resolve};
use crate::client::{Answer, Connection};
use crate::cookies::CookieJar;
use crate::report::LegitRecord;
use crate::sources::legit_address;

/// Most challenge hops a browser follows for one request.
pub const MAX_CHALLENGE_HOPS: u32 = 4;
/// Longest meta-refresh delay honoured (a page asking for more is followed after this).
pub const MAX_REFRESH_WAIT: Duration = Duration::from_secs(5);

/// How the legitimate browsers behave.
#[derive(Debug, Clone)]
pub struct BrowserPlan {
    /// How many browsers (each its own address).
    pub clients: u32,
    /// Think time between page views, drawn uniformly from this range.
    pub think: (Duration, Duration),
    /// One page view in this many is a login (POST /login).
    pub login_one_in: u32,
    /// Per request, challenge hops included.
    pub request_timeout: Duration,
    /// Most requests one browser makes (a bound besides the deadline).
    pub max_requests_per_client: u32,
    /// Seed of their choices.
    pub seed: u64,
}

impl Default for BrowserPlan {
    fn default() -> BrowserPlan {
        BrowserPlan {
            clients: 40,
            think: (Duration::from_millis(500), Duration::from_millis(2500)),
            login_one_in: 20,
            request_timeout: Duration::from_secs(10),
            max_requests_per_client: 2000,
            seed: 7,
        }
    }
}

/// The two browsers the harness imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Firefox 128 on Linux.
    Firefox,
    /// Chrome 131 on Windows.
    Chrome,
}

/// What a request is for (browsers send different headers for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// A page the user navigates to.
    Navigate,
    /// A stylesheet.
    Style,
    /// A script.
    Script,
    /// An image.
    Image,
    /// A form submitted by POST.
    Form,
}

const FIREFOX_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const CHROME_CH_UA: &str = r#""Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24""#;

/// The request headers of `profile` for `fetch`, in the order that browser sends them.
pub fn browser_headers(
    profile: Profile,
    fetch: Fetch,
    host: &str,
    referer: Option<&str>,
    cookie: Option<&str>,
    body_len: usize,
) -> Vec<(&'static str, String)> {
    let same_site = if referer.is_some() { "same-origin" } else { "none" };
    let mut h: Vec<(&'static str, String)> = vec![("host", host.to_owned())];
    let mut push = |name: &'static str, value: &str| h.push((name, value.to_owned()));
    match profile {
        Profile::Firefox => {
            push("user-agent", FIREFOX_UA);
            push(
                "accept",
                match fetch {
                    Fetch::Navigate | Fetch::Form => {
                        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/png,image/svg+xml,*/*;q=0.8"
                    }
                    Fetch::Style => "text/css,*/*;q=0.1",
                    Fetch::Script => "*/*",
                    Fetch::Image => "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
                },
            );
            push("accept-language", "en-US,en;q=0.5");
            push("accept-encoding", "gzip, deflate, br, zstd");
            if fetch == Fetch::Form {
                push("content-type", "application/x-www-form-urlencoded");
                push("content-length", &body_len.to_string());
                push("origin", &format!("http://{host}"));
            }
            push("connection", "keep-alive");
            if let Some(referer) = referer {
                push("referer", referer);
            }
            if let Some(cookie) = cookie {
                push("cookie", cookie);
            }
            let (dest, mode) = fetch_dest_mode(fetch);
            if matches!(fetch, Fetch::Navigate | Fetch::Form) {
                push("upgrade-insecure-requests", "1");
            }
            push("sec-fetch-dest", dest);
            push("sec-fetch-mode", mode);
            push("sec-fetch-site", same_site);
            if matches!(fetch, Fetch::Navigate | Fetch::Form) {
                push("sec-fetch-user", "?1");
                push("priority", "u=0, i");
            } else {
                push("priority", "u=2");
            }
        }
        Profile::Chrome => {
            push("connection", "keep-alive");
            if fetch == Fetch::Form {
                push("content-length", &body_len.to_string());
                push("cache-control", "max-age=0");
            }
            let navigation = matches!(fetch, Fetch::Navigate | Fetch::Form);
            if navigation {
                push("sec-ch-ua", CHROME_CH_UA);
                push("sec-ch-ua-mobile", "?0");
                push("sec-ch-ua-platform", "\"Windows\"");
                if fetch == Fetch::Form {
                    push("origin", &format!("http://{host}"));
                    push("content-type", "application/x-www-form-urlencoded");
                }
                push("upgrade-insecure-requests", "1");
                push("user-agent", CHROME_UA);
                push(
                    "accept",
                    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
                );
            } else {
                push("sec-ch-ua-platform", "\"Windows\"");
                push("user-agent", CHROME_UA);
                push("sec-ch-ua", CHROME_CH_UA);
                push("sec-ch-ua-mobile", "?0");
                push(
                    "accept",
                    match fetch {
                        Fetch::Style => "text/css,*/*;q=0.1",
                        Fetch::Image => "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
                        _ => "*/*",
                    },
                );
            }
            let (dest, mode) = fetch_dest_mode(fetch);
            push("sec-fetch-site", same_site);
            push("sec-fetch-mode", mode);
            if navigation {
                push("sec-fetch-user", "?1");
            }
            push("sec-fetch-dest", dest);
            if let Some(referer) = referer {
                push("referer", referer);
            }
            push("accept-encoding", "gzip, deflate, br, zstd");
            push("accept-language", "en-US,en;q=0.9");
            if let Some(cookie) = cookie {
                push("cookie", cookie);
            }
        }
    }
    h
}

fn fetch_dest_mode(fetch: Fetch) -> (&'static str, &'static str) {
    match fetch {
        Fetch::Navigate | Fetch::Form => ("document", "navigate"),
        Fetch::Style => ("style", "no-cors"),
        Fetch::Script => ("script", "no-cors"),
        Fetch::Image => ("image", "no-cors"),
    }
}

/// Builds a request from an ordered header list.
pub fn build_request(
    method: Method,
    target: &str,
    headers: &[(&'static str, String)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, HarnessError> {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    Ok(builder.body(Full::new(body))?)
}

/// One browser's state.
#[derive(Debug)]
struct Browser {
    index: u32,
    profile: Profile,
    target: SocketAddr,
    host: String,
    jar: CookieJar,
    connection: Option<Connection>,
    epoch: Instant,
    timeout: Duration,
}

impl Browser {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Sends on the kept-alive connection, opening one if needed; like a browser, retries once
    /// on a fresh connection when a reused one turns out closed.
    async fn exchange(
        &mut self,
        build: impl Fn() -> Result<Request<Full<Bytes>>, HarnessError>,
    ) -> Result<Answer, HarnessError> {
        let reused = self.connection.as_ref().is_some_and(Connection::is_open);
        for attempt in 0..2 {
            if !self.connection.as_ref().is_some_and(Connection::is_open) {
                self.connection =
                    Some(Connection::open(legit_address(self.index), self.target, self.timeout).await?);
            }
            let Some(connection) = self.connection.as_mut() else { continue };
            match connection.send(build()?, self.timeout).await {
                Ok(answer) => return Ok(answer),
                Err(HarnessError::Http(error)) if reused && attempt == 0 => {
                    let _ = error;
                    self.connection = None;
                }
                Err(error) => {
                    self.connection = None;
                    return Err(error);
                }
            }
        }
        Err(HarnessError::Timeout)
    }

    /// One request as a browser makes it, challenges followed; the record of how it ended.
    async fn fetch(
        &mut self,
        method: Method,
        path: &str,
        fetch: Fetch,
        referer: Option<&str>,
        body: &str,
    ) -> LegitRecord {
        let started = self.now();
        let clock = Instant::now();
        let mut record = LegitRecord {
            started,
            latency: Duration::ZERO,
            status: None,
            challenged: false,
            from_origin: false,
        };
        let (mut method, mut path, mut fetch, mut body) = (method, path.to_owned(), fetch, body.to_owned());
        let mut referer = referer.map(str::to_owned);
        for _ in 0..=MAX_CHALLENGE_HOPS {
            let cookie = self.jar.header(self.now());
            let headers = browser_headers(
                self.profile,
                fetch,
                &self.host,
                referer.as_deref(),
                cookie.as_deref(),
                body.len(),
            );
            let send_body = Bytes::from(body.clone());
            let (m, p) = (method.clone(), path.clone());
            let answer = self.exchange(|| build_request(m.clone(), &p, &headers, send_body.clone())).await;
            let Ok(answer) = answer else { break };
            let now = self.now();
            for set_cookie in answer.set_cookies() {
                self.jar.store(set_cookie, now);
            }
            record.status = Some(answer.status.as_u16());
            record.from_origin = answer.from_origin();
            if record.from_origin {
                break;
            }
            // The proxy answered instead of the origin: a challenge to follow, or a refusal.
            let next = if answer.status.is_redirection() {
                answer
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| resolve(l, &path))
                    .map(|target| (0, target))
            } else {
                meta_refresh(&String::from_utf8_lossy(&answer.body), &path).map(|r| (r.delay_secs, r.target))
            };
            let Some((delay_secs, target)) = next else {
                // A page of the proxy's own instead of the site (a JavaScript challenge, say)
                // stood in the way just as much.
                record.challenged |= answer.status.is_success();
                break;
            };
            record.challenged = true;
            let wait = Duration::from_secs(u64::from(delay_secs)).min(MAX_REFRESH_WAIT);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            // A redirect or refresh is a navigation by GET from the challenge page.
            referer = Some(format!("http://{}{}", self.host, path));
            method = Method::GET;
            fetch = Fetch::Navigate;
            body.clear();
            path = target;
        }
        record.latency = clock.elapsed();
        record
    }
}

/// Runs browser `index` until `deadline` or its request cap; its records go to `records`.
pub async fn browse(
    index: u32,
    target: SocketAddr,
    host: String,
    plan: BrowserPlan,
    epoch: Instant,
    deadline: Instant,
    records: Arc<Mutex<Vec<LegitRecord>>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ (u64::from(index) << 32));
    let profile = if index.is_multiple_of(2) { Profile::Firefox } else { Profile::Chrome };
    let mut browser = Browser {
        index,
        profile,
        target,
        host,
        jar: CookieJar::new(),
        connection: None,
        epoch,
        timeout: plan.request_timeout,
    };
    let mut mine = Vec::new();
    let mut referer: Option<String> = None;
    let mut have_assets = false;
    // Browsers arrive spread over the first think interval, not all at once.
    let spread = rng.gen_range(0..=plan.think.1.as_millis().max(1) as u64);
    tokio::time::sleep(Duration::from_millis(spread)).await;
    while Instant::now() < deadline && mine.len() < plan.max_requests_per_client as usize {
        let choice = rng.gen_range(0..100u32);
        let page_referer = referer.clone();
        let (path, record) = if plan.login_one_in > 0 && rng.gen_range(0..plan.login_one_in) == 0 {
            let form = format!("user=visitor{index}&password=correct-horse-{index}");
            let record =
                browser.fetch(Method::POST, "/login", Fetch::Form, page_referer.as_deref(), &form).await;
            ("/login".to_owned(), record)
        } else {
            let path = match choice {
                0..=34 => "/".to_owned(),
                35..=84 => format!("/article/{}", rng.gen_range(1..=200u32)),
                _ => format!("/search?q={}", SEARCH_WORDS[rng.gen_range(0..SEARCH_WORDS.len())]),
            };
            let record =
                browser.fetch(Method::GET, &path, Fetch::Navigate, page_referer.as_deref(), "").await;
            (path, record)
        };
        let page_ok = record.succeeded();
        mine.push(record);
        let page_url = format!("http://{}{}", browser.host, path);
        // Assets: all three on the first page, then as a cache revalidation now and then.
        if page_ok && (!have_assets || rng.gen_range(0..4u32) == 0) {
            for (asset, fetch) in [
                ("/assets/site.css", Fetch::Style),
                ("/assets/site.js", Fetch::Script),
                ("/assets/logo.svg", Fetch::Image),
            ] {
                if Instant::now() >= deadline {
                    break;
                }
                mine.push(browser.fetch(Method::GET, asset, fetch, Some(&page_url), "").await);
            }
            have_assets = true;
        }
        referer = Some(page_url);
        let think = rng.gen_range(
            plan.think.0.as_millis() as u64..=plan.think.1.as_millis().max(plan.think.0.as_millis()) as u64,
        );
        let wake = Instant::now() + Duration::from_millis(think);
        if wake >= deadline {
            break;
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    if let Ok(mut all) = records.lock() {
        all.extend(mine);
    }
}

const SEARCH_WORDS: [&str; 12] = [
    "budget",
    "agenda",
    "vote",
    "committee",
    "session",
    "energy",
    "health",
    "schools",
    "transport",
    "petition",
    "minutes",
    "members",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &[(&'static str, String)]) -> Vec<&'static str> {
        headers.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn firefox_navigation_order() {
        let h = browser_headers(Profile::Firefox, Fetch::Navigate, "h", None, Some("a=1"), 0);
        assert_eq!(
            names(&h),
            [
                "host",
                "user-agent",
                "accept",
                "accept-language",
                "accept-encoding",
                "connection",
                "cookie",
                "upgrade-insecure-requests",
                "sec-fetch-dest",
                "sec-fetch-mode",
                "sec-fetch-site",
                "sec-fetch-user",
                "priority"
            ]
        );
        assert!(h.iter().any(|(n, v)| *n == "sec-fetch-site" && v == "none"));
    }

    #[test]
    fn chrome_orders() {
        let h = browser_headers(Profile::Chrome, Fetch::Style, "h", Some("http://h/"), None, 0);
        assert_eq!(
            names(&h),
            [
                "host",
                "connection",
                "sec-ch-ua-platform",
                "user-agent",
                "sec-ch-ua",
                "sec-ch-ua-mobile",
                "accept",
                "sec-fetch-site",
                "sec-fetch-mode",
                "sec-fetch-dest",
                "referer",
                "accept-encoding",
                "accept-language"
            ]
        );
        let form = browser_headers(Profile::Chrome, Fetch::Form, "h", Some("http://h/"), None, 12);
        assert!(form.iter().any(|(n, v)| *n == "content-length" && v == "12"));
        assert!(build_request(Method::POST, "/login", &form, Bytes::from_static(b"user=a&pw=bc")).is_ok());
    }
}
