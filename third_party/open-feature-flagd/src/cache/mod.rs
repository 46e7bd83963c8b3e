mod in_memory;
mod lru;
mod service;

pub use service::{CacheService, CacheSettings, CacheType};
