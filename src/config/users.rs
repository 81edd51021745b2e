//! `user.conf`: accounts and forwards. (Skeleton: the config helper fills this in.)

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, Warning};
use crate::auth::StoredPassword;

/// Accounts (`user.ADDR=password`) and forwards (`userprop.ADDR.forwardAddresses=a,b`), keyed by
/// the canonical (lower-cased) address.
#[derive(Debug, Clone, Default)]
pub struct Users {
    pub accounts: HashMap<String, StoredPassword>,
    pub forwards: HashMap<String, Vec<String>>,
}

impl Users {
    /// Reads `user.conf`; a missing file means no accounts.
    pub fn load(path: &Path) -> Result<(Users, Vec<Warning>), ConfigError> {
        let _ = path;
        todo!()
    }

    pub fn exists(&self, addr: &str) -> bool {
        self.accounts.contains_key(&crate::address::canonical(addr))
    }

    pub fn password(&self, addr: &str) -> Option<&StoredPassword> {
        self.accounts.get(&crate::address::canonical(addr))
    }

    pub fn forwards(&self, addr: &str) -> Option<&[String]> {
        self.forwards
            .get(&crate::address::canonical(addr))
            .map(Vec::as_slice)
    }
}
