//! Egress proxies, by curl's rules: `http_proxy` / `HTTP_PROXY` for plain http targets,
//! `https_proxy` / `HTTPS_PROXY` for https, `all_proxy` / `ALL_PROXY` for either, and
//! `no_proxy` / `NO_PROXY` (hosts and domain suffixes, `*` for all) for the targets sent to
//! directly; a loopback target is never proxied. `--proxy URL` names one proxy for every scheme,
//! `--no-proxy` none.

use std::collections::HashMap;

use url::Url;

/// Where a run's requests go first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    http: Option<Url>,
    https: Option<Url>,
    /// The variable each came from (`HTTPS_PROXY`), or `None` for `--proxy`.
    http_from: Option<String>,
    https_from: Option<String>,
    /// Hosts and domain suffixes sent to directly.
    no_proxy: Vec<String>,
}

/// The first of the names set (lower case first, as curl reads them), parsed, with its name.
fn first(vars: &HashMap<String, String>, names: &[&str]) -> Result<Option<(Url, String)>, String> {
    let Some((name, value)) = names.iter().find_map(|n| {
        vars.get(*n)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n, v))
    }) else {
        return Ok(None);
    };
    parse(value.trim())
        .map(|u| Some((u, name.to_string())))
        .map_err(|e| format!("{name}: {e}"))
}

/// A proxy URL; `host:port` alone means `http://host:port`, as curl takes it.
fn parse(text: &str) -> Result<Url, String> {
    let full = match text.contains("://") {
        true => text.to_string(),
        false => format!("http://{text}"),
    };
    let url =
        Url::parse(&full).map_err(|e| format!("`{}` is not a proxy URL: {e}", redacted(text)))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "proxy scheme `{other}` is not supported (http, https)"
        )),
    }
}

/// The text with a password in it replaced, for messages.
fn redacted(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        _ => text.to_string(),
    }
}

impl Proxies {
    /// No proxy (`--no-proxy`, or nothing set).
    pub fn none() -> Proxies {
        Proxies::default()
    }

    /// The proxies the environment names.
    pub fn from_env(vars: &HashMap<String, String>) -> Result<Proxies, String> {
        let all = first(vars, &["all_proxy", "ALL_PROXY"])?;
        let http = first(vars, &["http_proxy", "HTTP_PROXY"])?.or_else(|| all.clone());
        let https = first(vars, &["https_proxy", "HTTPS_PROXY"])?.or(all);
        let (http, http_from) = http.map_or((None, None), |(u, n)| (Some(u), Some(n)));
        let (https, https_from) = https.map_or((None, None), |(u, n)| (Some(u), Some(n)));
        let no_proxy = ["no_proxy", "NO_PROXY"]
            .iter()
            .find_map(|n| vars.get(*n))
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Proxies {
            http,
            https,
            http_from,
            https_from,
            no_proxy,
        })
    }

    /// `--proxy URL` for every scheme; the environment's `no_proxy` still applies.
    pub fn given(url: &str, vars: &HashMap<String, String>) -> Result<Proxies, String> {
        let proxy = parse(url).map_err(|e| format!("--proxy: {e}"))?;
        Ok(Proxies {
            http: Some(proxy.clone()),
            https: Some(proxy),
            http_from: None,
            https_from: None,
            ..Proxies::from_env(vars).unwrap_or_default()
        })
    }

    /// True when no proxy is set.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a request to `target` goes through, if any.
    pub fn for_url(&self, target: &Url) -> Option<&Url> {
        let host = target
            .host_str()?
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        if is_loopback(&host) || self.bypassed(&host) {
            return None;
        }
        match target.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        }
    }

    /// The curl option that sends to `target` as the run did: the variable the proxy came from
    /// (`--proxy "$HTTPS_PROXY"`), or the URL `--proxy` gave; `None` when it went direct.
    pub fn curl_option(&self, target: &Url) -> Option<String> {
        let proxy = self.for_url(target)?;
        let from = match target.scheme() {
            "https" => &self.https_from,
            _ => &self.http_from,
        };
        Some(match from {
            Some(name) => format!("--proxy \"${name}\""),
            None => format!("--proxy '{proxy}'"),
        })
    }

    fn bypassed(&self, host: &str) -> bool {
        self.no_proxy.iter().any(|n| {
            n == "*"
                || host == n
                || host
                    .strip_suffix(n.as_str())
                    .is_some_and(|p| p.ends_with('.'))
        })
    }

    /// The proxies' passwords, to redact.
    pub fn secrets(&self) -> Vec<String> {
        [&self.http, &self.https]
            .into_iter()
            .flatten()
            .filter_map(|u| u.password().map(str::to_string))
            .collect()
    }
}

/// `localhost`, 127.0.0.0/8 and ::1 are never proxied.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    #[test]
    fn curls_rules_pick_a_proxy_per_scheme_except_for_loopback_and_no_proxy() {
        let p = Proxies::from_env(&vars(&[
            ("HTTP_PROXY", "proxy.corp:3128"),
            ("https_proxy", "http://user:pw@secure.corp:3129"),
            ("NO_PROXY", "internal.example, .svc.local"),
        ]))
        .unwrap();
        let via = |u: &str| {
            p.for_url(&url(u))
                .map(|p| p.host_str().unwrap().to_string())
        };
        assert_eq!(
            via("http://crm.example.com/x").as_deref(),
            Some("proxy.corp")
        );
        assert_eq!(
            via("https://crm.example.com/x").as_deref(),
            Some("secure.corp")
        );
        for direct in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "https://internal.example/x",
            "https://api.internal.example/x",
            "http://a.svc.local/x",
        ] {
            assert_eq!(via(direct), None, "{direct}");
        }
        assert_eq!(
            via("http://notinternal.example/x").as_deref(),
            Some("proxy.corp")
        );
        assert_eq!(p.secrets(), ["pw"]);
        let all = Proxies::from_env(&vars(&[("ALL_PROXY", "http://all:1")])).unwrap();
        assert!(all.for_url(&url("https://x.example/")).is_some());
        let star = Proxies::from_env(&vars(&[("ALL_PROXY", "http://all:1"), ("no_proxy", "*")]));
        assert!(star.unwrap().for_url(&url("https://x.example/")).is_none());
        assert!(Proxies::from_env(&vars(&[("HTTP_PROXY", "ftp://x")])).is_err());
    }
}
