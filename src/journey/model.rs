//! The journey file format (SPEC §1) as serde types: what a YAML file may say, nothing more.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;

use super::duration::Dur;

/// A journey file, exactly as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyFile {
    /// The journey's name: `[a-z][a-z0-9_]*`, unique across loaded files.
    pub journey: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// What makes a customer enter.
    pub trigger: Trigger,
    /// A channel every entering customer must have consented to.
    #[serde(default)]
    pub consent: Option<String>,
    /// The conversion goal that ends an entry as `exited`.
    #[serde(default)]
    pub exit_when: Option<ExitWhen>,
    /// A deterministic control group, e.g. `10%`.
    #[serde(default)]
    pub holdout: Option<Text>,
    /// Quiet hours for every webhook step.
    #[serde(default)]
    pub send_window: Option<SendWindow>,
    /// Settings every webhook step inherits.
    #[serde(default)]
    pub defaults: Defaults,
    /// Templates evaluated once per entry, in order, as `vars.NAME`.
    #[serde(default)]
    pub vars: IndexMap<String, Text>,
    /// The steps, in order; the first one runs first.
    pub steps: Vec<Step>,
    /// Who to tell, and when, about the run's results for this journey.
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// An alert: a message to a channel the team watches when `when` holds for the run's results.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// What it is called in messages and the report (default: `alert N`).
    #[serde(default)]
    pub name: Option<String>,
    /// An expression over the run's results for the journey: `failed > 0`,
    /// `failure_rate >= 5`, `invalid > 100`, `stopped_hosts | length > 0`, `state_failed`.
    pub when: String,
    /// During a long run, also checked every this long (and sent again at most this often);
    /// without it, an alert is checked once, at the end of the run.
    #[serde(default)]
    pub every: Option<Dur>,
    /// Also say when the journey is clean again: the next run whose results no longer meet
    /// `when`, after this alert fired, sends one "resolved" message (the state store keeps
    /// that it fired).
    #[serde(default)]
    pub resolved: bool,
    /// A link the team sets (their dashboard, the run's logs), a template over `run` and `env`:
    /// in the message of `slack` and `teams`, and `run.link` in a webhook's body.
    #[serde(default)]
    pub link: Option<String>,
    /// Total timeout of one attempt (default 10s).
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Tries in all and their backoff (default: 3 tries, 1 s then 2 s; `Retry-After` is honoured).
    #[serde(default)]
    pub retry: Option<Retry>,
    /// A Slack incoming-webhook URL: a short summary and the top errors as blocks.
    #[serde(default)]
    pub slack: Option<String>,
    /// A Microsoft Teams incoming-webhook URL: the same summary as a message card.
    #[serde(default)]
    pub teams: Option<String>,
    /// Any HTTP endpoint (an email provider's API, a pager), with a body of its own.
    #[serde(default)]
    pub webhook: Option<AlertWebhook>,
}

/// An alert's own request: a URL whose origin comes from literals and `env`, headers (which may
/// read `secret.*` for the endpoint's key) and a JSON body over `run` and `env`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhook {
    /// Where to send it.
    pub url: String,
    /// Headers.
    #[serde(default)]
    pub headers: IndexMap<String, Text>,
    /// Authentication, as a journey's webhook takes it (`bearer`, `basic`, `header`).
    #[serde(default)]
    pub auth: Option<Auth>,
    /// A JSON body, rendered leaf by leaf over `run` and `env` (default: the summary).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// `--alert FILE`: alerts for every journey of a run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertFile {
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// Where entries come from: an event name or a customer segment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Entries come from events with this name.
    #[serde(default)]
    pub event: Option<String>,
    /// An expression an event must satisfy to start an entry.
    #[serde(default, rename = "where")]
    pub where_: Option<String>,
    /// An expression: one entry per customer for whom it is true.
    #[serde(default)]
    pub segment: Option<String>,
    /// A template overriding the entry key.
    #[serde(default)]
    pub entry_key: Option<String>,
}

/// `exit_when: {event, where}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExitWhen {
    /// The event name that ends the entry.
    pub event: String,
    /// An optional expression the event must satisfy.
    #[serde(default, rename = "where")]
    pub where_: Option<String>,
}

/// `send_window: {hours: "09:00-20:00", tz: TEMPLATE}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendWindow {
    /// Opening hours, `HH:MM-HH:MM`.
    pub hours: String,
    /// The time zone, a template (default UTC).
    #[serde(default)]
    pub tz: Option<String>,
}

/// `defaults:` for every webhook step.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Total timeout of one attempt.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Retry policy, merged field by field with each step's.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Headers, merged by name case-insensitively; the step wins.
    #[serde(default)]
    pub headers: IndexMap<String, Text>,
    /// A rate limit such as `100/s`.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// How hosts running shards of one export divide every rate limit: `static` (1/N each, the
    /// default) or `dynamic` (the hosts running now, through a shared PostgreSQL store).
    #[serde(default)]
    pub rate_share: Option<RateShare>,
    /// TLS for every webhook (a step's own `tls` wins).
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// `tls: {cacert, client_cert, client_key}`: a partner's own CA, or the client certificate it
/// asks for; paths are relative to the journey file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// More certificates to trust (PEM), beside the system's roots and `--cacert`.
    #[serde(default)]
    pub cacert: Option<String>,
    /// The client certificate (PEM) for servers that ask for one.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// Its private key (PEM).
    #[serde(default)]
    pub client_key: Option<String>,
}

/// `retry: {attempts, backoff, max_backoff}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// How many tries in all, counting the first.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// The base of the exponential backoff.
    #[serde(default)]
    pub backoff: Option<Dur>,
    /// The cap of one backoff.
    #[serde(default)]
    pub max_backoff: Option<Dur>,
}

/// One step; exactly one of `webhook`, `branch`, `split`, `wait`, `end`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// `[a-z][a-z0-9_]*`, unique in the journey.
    pub id: String,
    /// Send one HTTP request.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// The arms of a branch; the first true `when` wins.
    #[serde(default)]
    pub branch: Option<Vec<BranchArm>>,
    /// Where a branch goes when no arm is true.
    #[serde(default)]
    pub default: Option<String>,
    /// A deterministic A/B/n split.
    #[serde(default)]
    pub split: Option<Vec<SplitArm>>,
    /// A pause, e.g. `2d` (parsed when compiled, for an exact error position).
    #[serde(default)]
    pub wait: Option<Text>,
    /// Ends the entry with this outcome label.
    #[serde(default)]
    pub end: Option<String>,
    /// The step after this one (default: the following step).
    #[serde(default)]
    pub next: Option<String>,
    /// A step id, `continue` or `stop` (default: the entry fails).
    #[serde(default)]
    pub on_failure: Option<String>,
    /// Expressions over `response` whose values become `saved.NAME`.
    #[serde(default)]
    pub save: IndexMap<String, String>,
    /// A channel the customer must have consented to, else the step is skipped.
    #[serde(default)]
    pub consent: Option<String>,
    /// The channel this step delivers on (for frequency caps).
    #[serde(default)]
    pub channel: Option<String>,
    /// At most `max` deliveries of `channel` per period.
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCap>,
    /// Quiet hours for this step.
    #[serde(default)]
    pub send_window: Option<SendWindow>,
}

/// One arm of a `branch`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchArm {
    /// An expression.
    pub when: String,
    /// The step to go to when it is true.
    pub goto: String,
}

/// One arm of a `split`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitArm {
    /// The share of customers, in percent.
    pub percent: u32,
    /// The step they go to.
    pub goto: String,
}

/// `frequency_cap: {channel, max, per}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    /// The channel counted.
    pub channel: String,
    /// The most deliveries allowed in the period.
    pub max: u32,
    /// The period.
    pub per: Dur,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET
    Get,
    /// POST (the default)
    #[default]
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// The `webhook:` of a step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The HTTP method (default POST).
    #[serde(default)]
    pub method: Method,
    /// A template whose origin is fixed by literals and `env`.
    pub url: String,
    /// Query parameters, percent-encoded.
    #[serde(default)]
    pub query: IndexMap<String, Text>,
    /// Headers, merged over the defaults.
    #[serde(default)]
    pub headers: IndexMap<String, Text>,
    /// Authentication.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Request signing.
    #[serde(default)]
    pub sign: Option<Sign>,
    /// A JSON body, rendered leaf by leaf.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// A raw text body.
    #[serde(default)]
    pub body_text: Option<String>,
    /// The content type of `body_text`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// A urlencoded form body.
    #[serde(default)]
    pub form: Option<IndexMap<String, Text>>,
    /// Total timeout of one attempt.
    #[serde(default)]
    pub timeout: Option<Dur>,
    /// Retry policy, merged over the defaults.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// An expression deciding success (default: any 2xx).
    #[serde(default)]
    pub success: Option<String>,
    /// Fire and forget.
    #[serde(default, rename = "async")]
    pub is_async: bool,
    /// A JSON Schema file the rendered body must satisfy.
    #[serde(default)]
    pub schema: Option<String>,
    /// The idempotency header name, or `false` to omit it.
    #[serde(default)]
    pub idempotency_header: Option<IdempotencyHeader>,
    /// A rate limit such as `100/s`.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// How hosts running shards divide this step's `rate_limit` (over `defaults.rate_share`).
    #[serde(default)]
    pub rate_share: Option<RateShare>,
    /// TLS for this step (over `defaults.tls`).
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// `auth:` — exactly one of `bearer`, `basic` or `header`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `Authorization: Bearer TOKEN`.
    #[serde(default)]
    pub bearer: Option<String>,
    /// `Authorization: Basic base64(user:password)`.
    #[serde(default)]
    pub basic: Option<BasicAuth>,
    /// Any header carrying a key.
    #[serde(default)]
    pub header: Option<NamedValue>,
}

/// `basic: {user, password}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name template.
    pub user: String,
    /// The password template.
    pub password: String,
}

/// `header: {name, value}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedValue {
    /// The header name.
    pub name: String,
    /// The header value template.
    pub value: String,
}

/// `sign:` — exactly one of `standard_webhooks` or `hmac_sha256`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sign {
    /// The Standard Webhooks scheme; the secret in `whsec_<base64>` form.
    #[serde(default)]
    pub standard_webhooks: Option<String>,
    /// `sha256=<hex>` in the named header.
    #[serde(default)]
    pub hmac_sha256: Option<HmacSign>,
}

/// `hmac_sha256: {secret, header}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacSign {
    /// The secret template.
    pub secret: String,
    /// The header that carries the signature.
    pub header: String,
}

/// How hosts running shards of one export (`--shard K/N`) divide a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RateShare {
    /// Each host sends at most 1/N of it.
    Static,
    /// The hosts running now divide it among themselves (a shared PostgreSQL store): a host
    /// that finishes or dies leaves its share to the others within a second or two.
    Dynamic,
}

/// `idempotency_header: NAME` or `false`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IdempotencyHeader {
    /// `false` omits the header (`true` keeps the default name).
    Enabled(bool),
    /// A custom header name.
    Name(String),
}

/// A YAML scalar used as template text: strings, numbers and booleans all read as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Text(match Scalar::deserialize(d)? {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }))
    }
}

impl JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A template: text, or a number or boolean read as text",
            "type": ["string", "number", "boolean"]
        })
    }
}
