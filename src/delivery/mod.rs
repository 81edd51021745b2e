//! Outbound delivery, and the step that takes a received message in.
//!
//! `accept` is the one rule that takes a received message in (queue, mailboxes, one id). From the
//! queue, the `runner` schedules attempts; an `attempt` takes one message with a lease, delivers
//! its local routes and sends the rest through `remote` (smart hosts in order, or the MX hosts
//! `mx` finds) over the SMTP `client`. Where each recipient goes is `crate::routing`'s decision.
//! `notify` is the one place the sender is told (failure, delay and success reports, RFC 3461).
//! `webhook` tells an application about each message delivered to a mailbox that asks for it.

pub mod accept;
pub mod attempt;
pub mod client;
pub mod mx;
pub mod notify;
pub mod remote;
pub mod runner;
pub mod webhook;
