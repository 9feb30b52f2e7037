//! `describe-loop`: a hostile policy for the host's sandbox tests. Its
//! `describe` never returns, so the host must reject it at upload (describe
//! runs under the default limits) instead of hanging. The other exports are
//! ordinary, so only `describe` is to blame.

use std::hint::black_box;

use verdict_sdk::*;

struct DescribeLoop;

impl Policy for DescribeLoop {
    fn describe() -> Info {
        let mut n = 0u64;
        loop {
            // black_box: a side-effect-free loop must not be optimised away.
            n = black_box(n.wrapping_add(1));
        }
    }

    fn validate_settings(_settings: String) -> Result<(), String> {
        Ok(())
    }

    fn evaluate(_input: Input) -> Result<Outcome, String> {
        Ok(Outcome::promote(vec![Reason::new(
            "never reached: describe never returns",
        )]))
    }
}

verdict_sdk::export!(DescribeLoop);
