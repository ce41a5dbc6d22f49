//! Checks before a real send: the URL is http(s), and secrets never travel over plain http to a
//! host that is not loopback (unless `--allow-insecure-http`).

use crate::journey::plan::WebhookPlan;
use crate::redact::Redactor;
use crate::render::RenderError;

use super::request::Request;

/// The checks of a real run.
#[derive(Debug, Clone)]
pub struct Safety {
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// Knows the secret values.
    pub redactor: Redactor,
}

impl Safety {
    /// Refuses a request that must not be sent.
    pub fn check(&self, req: &Request, w: &WebhookPlan) -> Result<(), RenderError> {
        let fail = |message: String| RenderError {
            pos: w.url.pos.clone(),
            field: w.url.field.clone(),
            message,
        };
        let url = url::Url::parse(&req.url).map_err(|e| {
            fail(format!(
                "`{}` is not a valid URL ({e})",
                self.redactor.redact(&req.url)
            ))
        })?;
        match url.scheme() {
            "https" => Ok(()),
            "http"
                if self.allow_insecure_http || is_loopback(&url) || !self.carries_secret(req) =>
            {
                Ok(())
            }
            "http" => Err(fail(format!(
                "refusing to send a secret over plain http to `{}`: use https, or pass --allow-insecure-http",
                url.host_str().unwrap_or("")
            ))),
            other => Err(fail(format!(
                "unsupported URL scheme `{other}`: use http or https"
            ))),
        }
    }

    fn carries_secret(&self, req: &Request) -> bool {
        req.signer.is_some()
            || !req.sensitive.is_empty()
            || self.redactor.finds(&req.url)
            || req.headers.iter().any(|(_, v)| self.redactor.finds(v))
            || self.redactor.finds(&String::from_utf8_lossy(&req.body))
    }
}

/// True for 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        None => false,
    }
}
