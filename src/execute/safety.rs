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
    /// Refuses a request that must not be sent, as an error at the step's `url`.
    pub fn check(&self, req: &Request, w: &WebhookPlan) -> Result<(), RenderError> {
        self.refusal(req).map_err(|message| RenderError {
            pos: w.url.pos.clone(),
            field: w.url.field.clone(),
            message,
        })
    }

    /// Why a request must not be sent, if it must not.
    pub fn refusal(&self, req: &Request) -> Result<(), String> {
        let url = super::urls::parse(&req.url).map_err(|e| {
            format!(
                "`{}` is not a valid URL ({e})",
                self.redactor.redact(&req.url)
            )
        })?;
        match url.scheme() {
            "https" => Ok(()),
            "http"
                if self.allow_insecure_http || is_loopback(&url) || !self.carries_secret(req) =>
            {
                Ok(())
            }
            "http" => Err(format!(
                "refusing to send a secret over plain http to `{}`: use https, or pass --allow-insecure-http",
                url.host_str().unwrap_or("")
            )),
            other => Err(format!(
                "unsupported URL scheme `{other}`: use http or https"
            )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::model::Method;

    fn request(url: &str, header: Option<&str>) -> Request {
        Request {
            method: Method::Post,
            url: url.into(),
            headers: header
                .map(|v| vec![("X-Key".to_string(), v.to_string())])
                .unwrap_or_default(),
            body: b"{}".to_vec(),
            is_json: false,
            timeout: std::time::Duration::from_secs(1),
            delivery_id: "dlv_x".into(),
            trace_id: "t".into(),
            signer: None,
            sensitive: vec![],
            tls: None,
            secrets: Default::default(),
        }
    }

    fn safety(allow: bool) -> Safety {
        Safety {
            allow_insecure_http: allow,
            redactor: Redactor::new(["s3cret-value"]),
        }
    }

    #[test]
    fn secrets_never_go_over_plain_http_to_other_hosts() {
        let with_secret = request("http://partner.example/hook", Some("s3cret-value"));
        let err = safety(false).refusal(&with_secret).unwrap_err();
        assert!(
            err.contains("refusing to send a secret over plain http to `partner.example`"),
            "{err}"
        );
        assert!(
            safety(true).refusal(&with_secret).is_ok(),
            "--allow-insecure-http"
        );
        assert!(
            safety(false)
                .refusal(&request(
                    "https://partner.example/hook",
                    Some("s3cret-value")
                ))
                .is_ok()
        );
        assert!(
            safety(false)
                .refusal(&request("http://127.0.0.1:8080/hook", Some("s3cret-value")))
                .is_ok()
        );
        assert!(
            safety(false)
                .refusal(&request("http://localhost/hook", Some("s3cret-value")))
                .is_ok()
        );
        assert!(
            safety(false)
                .refusal(&request("http://partner.example/hook", None))
                .is_ok(),
            "no secret, no refusal"
        );
        let q = request("http://partner.example/hook?key=s3cret-value", None);
        assert!(
            safety(false).refusal(&q).is_err(),
            "a secret in the query counts"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_showing_secrets() {
        let err = safety(false)
            .refusal(&request("<env.X>/s3cret-value", None))
            .unwrap_err();
        assert!(
            err.contains("is not a valid URL") && !err.contains("s3cret-value"),
            "{err}"
        );
        assert!(
            safety(false)
                .refusal(&request("ftp://x.example/a", None))
                .unwrap_err()
                .contains("unsupported URL scheme")
        );
    }
}
