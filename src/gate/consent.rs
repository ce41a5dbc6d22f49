//! Consent: a journey (or a step) that names a channel takes only customers whose
//! `consent.CHANNEL` is `true`.

use crate::fixture::Customer;

/// The channel `customer` has not consented to, when `channel` asks for one.
pub fn missing<'a>(channel: Option<&'a str>, customer: &Customer) -> Option<&'a str> {
    channel.filter(|c| !customer.consents(c))
}

/// Why such a customer is kept out, in the words `--show paths` uses.
pub fn reason(channel: &str) -> String {
    format!("no consent: `consent.{channel}` is not true")
}
