//! Options and modes: the options of a call (`Flock`), the configured and keep-going views,
//! stopping and progress (`control`), and per-worker states (`Workers`).

pub(crate) mod control;
pub(crate) mod flock;
pub(crate) mod retry;
pub(crate) mod stats;
pub(crate) mod view;
pub(crate) mod workers;
