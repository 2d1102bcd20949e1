//! With `POLARS_MAX_THREADS` set, the default pool (Polars' own) has that many threads.
//! A separate test binary, because Polars reads the variable once, when its pool starts.

use polars_flock::Flock;

#[test]
fn default_pool_respects_polars_max_threads() {
    // SAFETY: the only test in this binary; no other thread reads the environment yet.
    unsafe { std::env::set_var("POLARS_MAX_THREADS", "3") };
    let plan = Flock::new().plan(1_000_000).unwrap();
    assert_eq!(plan.threads(), 3);
    assert_eq!(plan.blocks(), 12);
}
