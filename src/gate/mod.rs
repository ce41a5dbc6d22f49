//! What an entry passes before it is walked, or before a step: each gate a small module of its
//! own. An entry is kept out by the `--suppress` list ([`suppression`]), lands in the holdout
//! group ([`holdout`]) or lacks consent ([`consent`]) before anything is rendered; before each
//! step, an `exit_when` event may end it ([`exit_when`]); a step waits for its send window
//! ([`window`]) and is skipped when its channel's frequency cap is reached ([`cap`]).

pub mod cap;
pub mod consent;
pub mod exit_when;
pub mod holdout;
pub mod suppression;
pub mod window;
