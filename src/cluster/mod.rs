//! The servers on one database (`store.url`): who is there, who is up, what each is doing.
//!
//! Design. Membership is a table, not a protocol: every server writes its own row every
//! [`HEARTBEAT`] (its `node.name`, its sessions and counters) and anyone reads them all. A row
//! seen within [`LOST_AFTER`] is a server that is up; a row a server marked when it stopped
//! cleanly is a stopped one; any other row is a server lost without stopping (killed, its machine
//! or its network gone), which is what an operator has to look at. Times are the database's clock.
//! Nothing here decides anything about mail: leases in the queue and the mailboxes do that. This
//! is what the console's "Servers" table, `/api/cluster` and `jes_cluster_servers_up` show.
//!
//! The row also notices two servers given one `node.name` (the default is the machine's host
//! name, and cloned machines share one): a beat that finds the row written by another process
//! within `LOST_AFTER` reports it, and the server logs it.

pub mod postgres;

use std::io;
use std::time::Duration;

use serde::Serialize;

/// How often a server writes its row.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A row not written for this long is a server that is not up.
pub const LOST_AFTER: Duration = Duration::from_secs(15);

/// Rows of servers not seen for this long are removed (a renamed or retired server).
pub const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// A server's counters since its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub accepted: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub deferred: u64,
}

/// Open sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sessions {
    pub smtp: u64,
    pub pop3: u64,
}

/// What a server writes about itself.
#[derive(Debug, Clone)]
pub struct Beat {
    /// `node.name`.
    pub name: String,
    /// This process (host, pid, start), to notice a second process under the same name.
    pub instance: String,
    /// `hostname`.
    pub hostname: String,
    pub version: String,
    /// Epoch milliseconds of this server's start.
    pub started_ms: i64,
    pub sessions: Sessions,
    pub totals: Totals,
    /// The last beat of a clean stop.
    pub stopping: bool,
}

/// Whether a server is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Wrote its row within `LOST_AFTER`.
    Up,
    /// Said it stopped.
    Stopped,
    /// Stopped writing without saying so.
    Lost,
}

/// One server as the table has it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub name: String,
    pub hostname: String,
    pub version: String,
    /// Epoch seconds.
    pub started: u64,
    /// Seconds since its row was written (the database's clock).
    pub seen_secs_ago: u64,
    pub state: State,
    pub sessions: Sessions,
    pub totals: Totals,
}

/// The state of a row last written `age` ago, `stopped` or not.
pub fn state_of(age: Duration, stopped: bool) -> State {
    if stopped {
        State::Stopped
    } else if age <= LOST_AFTER {
        State::Up
    } else {
        State::Lost
    }
}

/// The servers' table.
#[async_trait::async_trait]
pub trait Members: Send + Sync {
    /// Writes this server's row. `Some(instance)`: the row was written within `LOST_AFTER` by
    /// another process under the same name.
    async fn beat(&self, beat: &Beat) -> io::Result<Option<String>>;

    /// Every server, by name.
    async fn list(&self) -> io::Result<Vec<Member>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_up_until_lost_after_and_stopped_when_it_says_so() {
        assert_eq!(state_of(Duration::ZERO, false), State::Up);
        assert_eq!(state_of(LOST_AFTER, false), State::Up);
        assert_eq!(
            state_of(LOST_AFTER + Duration::from_millis(1), false),
            State::Lost
        );
        assert_eq!(state_of(Duration::ZERO, true), State::Stopped);
        assert_eq!(state_of(LOST_AFTER * 10, true), State::Stopped);
    }
}
