//! The commented sample configuration `jes init` writes. (Skeleton: the config helper fills this in.)
