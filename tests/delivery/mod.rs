//! Real runs against a recording HTTP server on 127.0.0.1: what arrives, what is retried, what is kept,
//! split by behaviour; the shared set-up is here.

use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::support::server::{Reply, TestServer};
use crate::support::{Output, Test, close_early};

const TOKEN: &str = "tok_live_0a9b8c7d6e5f";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A real run with the server's URL and the secrets in the environment.
fn setup(server: &TestServer, journey: &str, fixtures: &str) -> Test {
    crate::support::against(server, journey, fixtures)
        .env("TOKEN", TOKEN)
        .env("WHSEC", WHSEC)
}

use crate::support::send;

fn one(step: &str) -> String {
    format!("journey: j\ntrigger: {{ segment: \"true\" }}\nsteps:\n{step}")
}

const CUSTOMER: &str = "customers:\n  - { id: c1, email: a@b.c, consent: { email: true }, attributes: { ltv: 420.5, vip: true, tags: [x, y] } }\n";

fn verify_standard_webhooks(r: &crate::support::server::Recorded) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let id = r.header("webhook-id").unwrap();
    let ts = r.header("webhook-timestamp").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

mod dead_letters;
mod journeys;
mod operators;
mod requests;
mod retries;
