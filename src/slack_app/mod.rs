//! The Slack side of triage-bot: the messages it posts ([`blocks`], [`notify`]), the button
//! clicks it receives and the decisions they make ([`interactions`]), and thread questions
//! ([`events`], [`followup`]).

pub mod blocks;
pub mod events;
pub mod followup;
pub mod interactions;
pub mod notify;
pub mod signature;
pub mod socket_mode;
