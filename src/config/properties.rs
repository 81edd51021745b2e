//! Java `.properties` syntax, keeping line numbers. (Skeleton: the config helper fills this in.)
