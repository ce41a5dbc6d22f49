//! URLs parsed once: a batch sends to a handful of distinct URLs a million times, and parsing
//! each (host, IDNA) was a tenth of a real run's profile.

use std::sync::{Arc, Mutex, OnceLock};

use url::{ParseError, Url};

/// Distinct URLs remembered at most; past it the memory starts over (URLs carrying a customer id
/// are all distinct and gain nothing).
const CAPACITY: usize = 1024;

static PARSED: OnceLock<Mutex<foldhash::HashMap<String, Arc<Url>>>> = OnceLock::new();

/// `Url::parse`, remembered (and shared: the safety check, the breaker and the sender each look
/// a request's URL up, and copying it each time cost an allocation).
pub fn parse(text: &str) -> Result<Arc<Url>, ParseError> {
    let parsed = PARSED.get_or_init(Mutex::default);
    if let Some(url) = parsed.lock().expect("not poisoned").get(text) {
        return Ok(Arc::clone(url));
    }
    let url = Arc::new(Url::parse(text)?);
    let mut map = parsed.lock().expect("not poisoned");
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(text.to_string(), Arc::clone(&url));
    Ok(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn remembers_and_still_refuses() {
        let a = super::parse("http://127.0.0.1:9/a?b=1").unwrap();
        assert_eq!(a, super::parse("http://127.0.0.1:9/a?b=1").unwrap());
        assert_eq!(a.path(), "/a");
        assert!(super::parse("not a url").is_err());
    }
}
