//! The holdout group: a fixed share of a journey's customers, chosen by a hash of the journey
//! and the customer id, is counted but never contacted (the control group of a measurement).

use crate::journey::Journey;

/// True when `customer` is in journey `j`'s holdout group.
pub fn held_out(j: &Journey, customer: &str) -> bool {
    j.holdout
        .is_some_and(|share| crate::identity::hash_fraction(&[&j.name, customer]) < share)
}
