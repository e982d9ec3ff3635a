//! Model-based property test: random operation sequences applied to the core and to a simple
//! in-memory reference (`modelkit`), compared after every step. Shrunk failures are kept as
//! named tests in `regressions.rs`.

mod common;
mod modelkit;
mod support;

use modelkit::{Op, P};
use proptest::prelude::*;

fn path() -> impl Strategy<Value = P> {
    prop::collection::vec(0u8..3, 1..=3)
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![1 => Just(0u32), 16 => 1u32..3000, 2 => 60_000u32..80_000];
    prop_oneof![
        4 => path().prop_map(|path| Op::Create { path }),
        2 => path().prop_map(|path| Op::Mkdir { path }),
        2 => path().prop_map(|path| Op::Open { path }),
        8 => (any::<usize>(), 0u32..40_000, len.clone(), 0u8..4, prop::bool::weighted(0.15)).prop_map(
            |(h, off, len, seed, zeros)| Op::Write { h, off, len, seed, zeros }
        ),
        2 => (path(), 0u32..50_000).prop_map(|(path, size)| Op::Truncate { path, size }),
        3 => (any::<usize>(), any::<usize>(), 0u32..40_000, 0u32..40_000, len.clone()).prop_map(
            |(from, to, off_in, off_out, len)| Op::Copy { from, to, off_in, off_out, len }
        ),
        3 => (path(), path(), prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)])
            .prop_map(|(from, to, flag)| Op::Rename { from, to, flag }),
        2 => (path(), path()).prop_map(|(from, to)| Op::Link { from, to }),
        2 => path().prop_map(|path| Op::Unlink { path }),
        1 => path().prop_map(|path| Op::Rmdir { path }),
        2 => any::<usize>().prop_map(|h| Op::Fsync { h }),
        2 => any::<usize>().prop_map(|h| Op::Close { h }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Snapshot),
        1 => any::<u8>().prop_map(|snap| Op::RevertAll { snap }),
        2 => (path(), path()).prop_map(|(from, to)| Op::Clone { from, to }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES=1000 for a longer hunt.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_core_behaves_like_the_reference_model(ops in prop::collection::vec(op(), 30..60)) {
        modelkit::run(&ops);
    }
}
