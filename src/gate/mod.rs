//! What an entry passes before it is walked, or before a step: each gate a small module of its
//! own. An entry is kept out by the `--suppress` list ([`suppression`]), lands in the holdout
//! group ([`holdout`]) or lacks consent ([`consent`]) before anything is rendered; before each
//! step, an `exit_when` event may end it ([`exit_when`]); a step waits for its send window
//! ([`window`]) and is skipped when its channel's frequency cap is reached ([`cap`]).

pub(crate) mod cap;
pub(crate) mod consent;
pub(crate) mod exit_when;
pub(crate) mod holdout;
pub(crate) mod suppression;
pub(crate) mod window;
