//! The challenge page, rendered from memory: valid HTML5 in the site's language, a heading, a
//! status line in an `aria-live` region, no puzzle, no external resource. Without JavaScript
//! a meta refresh (and a plain link) runs the cookie check; with the proof of work a small
//! inline script solves it and updates the status line.

use serde::Deserialize;

/// The texts of the page in one language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    /// The window title.
    pub title: String,
    /// The page's heading.
    pub heading: String,
    /// Status while the cookie check (no JavaScript) runs.
    pub cookie_check: String,
    /// Status while the proof of work runs.
    pub working: String,
    /// Status once the proof of work is done.
    pub done: String,
    /// The plain link's text.
    pub continue_link: String,
    /// The `noscript` explanation on the proof-of-work page.
    pub needs_script: String,
    /// Why a client that keeps no cookies cannot pass.
    pub no_cookies: String,
    /// A failed or expired check.
    pub failed: String,
    /// Why the page is there at all.
    pub why: String,
}

/// Overrides of single texts, `[challenge.texts]` in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextOverrides {
    title: Option<String>,
    heading: Option<String>,
    cookie_check: Option<String>,
    working: Option<String>,
    done: Option<String>,
    continue_link: Option<String>,
    needs_script: Option<String>,
    no_cookies: Option<String>,
    failed: Option<String>,
    why: Option<String>,
}

/// Languages with built-in texts.
pub const BUILT_IN: [&str; 2] = ["en", "de"];

impl Texts {
    /// The built-in texts for `lang` (a language tag; its primary subtag picks), English when
    /// there are none, then `overrides` on top.
    pub fn for_lang(lang: &str, overrides: &TextOverrides) -> Texts {
        let primary = lang.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        let base = if primary == "de" { german() } else { english() };
        let pick = |given: &Option<String>, default: String| given.clone().unwrap_or(default);
        Texts {
            title: pick(&overrides.title, base.title),
            heading: pick(&overrides.heading, base.heading),
            cookie_check: pick(&overrides.cookie_check, base.cookie_check),
            working: pick(&overrides.working, base.working),
            done: pick(&overrides.done, base.done),
            continue_link: pick(&overrides.continue_link, base.continue_link),
            needs_script: pick(&overrides.needs_script, base.needs_script),
            no_cookies: pick(&overrides.no_cookies, base.no_cookies),
            failed: pick(&overrides.failed, base.failed),
            why: pick(&overrides.why, base.why),
        }
    }
}

fn english() -> Texts {
    Texts {
        title: "Checking your connection".into(),
        heading: "One moment, please".into(),
        cookie_check: "We are checking that your browser keeps this site's cookie. \
                       You will be taken to the page in a moment."
            .into(),
        working: "Your browser is doing a short calculation to show that it is not part of an \
                  attack on this site. This usually takes a few seconds."
            .into(),
        done: "Done. Taking you to the page.".into(),
        continue_link: "Continue to the page".into(),
        needs_script: "Right now this check needs JavaScript. Please turn it on for this site, \
                       or try again in a few minutes."
            .into(),
        no_cookies: "Your browser did not keep this site's cookie, so the check cannot finish. \
                     Please allow cookies for this site and try again."
            .into(),
        failed: "The check did not succeed. Please try again.".into(),
        why: "This site is protecting itself against overload. The cookie only records that \
              you passed this check."
            .into(),
    }
}

fn german() -> Texts {
    Texts {
        title: "Verbindung wird geprüft".into(),
        heading: "Einen Moment bitte".into(),
        cookie_check: "Wir prüfen, ob Ihr Browser das Cookie dieser Website speichert. \
                       Sie werden gleich zur Seite weitergeleitet."
            .into(),
        working: "Ihr Browser führt eine kurze Berechnung aus, die zeigt, dass er nicht Teil \
                  eines Angriffs auf diese Website ist. Das dauert meist wenige Sekunden."
            .into(),
        done: "Fertig. Sie werden zur Seite weitergeleitet.".into(),
        continue_link: "Weiter zur Seite".into(),
        needs_script: "Diese Prüfung benötigt gerade JavaScript. Bitte schalten Sie es für \
                       diese Website ein oder versuchen Sie es in einigen Minuten erneut."
            .into(),
        no_cookies: "Ihr Browser hat das Cookie dieser Website nicht gespeichert, deshalb kann \
                     die Prüfung nicht abgeschlossen werden. Bitte erlauben Sie Cookies für \
                     diese Website und versuchen Sie es erneut."
            .into(),
        failed: "Die Prüfung ist fehlgeschlagen. Bitte versuchen Sie es erneut.".into(),
        why: "Diese Website schützt sich vor Überlastung. Das Cookie hält nur fest, dass Sie \
              diese Prüfung bestanden haben."
            .into(),
    }
}

/// Escape text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// SHA-256 over an ASCII string, and the search for a counter giving `d` leading zero bits.
/// Written out (about 1 kB) instead of `crypto.subtle`, which browsers offer only on HTTPS
/// and localhost and only asynchronously (one promise per hash is far slower).
pub const SOLVER_JS: &str = r#"var K=[1116352408,1899447441,-1245643825,-373957723,961987163,1508970993,-1841331548,-1424204075,-670586216,310598401,607225278,1426881987,1925078388,-2132889090,-1680079193,-1046744716,-459576895,-272742522,264347078,604807628,770255983,1249150122,1555081692,1996064986,-1740746414,-1473132947,-1341970488,-1084653625,-958395405,-710438585,113926993,338241895,666307205,773529912,1294757372,1396182291,1695183700,1986661051,-2117940946,-1838011259,-1564481375,-1474664885,-1035236496,-949202525,-778901479,-694614492,-200395387,275423344,430227734,506948616,659060556,883997877,958139571,1322822218,1537002063,1747873779,1955562222,2024104815,-2067236844,-1933114872,-1866530822,-1538233109,-1090935817,-965641998];
function sha(s){var n=s.length,m=((n+8)>>6)+1,w=new Int32Array(m*16),W=new Int32Array(64),H=[1779033703,-1150833019,1013904242,-1521486534,1359893119,-1694144372,528734635,1541459225],i,j;
for(i=0;i<n;i++)w[i>>2]|=s.charCodeAt(i)<<(24-(i&3)*8);w[n>>2]|=128<<(24-(n&3)*8);w[m*16-1]=n*8;
for(j=0;j<m*16;j+=16){var a=H[0],b=H[1],c=H[2],d=H[3],e=H[4],f=H[5],g=H[6],h=H[7];
for(i=0;i<64;i++){if(i<16)W[i]=w[j+i];else{var x=W[i-15],y=W[i-2];W[i]=(((x>>>7|x<<25)^(x>>>18|x<<14)^(x>>>3))+((y>>>17|y<<15)^(y>>>19|y<<13)^(y>>>10))+W[i-7]+W[i-16])|0;}
var t=(h+((e>>>6|e<<26)^(e>>>11|e<<21)^(e>>>25|e<<7))+((e&f)^(~e&g))+K[i]+W[i])|0,u=(((a>>>2|a<<30)^(a>>>13|a<<19)^(a>>>22|a<<10))+((a&b)^(a&c)^(b&c)))|0;
h=g;g=f;f=e;e=(d+t)|0;d=c;c=b;b=a;a=(t+u)|0;}
H[0]=(H[0]+a)|0;H[1]=(H[1]+b)|0;H[2]=(H[2]+c)|0;H[3]=(H[3]+d)|0;H[4]=(H[4]+e)|0;H[5]=(H[5]+f)|0;H[6]=(H[6]+g)|0;H[7]=(H[7]+h)|0;}return H;}
function zeros(H){var z=0;for(var i=0;i<8;i++){if(H[i]===0){z+=32;}else{return z+Math.clz32(H[i]);}}return z;}
function solve(ch,d,from,count){for(var c=from;c<from+count;c++){if(zeros(sha(ch+c))>=d)return c;}return -1;}
"#;

/// Runs the solver in slices (the page stays responsive), then goes to the verify URL.
const BOOT_JS: &str = r#"(function(){var m=document.getElementById("rampart"),s=document.getElementById("status"),ch=m.getAttribute("data-challenge"),d=+m.getAttribute("data-difficulty"),u=m.getAttribute("data-verify"),c=0;
s.textContent=m.getAttribute("data-working");
function step(){var r=solve(ch,d,c,20000);if(r>=0){s.textContent=m.getAttribute("data-done");location.replace(u+"&n="+r);}else{c+=20000;setTimeout(step,0);}}
setTimeout(step,0);})();"#;

/// The whole inline script of the proof-of-work page (static: its hash goes into the CSP).
pub fn script() -> String {
    format!("{SOLVER_JS}{BOOT_JS}")
}

/// What the page asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The cookie check: refresh (or follow the link) to `verify`.
    Cookie {
        /// The verify URL (already escaped for a URL; HTML-escaped here).
        verify: String,
    },
    /// The proof of work: the script solves `challenge` and goes to `verify&n=COUNTER`.
    Work {
        /// The signed challenge.
        challenge: String,
        /// Leading zero bits wanted.
        difficulty: u8,
        /// The verify URL without the counter.
        verify: String,
    },
    /// Nothing to do: only the message (cookies refused).
    Message,
}

/// Render the page in `lang` with `status` as its initial status line.
pub fn render(lang: &str, texts: &Texts, mode: &Mode, status: &str, script: &str) -> String {
    let mut head = String::new();
    let mut body = String::new();
    match mode {
        Mode::Cookie { verify } => {
            let verify = escape(verify);
            head.push_str(&format!("<meta http-equiv=\"refresh\" content=\"1;url={verify}\">\n"));
            body.push_str(&format!("<p><a href=\"{verify}\">{}</a></p>\n", escape(&texts.continue_link)));
        }
        Mode::Work { challenge, difficulty, verify } => {
            body.push_str(&format!(
                "<noscript><p>{}</p></noscript>\n<div id=\"rampart\" data-challenge=\"{}\" data-difficulty=\"{difficulty}\" \
                 data-verify=\"{}\" data-working=\"{}\" data-done=\"{}\"></div>\n<script>{script}</script>\n",
                escape(&texts.needs_script),
                escape(challenge),
                escape(verify),
                escape(&texts.working),
                escape(&texts.done),
            ));
        }
        Mode::Message => {}
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n{head}<title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;line-height:1.5}}</style>\n\
         </head>\n<body>\n<main>\n<h1>{heading}</h1>\n<p id=\"status\" role=\"status\" aria-live=\"polite\">{status}</p>\n\
         {body}<p>{why}</p>\n</main>\n</body>\n</html>\n",
        lang = escape(lang),
        title = escape(&texts.title),
        heading = escape(&texts.heading),
        status = escape(status),
        why = escape(&texts.why),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_and_overrides() {
        let en = Texts::for_lang("en", &TextOverrides::default());
        assert_eq!(en.heading, "One moment, please");
        assert_eq!(Texts::for_lang("de-AT", &TextOverrides::default()).heading, "Einen Moment bitte");
        assert_eq!(Texts::for_lang("xx", &TextOverrides::default()), en);
        let custom = TextOverrides { heading: Some("Bitte warten".into()), ..TextOverrides::default() };
        let texts = Texts::for_lang("de", &custom);
        assert_eq!(texts.heading, "Bitte warten");
        assert_eq!(texts.title, "Verbindung wird geprüft");
    }

    #[test]
    fn pages_are_self_contained_and_escaped() {
        let texts = Texts::for_lang("en", &TextOverrides::default());
        let cookie = render(
            "en",
            &texts,
            &Mode::Cookie { verify: "/.rampart/challenge/verify?m=cookie&r=%2F\"x".into() },
            &texts.cookie_check,
            "",
        );
        assert!(cookie.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(cookie.contains("content=\"1;url=/.rampart/challenge/verify?m=cookie&amp;r=%2F&quot;x\""));
        assert!(cookie.contains("aria-live=\"polite\""));
        assert!(cookie.contains("<h1>One moment, please</h1>"));
        assert!(!cookie.contains("<script"));
        let work = render(
            "en",
            &texts,
            &Mode::Work { challenge: "abc".into(), difficulty: 12, verify: "/v?m=pow&c=abc".into() },
            "",
            &script(),
        );
        assert!(work.contains("<noscript>") && work.contains("data-difficulty=\"12\""));
        for page in [&cookie, &work] {
            assert!(!page.contains("src=") && !page.contains("http://") && !page.contains("https://"));
        }
    }
}
