//! The mirror's rules, written once for every destination: what a page of records does to the
//! stored rows and the change log ([`plan`]), how a cursor moves ([`cursor`]), what beginning and
//! finishing a run records ([`runs`]), which names each custom view shows and when it is rewritten
//! ([`views`]), which indexes a first sync defers and rebuilds ([`bulk`]), whether a pushed record is newer
//! than the stored one ([`fresh`]). No SQL and no I/O: the executors (`sqlite` and `postgres`) read the stored state a
//! rule needs, ask the rule, and write its answer in their dialect, inside the transaction the
//! destination contract requires. The status model both executors fill lives in `status`.

pub mod bulk;
pub mod cursor;
pub mod fresh;
pub mod plan;
pub mod runs;
pub mod views;
