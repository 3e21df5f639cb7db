//! tagcache
