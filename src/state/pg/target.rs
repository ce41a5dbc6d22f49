//! Where a PostgreSQL store is: `postgres://USER@HOST:PORT/DB?schema=NAME&sslmode=require`,
//! checked when the command line is read. The password comes from the URL, `PGPASSWORD` or a
//! `~/.pgpass` file, and is never part of how the store is named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How the connection is encrypted (libpq's `sslmode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP (`disable`, and the default on loopback).
    Off,
    /// TLS when the server offers it, unverified (`prefer`, the default elsewhere).
    Prefer,
    /// TLS or nothing, unverified, as libpq's `require` (`require`, `verify-ca`
    /// without a root file).
    Require,
    /// TLS, the certificate verified against this PEM file and, with `verify-full`, the host
    /// name checked (`sslrootcert=FILE`).
    Verify {
        /// The CA certificates.
        roots: PathBuf,
        /// `verify-full`: the certificate must name the host.
        host: bool,
    },
}

/// A PostgreSQL store, as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host (a name or an address).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The role.
    pub user: String,
    /// The database.
    pub dbname: String,
    /// The schema the tables live in.
    pub schema: String,
    /// The password given in the URL (discouraged: it is never shown).
    url_password: Option<String>,
    /// `sslmode`.
    pub tls: Tls,
}

/// True when `text` names a PostgreSQL store rather than a file.
pub fn is_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl Target {
    /// Reads the URL; `env` gives `PGUSER` and `PGPASSWORD`. `Err` says what is wrong.
    pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<Target, String> {
        let url = url::Url::parse(text).map_err(|e| {
            format!(
                "--state: `{}` is not a PostgreSQL URL ({e}): write postgres://USER@HOST:PORT/DB",
                redacted(text)
            )
        })?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("--state: the PostgreSQL URL names no host: write postgres://USER@HOST:PORT/DB")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let user = match url.username() {
            "" => env
                .get("PGUSER")
                .cloned()
                .unwrap_or_else(|| "postgres".into()),
            u => decode(u),
        };
        let dbname = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            db => decode(db),
        };
        let mut schema = "public".to_string();
        let mut sslmode = None;
        let mut sslrootcert = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "schema" => schema = v.into_owned(),
                "sslmode" => sslmode = Some(v.into_owned()),
                "sslrootcert" => sslrootcert = Some(PathBuf::from(v.as_ref())),
                "application_name" | "connect_timeout" => {}
                other => {
                    return Err(format!(
                        "--state: the PostgreSQL URL has `{other}`, which journey does not know (it takes schema, sslmode and sslrootcert)"
                    ));
                }
            }
        }
        check_schema(&schema)?;
        let loopback = is_loopback(&host);
        let tls = tls(sslmode.as_deref(), sslrootcert, loopback)?;
        Ok(Target {
            host,
            port: url.port().unwrap_or(5432),
            user,
            dbname,
            schema,
            url_password: url.password().map(decode),
            tls,
        })
    }

    /// How the store is named in messages, reports and dead letters: never with a password.
    pub fn shown(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        let mut text = format!(
            "postgres://{}@{host}:{}/{}",
            self.user, self.port, self.dbname
        );
        let mut query = Vec::new();
        if self.schema != "public" {
            query.push(format!("schema={}", self.schema));
        }
        match &self.tls {
            Tls::Require => query.push("sslmode=require".into()),
            Tls::Verify { roots, host } => {
                let mode = if *host { "verify-full" } else { "verify-ca" };
                query.push(format!("sslmode={mode}&sslrootcert={}", roots.display()));
            }
            Tls::Off | Tls::Prefer => {}
        }
        if !query.is_empty() {
            text.push('?');
            text.push_str(&query.join("&"));
        }
        text
    }

    /// The password: the URL's, else `PGPASSWORD`, else the first matching line of
    /// `PGPASSFILE` or `~/.pgpass`.
    pub fn password(&self, env: &HashMap<String, String>) -> Option<String> {
        if let Some(p) = &self.url_password {
            return Some(p.clone());
        }
        if let Some(p) = env.get("PGPASSWORD") {
            return Some(p.clone());
        }
        let file = env
            .get("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".pgpass")))?;
        let text = std::fs::read_to_string(file).ok()?;
        pgpass(&text, self)
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL with any password replaced, for an error about the URL itself.
fn redacted(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "the value".into(),
    }
}

/// A schema name is written into SQL as an identifier: letters, digits and `_` only.
fn check_schema(schema: &str) -> Result<(), String> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "--state: schema `{schema}` is not a plain name: use letters, digits and `_` (at most 63), starting with a letter"
        )),
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn tls(mode: Option<&str>, roots: Option<PathBuf>, loopback: bool) -> Result<Tls, String> {
    Ok(match (mode, roots) {
        (None, _) if loopback => Tls::Off,
        (None, _) | (Some("prefer" | "allow"), _) => Tls::Prefer,
        (Some("disable"), _) => Tls::Off,
        (Some("require"), _) | (Some("verify-ca"), None) => Tls::Require,
        (Some("verify-ca"), Some(roots)) => Tls::Verify { roots, host: false },
        (Some("verify-full"), Some(roots)) => Tls::Verify { roots, host: true },
        (Some("verify-full"), None) => {
            return Err("--state: sslmode=verify-full needs sslrootcert=FILE (the CA's PEM certificate) in the URL".into());
        }
        (Some(other), _) => {
            return Err(format!(
                "--state: sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
            ));
        }
    })
}

/// The password of the first `.pgpass` line matching host, port, database and user (`*`
/// matches anything; `\:` and `\\` are escapes).
fn pgpass(text: &str, t: &Target) -> Option<String> {
    let port = t.port.to_string();
    let wanted = [
        t.host.as_str(),
        port.as_str(),
        t.dbname.as_str(),
        t.user.as_str(),
    ];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(fields)
        .filter(|f| f.len() == 5)
        .find(|f| {
            f.iter()
                .zip(wanted)
                .all(|(have, want)| have == "*" || have == want)
        })
        .map(|mut f| f.remove(4))
}

fn fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if out.len() < 5 => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out.remove(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_url_names_host_port_user_database_and_schema() {
        let t = Target::parse(
            "postgresql://ops@db.internal:6543/marketing?schema=journey_nightly&sslmode=require",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str(), t.dbname.as_str()),
            ("db.internal", 6543, "ops", "marketing")
        );
        assert_eq!(t.schema, "journey_nightly");
        assert_eq!(t.tls, Tls::Require);
        assert_eq!(
            t.shown(),
            "postgres://ops@db.internal:6543/marketing?schema=journey_nightly&sslmode=require"
        );
    }

    #[test]
    fn the_password_is_never_shown_and_comes_from_the_url_the_env_or_pgpass() {
        let t = Target::parse("postgres://ops:s3cr%40t@127.0.0.1/db", &env(&[])).unwrap();
        assert!(!t.shown().contains("s3cr"), "{}", t.shown());
        assert_eq!(t.password(&env(&[])).as_deref(), Some("s3cr@t"));
        let t = Target::parse("postgres://ops@127.0.0.1/db", &env(&[])).unwrap();
        assert_eq!(
            t.password(&env(&[("PGPASSWORD", "fromenv")])).as_deref(),
            Some("fromenv")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:db:ops:no\n127.0.0.1:*:db:ops:pa\\:ss\n",
        )
        .unwrap();
        let found = t.password(&env(&[("PGPASSFILE", file.to_str().unwrap())]));
        assert_eq!(found.as_deref(), Some("pa:ss"));
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        let e = |u: &str| Target::parse(u, &env(&[])).unwrap_err();
        assert!(
            e("postgres:///db").contains("names no host"),
            "{}",
            e("postgres:///db")
        );
        assert!(e("postgres://h/db?schema=a;drop").contains("not a plain name"));
        assert!(e("postgres://h/db?sslmode=sometimes").contains("not one of"));
        assert!(e("postgres://h/db?pool=3").contains("`pool`"));
        let leaked = e("postgres://u:hunter2@h:99999/db");
        assert!(!leaked.contains("hunter2"), "{leaked}");
    }

    #[test]
    fn loopback_is_plain_unless_asked_and_other_hosts_prefer_tls() {
        let t = |u: &str| Target::parse(u, &env(&[])).unwrap().tls;
        assert_eq!(t("postgres://u@127.0.0.1/db"), Tls::Off);
        assert_eq!(t("postgres://u@db.example/db"), Tls::Prefer);
        assert_eq!(t("postgres://u@127.0.0.1/db?sslmode=require"), Tls::Require);
    }
}
