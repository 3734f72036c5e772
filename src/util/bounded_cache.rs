//! Size-bounded caches (`quick_cache`): the one place where a capacity set on the
//! builder becomes a cache size.

use std::hash::Hash;

/// A cache size for `entries` from the builder: at least one entry.
pub(crate) fn capacity(entries: usize) -> usize {
    entries.max(1)
}

/// A cache of at most `entries` (at least one), with quick_cache's default hasher.
pub(crate) fn new<K, V>(entries: usize) -> quick_cache::sync::Cache<K, V>
where
    K: Eq + Hash,
    V: Clone,
{
    quick_cache::sync::Cache::new(capacity(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_one_and_the_bound_holds() {
        assert_eq!(capacity(0), 1);
        assert_eq!(capacity(10_000), 10_000);
        let cache = new::<u32, ()>(3);
        for i in 0..100 {
            cache.insert(i, ());
        }
        assert!(cache.len() <= 3, "{}", cache.len());
    }
}
