//! The HTTP answers of the ladder: the page, the refusal, the redirect with the clearance.

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};

/// The page allows its own inline script (by hash) and style, nothing else: no external
/// resource, no frame, no form.
pub fn content_security_policy(script: &str) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

/// A `Set-Cookie` value: host-only, whole site, not for scripts, sent on top-level
/// navigation from other sites (Lax: a visitor following a link keeps the clearance),
/// `Secure` on TLS listeners.
pub fn cookie(name: &str, value: &str, max_age: u64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    let text = format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax{secure}");
    // Token values are base64url, names constants: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("__rampart_invalid=; Max-Age=0"))
}

fn html(status: StatusCode, body: String, csp: &str, cookies: Vec<HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    if let Ok(csp) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The challenge page.
///
/// Status 503 with `Retry-After`, as Cloudflare does and unlike Anubis's 200: browsers render
/// the page and follow its meta refresh whatever the status, while a crawler reads 503 as
/// "come back later" and neither indexes the page in place of the content (as it would a 200)
/// nor drops the URL (as it may a 403); scripts and monitors see a failure, not a success.
pub fn page(body: String, csp: &str, cookies: Vec<HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = html(StatusCode::SERVICE_UNAVAILABLE, body, csp, cookies);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The page saying why the client cannot pass (it keeps no cookies).
pub fn refusal(body: String, csp: &str) -> Response<Full<Bytes>> {
    html(StatusCode::FORBIDDEN, body, csp, Vec::new())
}

/// Back to where the client was going (`location` is a checked same-origin path), with the
/// clearance: 303, so the next request is a GET whatever the challenged one was.
pub fn see_other(location: &str, cookies: Vec<HeaderValue>) -> Response<Full<Bytes>> {
    let mut response = html(StatusCode::SEE_OTHER, String::new(), "default-src 'none'", cookies);
    let location = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    response.headers_mut().insert(header::LOCATION, location);
    response
}
