//! The printing side of the command line: what `jes` subcommands show, above every layer.
//!
//! Each subcommand's work is done below (the queue's administrative operations, the user.conf
//! editor, the configuration checks); here it is found, called and put into words for a terminal.

pub mod capture;
pub mod check;
pub mod dkim;
pub mod init;
pub mod migrate;
mod migrate_common;
mod migrate_from;
pub mod queue;
mod queue_store;
pub mod trace;
pub mod user;
