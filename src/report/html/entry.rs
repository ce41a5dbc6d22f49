//! One entry's detail on the page: its path as `--show paths` prints it, then each rendered
//! request (secrets redacted) and the response it got (status, headers, a body cut at 4 KB).

use std::fmt::Write as _;

use crate::execute::executor::Response;
use crate::execute::result::EntryResult;
use crate::graph::svg::esc;
use crate::journey::Journey;
use crate::redact::Redactor;

/// How much of a response body the page shows.
const BODY: usize = 4096;

/// What the detail is rendered from, besides the entry.
pub struct Scope<'a> {
    /// The journey.
    pub journey: &'a Journey,
    /// Answers came from mocks (a dry-run or `test`).
    pub mocked: bool,
    /// Knows the secret values.
    pub redactor: &'a Redactor,
    /// The run's clock, as the requests' timestamps saw it.
    pub now_unix: i64,
}

/// The entry as a `<details>` element, searchable by customer id and by the steps it walked.
pub fn detail(s: &Scope<'_>, r: &EntryResult) -> String {
    let j = s.journey;
    let steps: Vec<&str> = r.walked.iter().map(|&i| j.steps[i].id.as_str()).collect();
    let bad = r.is_failure();
    let mut out = format!(
        r#"<details class="entry{}" data-customer="{}" data-journey="{}" data-steps=" {} " data-outcome="{}"><summary><span class="customer">{}</span> <span class="journey">{}</span> <span class="outcome">{}{}</span></summary>"#,
        if bad { " bad" } else { "" },
        esc(&r.customer),
        esc(&j.name),
        esc(&steps.join(" ")),
        esc(r.outcome.as_str()),
        esc(&r.customer),
        esc(&j.name),
        if bad { "✗ " } else { "" },
        esc(r.outcome.as_str()),
    );
    let path = crate::report::paths::entry(j, r, s.mocked, s.redactor);
    let _ = write!(out, r#"<pre class="path">{}</pre>"#, esc(path.trim_end()));
    for rec in &r.steps {
        let Some(req) = &rec.request else { continue };
        let id = &j.steps[rec.index].id;
        let title = format!("{} / {id} / customer {}", j.name, r.customer);
        let text = crate::report::show::request(&title, req, s.now_unix, s.redactor);
        let _ = write!(
            out,
            r#"<h4>{}</h4><pre class="request">{}</pre>"#,
            esc(id),
            esc(text.trim_end())
        );
        if let Some(resp) = &rec.response {
            let _ = write!(
                out,
                r#"<pre class="response">{}</pre>"#,
                esc(&response(resp, s))
            );
        }
    }
    out.push_str("</details>\n");
    out
}

/// `HTTP 200 (mocked)`, the headers, a blank line and the body (cut at 4 KB), redacted.
fn response(resp: &Response, s: &Scope<'_>) -> String {
    let mocked = if s.mocked { " (mocked)" } else { "" };
    let mut out = format!("HTTP {}{mocked}\n", resp.status);
    for (name, value) in resp.headers.pairs() {
        let _ = writeln!(out, "{name}: {}", s.redactor.redact(&value));
    }
    if !resp.body.is_empty() {
        // Redacted whole, then cut: a cut must not leave half a secret for the redactor to miss.
        let body = s.redactor.redact(&String::from_utf8_lossy(&resp.body));
        let mut cut = body.len().min(BODY);
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = write!(out, "\n{}", &body[..cut]);
        if cut < body.len() {
            let _ = write!(out, "\n… ({} bytes in all)", resp.body.len());
        }
    }
    out
}
