//! A journey ready to run: templates compiled, step references resolved to indexes, defaults merged.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::journey::model::Method;
use crate::render::{BodyTemplate, Expr, Tmpl};

/// A validated, compiled journey.
#[derive(Debug, Clone)]
pub struct Journey {
    /// The journey's name.
    pub name: String,
    /// The file it was read from.
    pub file: Arc<PathBuf>,
    /// What makes a customer enter.
    pub trigger: TriggerPlan,
    /// The entry key template, when the trigger overrides it.
    pub entry_key: Option<Tmpl>,
    /// The channel every entering customer must have consented to.
    pub consent: Option<String>,
    /// The conversion goal.
    pub exit_when: Option<ExitPlan>,
    /// The control group, as a fraction in 0..=1.
    pub holdout: Option<f64>,
    /// `vars`, in order.
    pub vars: Vec<(String, Tmpl)>,
    /// Quiet hours for every webhook step.
    pub send_window: Option<WindowPlan>,
    /// `defaults.rate_share: dynamic` (also how `--rate` is divided).
    pub rate_share_dynamic: bool,
    /// The steps, in file order.
    pub steps: Vec<StepPlan>,
    /// Who to tell about the run's results, and when (its own and `--alert FILE`'s).
    pub alerts: Vec<AlertPlan>,
    /// Every `env.NAME` its templates read.
    pub env_names: BTreeSet<String>,
    /// Every `secret.NAME` its templates read.
    pub secret_names: BTreeSet<String>,
}

/// How entries are made.
#[derive(Debug, Clone)]
pub enum TriggerPlan {
    /// One entry per event of this name for which `filter` holds.
    Event {
        /// The event name.
        name: String,
        /// The `where` expression.
        filter: Option<Expr>,
    },
    /// One entry per customer for whom the expression holds.
    Segment(Expr),
}

/// `exit_when`, compiled.
#[derive(Debug, Clone)]
pub struct ExitPlan {
    /// The event name.
    pub event: String,
    /// The optional condition on the event.
    pub filter: Option<Expr>,
}

/// One step, compiled.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// The step id.
    pub id: String,
    /// What the step does.
    pub kind: StepKind,
    /// The step after this one; `None` ends the entry as completed.
    pub next: Option<usize>,
    /// What a failure does.
    pub on_failure: OnFailure,
    /// Values saved from the response.
    pub save: Vec<(String, Expr)>,
    /// A channel the customer must have consented to.
    pub consent: Option<String>,
    /// Quiet hours for this step (over the journey's).
    pub send_window: Option<WindowPlan>,
    /// The channel this step delivers on.
    pub channel: Option<String>,
    /// At most this many deliveries of a channel per period.
    pub cap: Option<CapPlan>,
}

/// `frequency_cap`, compiled.
#[derive(Debug, Clone)]
pub struct CapPlan {
    /// The channel counted.
    pub channel: String,
    /// The most deliveries in the period.
    pub max: u32,
    /// The period.
    pub per: Duration,
}

/// `send_window`, compiled: opening hours as minutes after local midnight, in a time zone.
#[derive(Debug, Clone)]
pub struct WindowPlan {
    /// Opens at (minutes).
    pub from: u32,
    /// Closes at (minutes); before `from` when the window spans midnight.
    pub to: u32,
    /// The time zone template (default UTC).
    pub tz: Option<Tmpl>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Send one HTTP request.
    Webhook(Box<WebhookPlan>),
    /// The first true arm wins; else `default`, else the following step.
    Branch {
        /// Conditions and targets.
        arms: Vec<(Expr, usize)>,
        /// The target when no arm holds (`None`: the following step).
        default: Option<usize>,
    },
    /// A deterministic split: cumulative percentages and targets.
    Split(Vec<(u32, usize)>),
    /// A pause.
    Wait(Duration),
    /// The end, with its outcome label.
    End(String),
}

impl StepKind {
    /// The kind's name in tables and graphs.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Webhook(_) => "webhook",
            StepKind::Branch { .. } => "branch",
            StepKind::Split(_) => "split",
            StepKind::Wait(_) => "wait",
            StepKind::End(_) => "end",
        }
    }
}

/// What a failed webhook step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The entry fails (the default).
    Fail,
    /// Go on as if it had succeeded.
    Continue,
    /// End the entry quietly as `stopped`.
    Stop,
    /// Go to that step.
    Goto(usize),
}

/// A webhook step, compiled, with defaults merged.
#[derive(Debug, Clone)]
pub struct WebhookPlan {
    /// The HTTP method.
    pub method: Method,
    /// The URL template.
    pub url: Tmpl,
    /// Query parameters.
    pub query: Vec<(String, Tmpl)>,
    /// Headers: the defaults merged with the step's, the step winning.
    pub headers: Vec<(String, Tmpl)>,
    /// Authentication.
    pub auth: Option<AuthPlan>,
    /// Signing.
    pub sign: Option<SignPlan>,
    /// The body.
    pub body: BodyPlan,
    /// Total timeout of one attempt.
    pub timeout: Duration,
    /// The retry policy.
    pub retry: RetryPolicy,
    /// The success condition (default: any 2xx).
    pub success: Option<Expr>,
    /// Fire and forget.
    pub is_async: bool,
    /// The idempotency header name, `None` to omit it.
    pub idempotency_header: Option<String>,
    /// At most this many attempts a second (`rate_limit`, else the defaults').
    pub rate: Option<f64>,
    /// The hosts running shards divide `rate` as they run (`rate_share: dynamic`).
    pub rate_share_dynamic: bool,
    /// The JSON Schema the rendered body must satisfy.
    pub schema: Option<BodySchema>,
    /// What of the request reads a secret (masked in every output); `None` when nothing does.
    pub secrets: Option<std::sync::Arc<SecretFields>>,
    /// The step's own TLS files (from `tls` or `defaults.tls`), if any.
    pub tls: Option<std::sync::Arc<TlsFiles>>,
}

/// A step's TLS files, resolved against the journey file's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// More certificates to trust.
    pub cacert: Option<std::path::PathBuf>,
    /// The client certificate and its key.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The parts of a webhook's request that read a `secret.*`, found once at compile time: every
/// output masks them whole, whatever the secret's length (headers are marked per request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretFields {
    /// Query parameters (of `query:` or of the url itself) whose value reads a secret.
    pub query: Vec<String>,
    /// Paths of JSON body leaves that read a secret; a form's keys, as one-step paths.
    pub body: Vec<Vec<crate::render::body::BodyKey>>,
    /// A `body_text` that reads a secret: the whole body is masked.
    pub whole_body: bool,
}

/// A compiled `schema:` of a webhook step.
#[derive(Clone)]
pub struct BodySchema {
    /// The schema file, as written.
    pub path: String,
    /// Where `schema:` stands in the journey file.
    pub pos: crate::position::Pos,
    /// Its field path.
    pub field: String,
    /// The compiled validator.
    pub validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodySchema({})", self.path)
    }
}

impl BodySchema {
    /// Why `body` does not satisfy the schema; violations at placeholders (`<secret.X>`,
    /// `<STEP.NAME>`) are skipped, since a dry-run has no real value there.
    pub fn violation(&self, body: &serde_json::Value) -> Option<String> {
        let is_placeholder = |v: &serde_json::Value| {
            v.as_str().is_some_and(|s| {
                s.len() > 2
                    && s.starts_with('<')
                    && s.ends_with('>')
                    && !s[1..s.len() - 1].contains(['<', '>', ' '])
            })
        };
        let problems: Vec<String> = self
            .validator
            .iter_errors(body)
            .filter(|e| !is_placeholder(e.instance()))
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/".to_string() } else { at })
            })
            .collect();
        (!problems.is_empty()).then(|| {
            format!(
                "the body does not satisfy `{}`: {}",
                self.path,
                problems.join("; ")
            )
        })
    }
}

/// Authentication, compiled.
#[derive(Debug, Clone)]
pub enum AuthPlan {
    /// A bearer token.
    Bearer(Tmpl),
    /// HTTP basic.
    Basic(Tmpl, Tmpl),
    /// A named header.
    Header(String, Tmpl),
}

/// Signing, compiled.
#[derive(Debug, Clone)]
pub enum SignPlan {
    /// Standard Webhooks with a `whsec_` secret.
    StandardWebhooks(Tmpl),
    /// `sha256=<hex>` in a header.
    HmacSha256 {
        /// The secret.
        secret: Tmpl,
        /// The header name.
        header: String,
    },
}

/// A request body, compiled.
#[derive(Debug, Clone)]
pub enum BodyPlan {
    /// No body.
    None,
    /// JSON, rendered leaf by leaf.
    Json(BodyTemplate),
    /// Raw text with its content type.
    Text(Tmpl, String),
    /// A urlencoded form.
    Form(Vec<(String, Tmpl)>),
}

/// Retries: attempts (counting the first), backoff base and cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all.
    pub attempts: u32,
    /// The base of the exponential backoff.
    pub backoff: Duration,
    /// The cap of one backoff.
    pub max_backoff: Duration,
}

/// Built-in defaults (SPEC §1).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Built-in connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Built-in retry policy.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(30),
};

impl Journey {
    /// The index of a step by id.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

/// An alert, compiled.
#[derive(Debug, Clone)]
pub struct AlertPlan {
    /// Its name (`alert N` when it has none).
    pub name: String,
    /// When it fires: an expression over the run's results for the journey.
    pub when: Expr,
    /// During a long run, checked (and sent again at most) this often; `None`: at the end.
    pub every: Option<std::time::Duration>,
    /// Say when the journey is clean again.
    pub resolved: bool,
    /// The team's link, over `run` and `env`.
    pub link: Option<Tmpl>,
    /// Total timeout of one attempt.
    pub timeout: std::time::Duration,
    /// Tries in all, and the backoff before the second (doubled each time, up to the cap).
    pub retry: RetryPolicy,
    /// Where it goes.
    pub to: AlertTo,
}

/// Where an alert goes.
#[derive(Debug, Clone)]
pub enum AlertTo {
    /// A Slack incoming webhook (its URL).
    Slack(Tmpl),
    /// A Microsoft Teams incoming webhook (its URL).
    Teams(Tmpl),
    /// Any endpoint, with its headers and, if given, its own body.
    Webhook(Box<AlertWebhookPlan>),
}

/// An alert's own request.
#[derive(Debug, Clone)]
pub struct AlertWebhookPlan {
    /// The URL.
    pub url: Tmpl,
    /// Headers, in order.
    pub headers: Vec<(String, Tmpl)>,
    /// `auth`, as a journey's webhook takes it.
    pub auth: Option<AuthPlan>,
    /// The body (default: the summary as JSON).
    pub body: Option<crate::render::body::BodyTemplate>,
}

impl AlertTo {
    /// `slack`, `teams` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            AlertTo::Slack(_) => "slack",
            AlertTo::Teams(_) => "teams",
            AlertTo::Webhook(_) => "webhook",
        }
    }

    /// The URL template.
    pub fn url(&self) -> &Tmpl {
        match self {
            AlertTo::Slack(u) | AlertTo::Teams(u) => u,
            AlertTo::Webhook(w) => &w.url,
        }
    }
}
