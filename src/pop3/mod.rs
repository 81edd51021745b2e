//! POP3 server as a sans-IO state machine. (Skeleton: the POP3 helper fills this in.)

pub mod wire;

pub use wire::unstuffed_size;

use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct SessionParams {
    pub hostname: String,
    pub session_id: String,
    pub client_ip: IpAddr,
}

/// One message as the session sees it (from `store::MessageInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub uid: String,
    /// Octets RETR sends before byte-stuffing.
    pub size: u64,
}

/// Why a mailbox could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFailure {
    /// `-ERR [IN-USE]`.
    InUse,
    /// `-ERR [SYS/TEMP]` with this text.
    Temporary(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Reply(Vec<u8>),
    /// Check these credentials, then call `Session::login_checked`.
    CheckLogin {
        user: String,
        password: String,
    },
    /// Lock and list this mailbox, then call `Session::mailbox_opened`.
    OpenMailbox {
        user: String,
    },
    /// Read message `index` (0-based), then call `Session::retrieved`. `top` is TOP's line count.
    Retrieve {
        index: usize,
        top: Option<usize>,
    },
    /// Delete these messages (0-based), then call `Session::committed`.
    Commit {
        deleted: Vec<usize>,
    },
    Close,
}

pub struct Session {
    params: SessionParams,
}

impl Session {
    pub fn new(params: SessionParams) -> Self {
        Session { params }
    }

    pub fn greeting(&mut self) -> Vec<u8> {
        let _ = &self.params;
        todo!()
    }

    /// Consumes input, pushing outputs; returns bytes consumed. While an action is pending
    /// (CheckLogin, OpenMailbox, Retrieve, Commit) it consumes nothing more.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<Output>) -> usize {
        let _ = (input, out);
        todo!()
    }

    /// Result of `CheckLogin`; pushes the reply or the next action onto `out`.
    pub fn login_checked(&mut self, ok: bool, out: &mut Vec<Output>) {
        let _ = (ok, out);
        todo!()
    }

    /// Result of `OpenMailbox`; pushes the reply onto `out`.
    pub fn mailbox_opened(
        &mut self,
        result: Result<Vec<Listing>, OpenFailure>,
        out: &mut Vec<Output>,
    ) {
        let _ = (result, out);
        todo!()
    }

    /// Result of `Retrieve`: the stored bytes (wire form, already dot-stuffed as JES and jes store
    /// them). Pushes the complete response (`+OK`, lines, `.`) onto `out`.
    pub fn retrieved(&mut self, stored: std::io::Result<Vec<u8>>, out: &mut Vec<Output>) {
        let _ = (stored, out);
        todo!()
    }

    /// Result of `Commit`; pushes the reply and `Close`.
    pub fn committed(&mut self, result: Result<(), String>, out: &mut Vec<Output>) {
        let _ = (result, out);
        todo!()
    }

    /// Reply when the 10-minute idle timer expires.
    pub fn timeout_reply(&self) -> Vec<u8> {
        todo!()
    }
}
