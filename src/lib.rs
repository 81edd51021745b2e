//! jes: a small, fast, secure mail server that takes over from the Java E-mail Server (JES).
//!
//! Data flows one way: `server` (listeners, tokio) drives the sans-IO protocol sessions in `smtp` and
//! `pop3`; accepted mail goes to `store` (local mailboxes) and `queue` (the spool for remote
//! recipients); `delivery` decides where a recipient's mail goes. `config` turns the JES files into
//! typed settings and is the only module that reads configuration files. `http` is the optional
//! web console, JSON API and /metrics, on the same runtime. `preflight` is what must hold for a
//! start, shared by `jes check` and `jes serve`. See ARCHITECTURE.md.

pub mod accounts;
pub mod address;
pub mod auth;
pub mod certificate;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conn_params;
pub mod delivery;
pub mod dkim;
pub mod dsn;
pub mod durable;
pub mod event;
pub mod history;
pub mod http;
pub mod logging;
pub mod migrate;
pub mod outcome;
pub mod pg;
pub mod pop3;
pub mod preflight;
pub mod queue;
pub mod routing;
pub mod server;
pub mod shared;
pub mod smtp;
pub mod stats;
pub mod store;
pub mod stored_form;
pub mod stream;
